# Reading a large OCPP-J message from a flash file (ws.Spilled) piece by
# piece, so that no more than one small value is ever in RAM: the frame's
# head (type, id, action), the payload's members one at a time, and the
# elements of one of its arrays one at a time (a SendLocalList's entries).
# rpc.py loads it for such a message (spilled) and releases it after.
import gc
import json
from micropython import const
from mpocpp.util import log

_CHUNK = const(256)
_CALL = const(2)
_TAG = "rpc"
_WS = b" \t\r\n"


class _JsonStream:
    def __init__(self, f):
        self._f = f
        self._buf = bytearray(_CHUNK)
        self._n = 0  # bytes in _buf
        self._i = 0  # next byte to read
        self._out = bytearray()  # the value being captured

    def _more(self):
        self._n = self._f.readinto(self._buf) or 0
        self._i = 0
        return self._n

    def peek(self):
        # The next byte that is not white space (not consumed), or -1 at the end.
        while True:
            if self._i >= self._n and not self._more():
                return -1
            c = self._buf[self._i]
            if c not in _WS:
                return c
            self._i += 1

    def expect(self, ch):
        if self.peek() != ch:
            raise ValueError("expected %s" % chr(ch))
        self._i += 1

    def next_is(self, ch):
        # Consume ch if it comes next.
        if self.peek() == ch:
            self._i += 1
            return True
        return False

    def text(self, limit):
        # The raw text (bytes) of the next value; ValueError past limit bytes
        # or at a premature end.
        if self.peek() < 0:
            raise ValueError("truncated")
        out = self._out
        out[:] = b""
        depth = 0
        instr = esc = False
        buf = self._buf
        while True:
            if self._i >= self._n and not self._more():
                if depth or instr:
                    raise ValueError("truncated")
                break
            c = buf[self._i]
            if instr:
                if esc:
                    esc = False
                elif c == 92:  # backslash
                    esc = True
                elif c == 34:  # quote
                    instr = False
            elif c == 34:
                instr = True
            elif c == 123 or c == 91:  # { [
                depth += 1
            elif c == 125 or c == 93:  # } ]
                if not depth:
                    break  # the end of the enclosing object or array
                depth -= 1
            elif not depth and (c == 44 or c in _WS):  # , or a blank after a scalar
                break
            out.append(c)
            self._i += 1
            if len(out) > limit:
                raise ValueError("value longer than %d bytes" % limit)
            if not depth and not instr and (c == 125 or c == 93 or
                                            (c == 34 and len(out) > 1)):
                break  # a closed object, array or string
        if not out:
            raise ValueError("no value")
        return out

    def value(self, limit):
        # The next value, parsed (ValueError when it is not JSON).
        return json.loads(str(self.text(limit), "utf-8"))


class Frame:
    # An OCPP-J frame read from a file: the stream positioned at its payload,
    # its message type, id and action (None for an answer); for spilled(),
    # the message: the Spilled itself (a streamed CALL), the parsed list, or
    # None when it did not fit in the heap.
    def __init__(self, stream, kind, mid, action):
        self.stream = stream
        self.kind = kind
        self.id = mid
        self.action = action
        self.message = None


def head(f):
    # -> a Frame; ValueError when the frame is not OCPP-J.
    s = _JsonStream(f)
    s.expect(91)  # [
    kind = s.value(4)
    s.expect(44)
    mid = s.value(80)
    s.expect(44)
    action = None
    if kind == 2:
        action = s.value(80)
        s.expect(44)
    if type(kind) is not int or not isinstance(mid, str) or \
            (kind == 2 and not isinstance(action, str)):
        raise ValueError("not an OCPP-J frame")
    return Frame(s, kind, mid, action)


def members(s, items, limit=1024):
    # Walks the payload object after head(): yields (name, value) for each
    # member, except the array named `items`, whose elements are yielded one
    # by one as (items, element) as they are read. Ends at the frame's end;
    # ValueError on anything that is not JSON.
    s.expect(123)  # {
    if not s.next_is(125):
        while True:
            key = s.value(64)
            if not isinstance(key, str):
                raise ValueError("member name not a string")
            s.expect(58)  # :
            if key == items and s.peek() == 91:
                s.expect(91)
                if not s.next_is(93):
                    while True:
                        yield key, s.value(limit)
                        if s.next_is(93):
                            break
                        s.expect(44)
            else:
                yield key, s.value(limit)
            if s.next_is(125):
                break
            s.expect(44)
    s.expect(93)  # the frame's ]
    if s.peek() >= 0:
        raise ValueError("trailing data")


def _surrogate_escape(f):
    # Whether the file holds a \uD800-\uDFFF escape (or what looks like one:
    # repair only changes what json decoded into surrogates).
    buf = bytearray(_CHUNK + 3)
    keep = 0
    while True:
        n = f.readinto(memoryview(buf)[keep:]) or 0
        if not n:
            return False
        n += keep
        i = buf.find(b"\\u", 0, n)
        while 0 <= i <= n - 3:
            if buf[i + 2] | 32 == 100:  # d or D
                return True
            i = buf.find(b"\\u", i + 1, n)
        keep = min(n, 2)  # an escape cut by the chunk's end
        for j in range(keep):
            buf[j] = buf[n - keep + j]


def spilled(sp, streamed, room):
    # A message kept in flash (ws.Spilled) for rpc.py: its head is read from
    # the file; a CALL whose handler streams its payload (an action in
    # `streamed`) gets sp itself, anything else is parsed from the file
    # (json.load, no copy of the text in RAM). -> a Frame whose message is
    # sp, the parsed list, or None when it did not fit in the heap (with
    # `room` bytes left to answer it); or None: not readable (logged).
    try:
        f = open(sp.path, "rb")
    except OSError as e:
        log.exc(_TAG, "spilled message", e)
        return None
    try:
        try:
            fr = head(f)
        except ValueError as e:
            log.warn(_TAG, "large message ignored: %s", e)
            return None
        fr.stream = None  # its read buffer is not kept with the frame
        if fr.kind == _CALL and fr.action in streamed:
            fr.message = sp
            return fr
        f.seek(0)
        escaped = _surrogate_escape(f)
        f.seek(0)
        try:
            msg = json.load(f)
            if escaped:  # rare: its decoder is loaded for the moment
                from mpocpp.protocol import surrogates
                msg = surrogates.repair(msg)
        except ValueError:
            log.warn(_TAG, "large message: not JSON, ignored")
            return None
        except MemoryError:
            # The message's size, not a sick heap: not one of the
            # out-of-memory events that restart the charger (log.exc
            # would count it: five such CALLs rebooted it, a session
            # stopped). A collection gives the parse's pieces back.
            msg = None
            gc.collect()
            log.error(_TAG, "%d-byte message: no memory to parse it", sp.size)
        else:
            # Parsed, but into so many objects that too little heap is
            # left to check and answer it (a 22 KB array of nested lists
            # took 300 KiB of a 512 KiB 64-bit heap): answered as one
            # that did not fit, rather than an answer that cannot be sent.
            gc.collect()
            if gc.mem_free() < room:
                msg = None
                gc.collect()
                log.error(_TAG, "%d-byte message: no memory left to answer it", sp.size)
        fr.message = msg
        return fr
    finally:
        f.close()
