# The charger's TCP connections over a serial line (a Pico's USB CDC, a
# UART) to tools/bridge on a host, which opens them: for boards without
# WiFi, and for benches. TLS stays in the firmware, end to end: the bridge
# relays bytes. The line also carries the console (log lines): frames are
# found by their start bytes and checked by their CRC, anything else is text.
# Protocol: docs/serial-bridge.md.
#
#   net = SerialNet(open_line)   # async open_line() -> (reader, writer) of the line
#   r, w = await net.open_connection(host, port, ssl=ctx, server_hostname=host)
#   net = usb_stdio()            # a Pico's USB REPL as the line
import asyncio
import io
import os
import struct
from binascii import crc32
from micropython import const

SOF = b"\xc0\xde"
_HDR = const(6)  # SOF, type, channel, length u16
_CRC = const(4)
MAX_PAYLOAD = const(512)
HELLO = const(1)
OPEN = const(2)
OPENED = const(3)
REFUSED = const(4)
DATA = const(5)
CLOSE = const(6)
CREDIT = const(7)
_WINDOW = const(2048)  # bytes the bridge may send ahead on a channel
_CHANNELS = const(2)  # the OCPP connection and a file transfer
_HELLO_MS = const(5000)
_OPEN_MS = const(15000)


def frame(kind, chan, payload=b""):
    n = len(payload)
    h = SOF + struct.pack("<BBH", kind, chan, n)
    c = crc32(payload, crc32(h[2:])) & 0xFFFFFFFF
    return h + payload + struct.pack("<I", c)


class _Channel(io.IOBase):
    # One connection through the bridge: a non-blocking stream for asyncio
    # (and for tls, which wraps it): readinto gives None while nothing is
    # there, 0 at the end.
    def __init__(self, net, n):
        self._net = net
        self.n = n
        self._rx = bytearray(_WINDOW)
        self._head = 0
        self._len = 0
        self._taken = 0  # bytes read since the last credit
        self.state = 0  # 0 opening, 1 open, 2 closed
        self.reason = None
        self.event = asyncio.Event()

    def feed(self, data):
        n = len(data)
        if self._len + n > _WINDOW:  # the bridge broke the window: drop the connection
            self.close_local()
            return
        rx = self._rx
        tail = (self._head + self._len) % _WINDOW
        first = min(n, _WINDOW - tail)
        rx[tail:tail + first] = data[:first]
        if first < n:
            rx[0:n - first] = data[first:]
        self._len += n

    def readinto(self, buf, n=-1):
        want = len(buf) if n < 0 else min(n, len(buf))
        if not self._len:
            return 0 if self.state == 2 else None
        k = min(want, self._len)
        rx = self._rx
        first = min(k, _WINDOW - self._head)
        buf[0:first] = rx[self._head:self._head + first]
        if first < k:
            buf[first:k] = rx[0:k - first]
        self._head = (self._head + k) % _WINDOW
        self._len -= k
        self._taken += k
        if self._taken >= _WINDOW // 2 and self.state == 1:
            self._net.send(CREDIT, self.n, struct.pack("<H", self._taken))
            self._taken = 0
        return k

    def read(self, n=-1):
        b = bytearray(n if n > 0 else _WINDOW)
        k = self.readinto(b)
        return None if k is None else bytes(b[:k])

    def readline(self):
        # What there is up to and including a newline (asyncio's Stream
        # calls it until the line is whole); None when nothing is there.
        if not self._len:
            return b"" if self.state == 2 else None
        rx = self._rx
        k = 0
        while k < self._len:
            k += 1
            if rx[(self._head + k - 1) % _WINDOW] == 10:
                break
        b = bytearray(k)
        self.readinto(b)
        return bytes(b)

    def write(self, data):
        if self.state != 1:
            raise OSError(32)  # EPIPE
        mv = memoryview(data)
        for i in range(0, len(mv), MAX_PAYLOAD):
            self._net.send(DATA, self.n, mv[i:i + MAX_PAYLOAD])
        return len(mv)

    async def drain(self):
        # Until the serial line has taken what was written.
        await self._net.drain()

    def ioctl(self, req, arg):
        if req == 3:  # MP_STREAM_POLL
            ready = 0
            if arg & 1 and (self._len or self.state == 2):  # readable
                ready |= 1
            if arg & 4:  # writable
                ready |= 4
            return ready
        if req == 4:  # MP_STREAM_CLOSE
            self.close()
        return 0

    def close_local(self):
        if self.state != 2:
            self.state = 2
            self._net.release(self)

    def close(self):
        if self.state == 1:
            try:
                self._net.send(CLOSE, self.n)
            except OSError:
                pass
        self.close_local()


