# Minimal logger: one line per event on stdout (the board's console).
# Levels are single letters so a line costs no formatting work when filtered.
import time

_LEVELS = "DIWE"
level = 1  # index into _LEVELS: 0 debug, 1 info, 2 warn, 3 error
sink = None  # optional callable(line) that also receives each line (bench, file)


def log(lvl, tag, msg):
    i = _LEVELS.find(lvl)
    if i < level:
        return
    line = "%d %s %s: %s" % (time.ticks_ms(), lvl, tag, msg)
    print(line)
    if sink:
        sink(line)


def debug(tag, msg):
    if level == 0:
        log("D", tag, msg)


def info(tag, msg):
    log("I", tag, msg)


def warn(tag, msg):
    log("W", tag, msg)


def error(tag, msg):
    log("E", tag, msg)


def exc(tag, msg, e):
    # An exception as one log line (no traceback allocation on the hot path).
    log("E", tag, "%s: %s %r" % (msg, type(e).__name__, e))
