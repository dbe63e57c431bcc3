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


class FlashRing:
    # The recent lines for GetDiagnostics, bounded: gathered in a fixed RAM
    # buffer, appended to `path` when it fills (one flash write per ~1 KiB,
    # not per line); past `size` bytes the file becomes path.old, replacing
    # the older one. Each line is stamped with the wall clock (unix seconds)
    # so that startTime / stopTime can select lines.
    def __init__(self, path, size=8192, ram=1024):
        self.path = path
        self.size = size
        self._buf = bytearray(ram)
        self._n = 0
        self._busy = False

    def __call__(self, line):
        if self._busy:
            return
        from mpocpp.util import clock
        t = clock.now() if clock._driver is not None else 0
        b = ("%d %s\n" % (t, line)).encode()
        n = len(b)
        if n > len(self._buf):
            b = b[:len(self._buf) - 1] + b"\n"
            n = len(b)
        if self._n + n > len(self._buf):
            self.flush()
        self._buf[self._n:self._n + n] = b
        self._n += n

    def flush(self):
        if not self._n:
            return
        self._busy = True  # no recursion through a failing write's log line
        try:
            import os
            with open(self.path, "ab") as f:
                f.write(memoryview(self._buf)[:self._n])
            if os.stat(self.path)[6] >= self.size:
                os.rename(self.path, self.path + ".old")
        except OSError:
            pass  # flash full or gone: the lines are dropped, charging goes on
        finally:
            self._n = 0
            self._busy = False

    def files(self):
        # Oldest first, after a flush.
        self.flush()
        return (self.path + ".old", self.path)