class _Writer:
    # asyncio's StreamWriter shape over a _Channel (no buffering: the line
    # writer buffers).
    def __init__(self, ch):
        self.s = ch

    def write(self, buf):
        self.s.write(buf)

    async def drain(self):
        await self.s.drain()

    def close(self):
        self.s.close()

    async def wait_closed(self):
        pass

    def get_extra_info(self, name):
        return None


class SerialNet:
    def __init__(self, open_line):
        self._open_line = open_line  # async () -> (reader, writer) of the line
        self._r = None  # async readinto(buf)
        self._w = None  # .write(bytes), async .drain()
        self._chans = [None] * _CHANNELS
        self._session = os.urandom(4)
        self._peer = None
        self._task = None
        self._hello_task = None
        self._buf = bytearray(MAX_PAYLOAD + _HDR + _CRC)
        self._frames_in = 0
        self.errors = 0

    def send(self, kind, chan, payload=b""):
        w = self._w
        if w is None:
            raise OSError(32)  # EPIPE: the line is down
        try:
            w.write(frame(kind, chan, payload))
        except OSError:
            self._down()
            raise

    async def drain(self):
        w = self._w
        if w is None:
            raise OSError(32)
        try:
            await w.drain()
        except OSError:
            self._down()
            raise

    def release(self, ch):
        if self._chans[ch.n] is ch:
            self._chans[ch.n] = None
        ch.event.set()

    async def _start(self):
        if self._task is None:
            self._r, self._w = await self._open_line()  # OSError: no line yet
            self._peer = None
            self._task = asyncio.create_task(self._run())
            self._hello_task = asyncio.create_task(self._hello())

    def _down(self):
        # The line broke (a TCP stand-in closed): every connection on it is
        # gone; the next open_connection opens the line again.
        w = self._w
        self._r = self._w = None
        for t in (self._task, self._hello_task):
            if t is not None and t is not asyncio.current_task():
                t.cancel()
        self._task = self._hello_task = None
        self._reset()
        if w is not None:
            try:
                w.close()
            except OSError:
                pass

    async def _hello(self):
        while True:
            try:
                self.send(HELLO, 0, self._session)
                await self.drain()
            except OSError:
                return
            await asyncio.sleep_ms(_HELLO_MS)

    def unreachable(self):
        pass  # the bridge on the host resolves names, afresh for each channel

    async def open_connection(self, host, port, ssl=None, server_hostname=None):
        await self._start()
        n = None
        for i in range(_CHANNELS):
            if self._chans[i] is None:
                n = i
                break
        if n is None:
            raise OSError(24)  # EMFILE: both channels in use
        ch = self._chans[n] = _Channel(self, n)
        try:
            self.send(OPEN, n, ("%s:%d" % (host, port)).encode())
            await self.drain()
        except OSError:
            ch.close_local()
            raise
        try:
            await asyncio.wait_for_ms(ch.event.wait(), _OPEN_MS)
        except asyncio.TimeoutError:
            ch.close_local()
            raise OSError(110)  # ETIMEDOUT: no bridge on the line
        if ch.state != 1:
            ch.close_local()
            raise OSError(111)  # ECONNREFUSED (the bridge says why in its log)
        s = ch
        if ssl is not None:
            s = ssl.wrap_socket(ch, server_hostname=server_hostname or host,
                                do_handshake_on_connect=False)
        return asyncio.StreamReader(s), asyncio.StreamWriter(s, {})

    # --- the line ---
    async def _run(self):
        buf = self._buf
        mv = memoryview(buf)
        fill = 0
        while True:
            try:
                k = await self._r.readinto(mv[fill:])
            except OSError:
                k = 0
            if not k:
                self._down()
                return
            fill += k
            fill = self._frames(fill)

    def _frames(self, fill):
        # Parse the complete frames in the buffer; -> the bytes kept.
        buf = self._buf
        i = 0
        while True:
            j = buf.find(SOF, i, fill)
            if j < 0:
                # keep a last byte that may start a SOF
                i = fill - 1 if fill and buf[fill - 1] == SOF[0] else fill
                break
            if fill - j < _HDR:
                i = j
                break
            kind, chan, n = struct.unpack_from("<BBH", buf, j + 2)
            if n > MAX_PAYLOAD or chan >= _CHANNELS:
                self.errors += 1
                i = j + 1
                continue
            end = j + _HDR + n + _CRC
            if end > fill:
                i = j
                break
            c = crc32(memoryview(buf)[j + 2:j + _HDR + n]) & 0xFFFFFFFF
            if struct.unpack_from("<I", buf, j + _HDR + n)[0] != c:
                self.errors += 1
                i = j + 1
                continue
            self._frames_in += 1
            self._frame(kind, chan, memoryview(buf)[j + _HDR:j + _HDR + n])
            i = end
        rest = fill - i
        if rest:
            buf[0:rest] = buf[i:fill]
        return rest

    def _frame(self, kind, chan, payload):
        ch = self._chans[chan]
        if kind == HELLO:
            p = bytes(payload)
            if self._peer is not None and p != self._peer:
                self._reset()  # the bridge restarted: its connections are gone
            self._peer = p
        elif ch is None:
            if kind == DATA or kind == OPENED:
                self.send(CLOSE, chan)  # a stale connection
        elif kind == OPENED:
            ch.state = 1
            ch.event.set()
        elif kind == REFUSED:
            ch.reason = bytes(payload)
            ch.state = 2
            ch.event.set()
        elif kind == DATA:
            ch.feed(payload)
        elif kind == CLOSE:
            ch.close_local()

    def _reset(self):
        for ch in self._chans:
            if ch is not None:
                ch.close_local()


