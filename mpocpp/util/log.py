# Minimal logger: one line per event on stdout (the board's console), and to
# an optional sink (the flash ring for GetDiagnostics). A line is formatted
# only when its level is on:  log.info(TAG, "connector %d: %s", cid, status)
# A board's build keeps the messages in flash (tools/logtexts.py): there
# msg is a number in logtext.bin beside this module, read when the line is.
import time
from micropython import const

_DEBUG = const(0)
_INFO = const(1)
_WARN = const(2)
_ERROR = const(3)
_LETTER = "DIWE"

level = _INFO
sink = None  # callable(line) that also receives each line (set by the app)
oom = None  # callable(tag) told of every MemoryError logged (the charger's guard)
_NOMEM = "log: a line lost: out of memory"


def _text(n):
    # Message n of the catalog: a table of offsets (u32), then the texts.
    d = __file__[:__file__.rfind("/") + 1]
    try:
        with open(d + "logtext.bin", "rb") as f:
            if 0 <= 4 * n < int.from_bytes(f.read(4), "little") - 4:  # the table's size
                f.seek(4 * n)
                b = f.read(8)
                a = int.from_bytes(b[:4], "little")
                f.seek(a)
                return f.read(int.from_bytes(b[4:], "little") - a).decode()
    except (OSError, ValueError):
        pass
    return "message %d" % n  # no catalog, or not this build's: the values still go out


def _out(lvl, tag, msg, args, e=None):
    if lvl < level:
        return
    try:
        if type(msg) is int:
            msg = _text(msg)
        if args:
            try:
                msg = msg % args
            except (TypeError, ValueError):
                msg = "%s %r" % (msg, args)
        if e is not None:
            msg = "%s: %s %r" % (msg, type(e).__name__, e)
        line = "%d %s %s: %s" % (time.ticks_ms(), _LETTER[lvl], tag, msg)
        print(line)
        if sink is not None:
            sink(line)
    except MemoryError:
        # Logging must never be what fails: the line is lost, a constant one
        # (no allocation) says so.
        print(_NOMEM)


def debug(tag, msg, *args):
    if level <= _DEBUG:
        _out(_DEBUG, tag, msg, args)


def info(tag, msg, *args):
    if level <= _INFO:
        _out(_INFO, tag, msg, args)


def warn(tag, msg, *args):
    if level <= _WARN:
        _out(_WARN, tag, msg, args)


def error(tag, msg, *args):
    _out(_ERROR, tag, msg, args)


def exc(tag, msg, e, *args):
    # An exception as one log line (no traceback allocation on the hot path);
    # msg % args formatted here, where running out of heap loses the line only.
    _out(_ERROR, tag, msg, args, e)
    if oom is not None and isinstance(e, MemoryError):
        oom(tag)


class FlashRing:
    # The recent lines for GetDiagnostics, bounded: gathered in a fixed RAM
    # buffer, appended to `path` when it fills (one flash write per ~1 KiB,
    # not per line); past `size` bytes the file becomes path.old, replacing
    # the older one. Each line is stamped with the wall clock (unix seconds,
    # `now` a callable) so that startTime / stopTime can select lines.
    def __init__(self, path, now, size=8192, ram=1024):
        self.path = path
        self.size = size
        self._now = now
        self._buf = bytearray(ram)
        self._n = 0
        self._busy = False

    def __call__(self, line):
        if self._busy:
            return
        b = ("%d %s\n" % (self._now(), line)).encode()
        n = len(b)
        if n > len(self._buf):
            b = b[:len(self._buf) - 1] + b"\n"
            n = len(b)
        if self._n + n > len(self._buf):
            self.flush()
        self._buf[self._n:self._n + n] = b
        self._n += n

    def flush(self):
        # -> True when the oldest lines (path.old) were dropped to make room.
        if not self._n:
            return False
        self._busy = True  # no recursion through a failing write's log line
        dropped = False
        try:
            import os
            with open(self.path, "ab") as f:
                f.write(memoryview(self._buf)[:self._n])
            if os.stat(self.path)[6] >= self.size:
                old = self.path + ".old"
                try:
                    os.stat(old)
                    dropped = True
                except OSError:
                    pass
                os.rename(self.path, old)
        except OSError:
            pass  # flash full or gone: the lines are dropped, charging goes on
        finally:
            self._n = 0
            self._busy = False
        return dropped

    def files(self):
        # Oldest first, after a flush.
        self.flush()
        return (self.path + ".old", self.path)
