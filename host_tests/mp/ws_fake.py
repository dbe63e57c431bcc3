# In-memory stream pair and frame helpers for the ws.py unit tests.
import asyncio
import binascii
import hashlib


class Pipe:
    # One object is both reader and writer (like asyncio's Stream). The test
    # feeds what the "server" sends; everything the client writes lands in
    # .out. step limits each readinto to test partial reads; eof=False makes
    # an empty pipe block instead of reporting EOF.
    def __init__(self, data=b"", step=0, eof=True, on_write=None):
        self.data = bytearray(data)
        self.pos = 0
        self.step = step
        self.eof = eof
        self.on_write = on_write
        self.out = bytearray()
        self.closed = False
        self.ev = asyncio.Event()
        self.drains = 0

    def feed(self, b):
        self.data += b
        self.ev.set()

    async def _wait(self):
        while self.pos >= len(self.data):
            if self.closed:
                raise OSError(9)
            if self.eof:
                return False
            self.ev.clear()
            await self.ev.wait()
        return True

    async def readinto(self, buf):
        if not await self._wait():
            return 0
        n = min(len(buf), len(self.data) - self.pos)
        if self.step:
            n = min(n, self.step)
        buf[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n

    async def readline(self):
        if not await self._wait():
            return b""
        i = self.data.find(b"\n", self.pos)
        end = len(self.data) if i < 0 else i + 1
        line = bytes(self.data[self.pos:end])
        self.pos = end
        return line

    def write(self, b):
        if self.closed:
            raise OSError(9)
        self.out += b
        if self.on_write:
            self.on_write(self)

    async def drain(self):
        self.drains += 1
        await asyncio.sleep_ms(0)  # like asyncio's Stream: always yields

    def close(self):
        self.closed = True
        self.ev.set()


def frame(op, payload=b"", fin=True, rsv=0, mask=None):
    # A server frame (unmasked unless mask is given).
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    h = bytearray([(0x80 if fin else 0) | rsv | op])
    mbit = 0x80 if mask else 0
    if n < 126:
        h.append(mbit | n)
    elif n < 0x10000:
        h.append(mbit | 126)
        h += n.to_bytes(2, "big")
    else:
        h.append(mbit | 127)
        h += n.to_bytes(8, "big")
    if mask:
        h += mask
        payload = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return bytes(h) + payload


def close_frame(code, reason=b""):
    return frame(8, code.to_bytes(2, "big") + reason)


def parse(out):
    # Client frames -> list of (fin, opcode, payload, header_len, key);
    # every client frame must be masked.
    res = []
    i = 0
    out = bytes(out)
    while i < len(out):
        b0, b1 = out[i], out[i + 1]
        assert b1 & 0x80, "client frame not masked"
        n = b1 & 0x7F
        j = i + 2
        if n == 126:
            n = int.from_bytes(out[j:j + 2], "big")
            j += 2
        elif n == 127:
            n = int.from_bytes(out[j:j + 8], "big")
            j += 8
        key = out[j:j + 4]
        j += 4
        p = out[j:j + n]
        assert len(p) == n, "truncated frame"
        # Unmask with a big-int XOR too, but built independently of ws.py.
        pat = (key * (n // 4 + 1))[:n]
        p = (int.from_bytes(p, "big") ^ int.from_bytes(pat, "big")).to_bytes(n, "big")
        res.append((bool(b0 & 0x80), b0 & 0x0F, p, j - i, key))
        i = j + n
    return res


def accept(key):
    return binascii.b2a_base64(hashlib.sha1(
        key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())[:-1]


def request_headers(out):
    # -> (request line, {lower-case name: value}) of the client's HTTP request.
    head = bytes(out).split(b"\r\n\r\n", 1)[0].decode()
    lines = head.split("\r\n")
    hdrs = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    return lines[0], hdrs


def server(status=101, accept_fn=accept, protocol="ocpp1.6", extra=b"", after=b""):
    # An on_write hook answering the client's upgrade request once.
    def on_write(p):
        if p.data or b"\r\n\r\n" not in p.out:
            return
        _, h = request_headers(p.out)
        resp = b"HTTP/1.1 %d X\r\n" % status
        if status == 101:
            resp += b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            resp += (
                b"Sec-WebSocket-Accept: " + accept_fn(h["sec-websocket-key"].encode()) + b"\r\n"
            )
            if protocol:
                resp += b"Sec-WebSocket-Protocol: " + protocol.encode() + b"\r\n"
        p.feed(resp + extra + b"\r\n" + after)
    return on_write