class _StdioReader:
    # The USB REPL's input, as far as it has bytes now (sys.stdin reads
    # block until their buffer is full).
    def __init__(self):
        import sys
        import select
        self._in = sys.stdin.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._one = bytearray(1)

    async def readinto(self, mv):
        n = 0
        while True:
            while n < len(mv) and self._poll.poll(0):
                if not self._in.readinto(self._one):
                    break
                mv[n] = self._one[0]
                n += 1
            if n:
                return n
            await asyncio.sleep_ms(5)


class _StdioWriter:
    def __init__(self):
        import sys
        self._out = sys.stdout.buffer

    def write(self, data):
        self._out.write(data)

    async def drain(self):
        pass


async def _stdio_line():
    return _StdioReader(), _StdioWriter()


def usb_stdio():
    # A SerialNet over the board's USB REPL. Ctrl-C stops meaning
    # KeyboardInterrupt: frames carry any byte.
    import micropython
    micropython.kbd_intr(-1)
    return SerialNet(_stdio_line)


class _TcpLine:
    # The line as a TCP connection to the bridge (tools/bridge --listen):
    # the unix board's stand-in for a serial port.
    def __init__(self, host, port):
        self.host = host
        self.port = port

    async def __call__(self):
        r, w = await asyncio.open_connection(self.host, self.port)
        return r, w


def tcp_line(host, port):
    return SerialNet(_TcpLine(host, port))
