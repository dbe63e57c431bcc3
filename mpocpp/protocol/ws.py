"""WebSocket client (RFC 6455) over asyncio streams, for OCPP-J.

- connect(): the opening handshake, in handshake.py (imported for the connect
  only): HTTP/1.1 upgrade with Sec-WebSocket-Protocol (ocpp1.6), optional
  Basic auth, ws:// or wss://.
- send(): one masked text frame, fresh 4-byte key per frame; masking XORs big
  ints chunk by chunk (no per-byte loop). Frames of concurrent senders never
  interleave (lock).
- recv(): frames are read into one buffer allocated in the constructor
  (`buffer` bytes); fragments are reassembled, PING/PONG/CLOSE are handled
  between fragments. Returns the next text message (str), or None once
  closed. A message longer than the buffer goes to the flash file `spill` as
  it arrives and comes back as a Spilled (its path and size): nothing holds
  it whole in RAM. Binary messages and invalid UTF-8 are logged and skipped;
  a message longer than max_message (or than the buffer, without a spill
  file) closes with 1009; a protocol violation (masked server
  frame, reserved bits or opcodes, bad fragmentation, bad control frame)
  closes with 1002.
- Limits: no extensions (permessage-deflate is not offered), no redirects,
  no proxies. One reader at a time (recv). The handshake reads header lines
  with readline: a hostile server can only make them as long as timeout_ms
  and the heap allow (MemoryError becomes WsError). UTF-8 is checked by
  MicroPython's decoder, which accepts surrogates and overlong forms.
  Cancelling recv() in the middle of a frame drops the connection (the
  framing would be lost).
"""
import asyncio
import os
import time

from micropython import const

from mpocpp.util import log
from mpocpp.util import modules

_TAG = "ws"
_OP_CONT = const(0)
_OP_TEXT = const(1)
_OP_BIN = const(2)
_OP_CLOSE = const(8)
_OP_PING = const(9)
_OP_PONG = const(10)
_FIN = const(0x80)
_CHUNK = const(512)  # masking unit: bounds the send buffer and the temporaries
_SMALL = const(64)  # masking unit in a heap with no block for a chunk's temporaries
_CLOSE_WAIT_MS = const(2000)  # how long a failing connection waits for the peer's close
_HANDSHAKE = "mpocpp.protocol.handshake"


class WsError(Exception):
    def __init__(self, msg, status=None):
        super().__init__(msg)
        self.status = status


class _Fail(Exception):
    # Internal: fail the connection with a close code; skip = payload bytes
    # still unread in the current frame.
    def __init__(self, code, msg, skip=0):
        super().__init__(msg)
        self.code = code
        self.skip = skip


class Spilled:
    # A received text message kept in a flash file (read it with open()).
    def __init__(self, path, size):
        self.path = path
        self.size = size


class WebSocket:
    def __init__(self, max_message=8192, buffer=None, spill=None):
        self.max_message = max_message if max_message > 125 else 125
        n = self.max_message if buffer is None else buffer
        n = n if n > 125 else 125
        self.buffer = n
        self._spill = spill  # flash path for messages over the buffer, or None
        self._buf = bytearray(n)
        self._mv = memoryview(self._buf)
        self._hdr = bytearray(10)  # incoming frame header (without mask)
        h = memoryview(self._hdr)
        self._h2 = h[:2]
        self._h16 = h[2:4]
        self._h64 = h[2:10]
        self._ctl = memoryview(bytearray(125))  # control payloads, also mid-message
        self._out = bytearray(14 + _CHUNK)  # header + first masked chunk
        self._outmv = memoryview(self._out)
        self._lock = asyncio.Lock()
        self._ev = asyncio.Event()  # set when the socket is dropped
        self._r = self._w = None
        self.open = False
        self.close_code = None
        self._closing = False  # our CLOSE has been sent (or the peer's answered)
        self._rx = False  # a task is reading frames
        self._mid = False  # inside a frame or fragmented message
        self.last_rx_ms = self.last_pong_ms = time.ticks_ms()

    # --- connection ---------------------------------------------------------

    async def connect(self, url, protocol="ocpp1.6", auth=None, ssl=None,
                      opener=None, timeout_ms=10000):
        # The opening handshake (handshake.py, imported for the connect only).
        h = modules.load(_HANDSHAKE)
        try:
            await h.connect(self, url, protocol, auth, ssl, opener, timeout_ms)
        finally:
            modules.release(_HANDSHAKE)

    def attach(self, reader, writer):
        # Start framing on an upgraded stream pair (connect() ends here; the
        # unit tests drive the codec with in-memory streams through it).
        self._r, self._w = reader, writer
        self._closing = self._rx = self._mid = False
        self.close_code = None
        self._ev.clear()
        self.last_rx_ms = self.last_pong_ms = time.ticks_ms()
        self.open = True

    def abort(self):
        # Drop the socket now; a task blocked reading it wakes with an error.
        was = self.open
        self.open = False
        self._ev.set()
        if was:
            self.drop(self._w)

    @staticmethod
    def drop(w):
        try:
            w.close()
            s = getattr(w, "s", None)  # asyncio's Stream.close() leaves the socket open
            if s is not None:
                s.close()
        except Exception:
            pass

    async def close(self, code=1000, timeout_ms=2000):
        if not self.open:
            return
        if not self._closing:
            self._closing = True
            self.close_code = code
            try:
                await self._send(_OP_CLOSE, code.to_bytes(2, "big"))
            except Exception:
                self.abort()
                return
        try:
            if self._rx:  # recv() in another task sees the answer and drops
                await asyncio.wait_for_ms(self._ev.wait(), timeout_ms)
            else:
                self._rx = True
                try:
                    await asyncio.wait_for_ms(self._drain(0), timeout_ms)
                finally:
                    self._rx = False
        except Exception:
            pass
        self.abort()

    # --- sending ------------------------------------------------------------

    async def send(self, text):
        if not self.open or self._closing:
            raise WsError("not open")
        await self._send(_OP_TEXT, text)

    async def ping(self, payload=b""):
        if len(payload) > 125:
            raise WsError("ping payload > 125 bytes")
        if not self.open:
            raise WsError("not open")
        await self._send(_OP_PING, payload)

    async def _send(self, op, data):
        # One masked FIN frame. data: str or bytes-like (a str has the buffer
        # protocol in MicroPython: its UTF-8 bytes, no copy).
        try:
            mv = memoryview(data)
        except TypeError:
            raise WsError("send: not str or bytes")
        lock = self._lock
        await lock.acquire()  # (not "async with": one coroutine less per frame)
        try:
            if not self.open:
                raise WsError("not open")
            try:
                await self._frame(op, mv)
            except Exception as e:
                self.abort()
                raise WsError("send: %s %s" % (type(e).__name__, e))
            except BaseException:  # cancelled mid-frame: the stream is unusable
                self.abort()
                raise
        finally:
            lock.release()

    async def _frame(self, op, mv):
        w = self._w
        o = self._out
        n = len(mv)
        o[0] = _FIN | op
        if n < 126:
            o[1] = 0x80 | n
            p = 2
        elif n < 0x10000:
            o[1] = 0xFE
            o[2] = n >> 8
            o[3] = n & 0xFF
            p = 4
        else:
            o[1] = 0xFF
            o[2:10] = n.to_bytes(8, "big")
            p = 10
        key = os.urandom(4)
        o[p:p + 4] = key
        p += 4
        if n == 0:
            w.write(self._outmv[:p])
            await w.drain()
            return
        # Chunks start at multiples of 4, so each starts at key phase 0: one
        # key pattern as a big int serves all (shifted for the last chunk).
        unit = ((n if n < _CHUNK else _CHUNK) + 3) & ~3
        try:
            pat = int.from_bytes(key * (unit >> 2), "big")
        except MemoryError:
            pat = None
        out = self._outmv
        off = 0
        while off < n:
            c = n - off
            if c > _CHUNK:
                c = _CHUNK
            q = p if off == 0 else 0  # the header goes out with the first chunk
            if pat is not None:
                try:
                    self._mask(mv[off:off + c], pat, unit, out[q:q + c])
                except MemoryError:
                    pat = None
            if pat is None:
                # A fragmented heap without a block for a chunk's big ints
                # (three of about its size): this chunk and the rest in
                # small pieces, with a pattern of that size made once.
                unit = _SMALL
                pat = int.from_bytes(key * (_SMALL >> 2), "big")
                self._mask(mv[off:off + c], pat, unit, out[q:q + c])
            w.write(out[:q + c])
            await w.drain()
            off += c

    @staticmethod
    def _mask(src, pat, unit, dst):
        # dst = src XOR the key from phase 0, unit bytes at a time; pat: the
        # key repeated over unit bytes, as a big int.
        n = len(src)
        i = 0
        while i < n:
            c = n - i if n - i < unit else unit
            k = pat if c == unit else pat >> ((unit - c) << 3)
            dst[i:i + c] = (int.from_bytes(src[i:i + c], "big") ^ k).to_bytes(c, "big")
            i += c

    # --- receiving ----------------------------------------------------------

    async def recv(self):
        if not self.open:
            return None
        if self._rx:
            if self._closing:
                await self._ev.wait()
                return None
            raise WsError("recv() already running")
        self._rx = True
        try:
            return await self._recv()
        except _Fail as e:
            await self._fail(e)
        except Exception as e:  # EOF, OSError, a failed PONG, ...
            if self.open and not self._closing:
                log.info(_TAG, "connection lost: %s %s", type(e).__name__, e)
            self.abort()
        except BaseException:
            if self._mid:
                self.abort()
            raise
        finally:
            self._rx = False
        return None

    async def _recv(self):
        buf = self._mv
        cap = self.buffer
        fill = 0  # bytes of the message in buf (not yet in the spill file)
        total = 0  # bytes of the message so far
        out = None  # the spill file, once the message outgrew buf
        msg = -1  # opcode of the message being assembled
        try:
            while True:
                self._mid = msg >= 0
                b0, n = await self._header()
                op = b0 & 0x0F
                if op & 8:
                    if not b0 & _FIN or n > 125:
                        raise _Fail(1002, "bad control frame")
                    c = self._ctl[:n]
                    if n:
                        await self._fill(c)
                    self.last_rx_ms = time.ticks_ms()
                    if op == _OP_PING:
                        await self._send(_OP_PONG, c)
                    elif op == _OP_PONG:
                        self.last_pong_ms = self.last_rx_ms
                    elif op == _OP_CLOSE:
                        await self._on_close(c)
                        return None
                    else:
                        raise _Fail(1002, "reserved opcode %d" % op)
                    continue
                if op == _OP_CONT:
                    if msg < 0:
                        raise _Fail(1002, "continuation without a message")
                elif op == _OP_TEXT or op == _OP_BIN:
                    if msg >= 0:
                        raise _Fail(1002, "message inside a fragmented message")
                    msg = op
                    fill = total = 0
                else:
                    raise _Fail(1002, "reserved opcode %d" % op)
                if msg == _OP_BIN:
                    await self._skip(n)
                elif total + n > self.max_message or \
                        (total + n > cap and self._spill is None):
                    raise _Fail(1009, "message over %d bytes" % (
                        self.max_message if self._spill else cap), n)
                else:
                    total += n
                    while n:
                        if fill == cap:  # buf full: on to the flash file
                            if out is None:
                                out = open(self._spill, "wb")
                            out.write(buf)
                            fill = 0
                        k = cap - fill if n > cap - fill else n
                        await self._fill(buf[fill:fill + k])
                        fill += k
                        n -= k
                self.last_rx_ms = time.ticks_ms()
                if b0 & _FIN:
                    if msg == _OP_BIN:
                        log.warn(_TAG, "binary message skipped")
                        msg = -1
                        continue
                    msg = -1
                    self._mid = False
                    if out is not None:
                        out.write(buf[:fill])
                        out.close()
                        out = None
                        return Spilled(self._spill, total)
                    try:
                        return str(buf[:fill], "utf-8")
                    except UnicodeError:
                        log.warn(_TAG, "invalid UTF-8 text skipped")
                        continue
                    except MemoryError:
                        # No block for the text in a fragmented heap: the
                        # message goes to flash as a large one does, and
                        # the connection stays.
                        if self._spill is None:
                            raise
                        out = open(self._spill, "wb")
                        out.write(buf[:fill])
                        out.close()
                        out = None
                        return Spilled(self._spill, total)
        finally:
            if out is not None:
                out.close()

    async def _header(self):
        # -> (first byte, payload length); the mask bit must be clear.
        h = self._hdr
        k = await self._r.readinto(self._h2)
        if k != 2:
            self._mid = self._mid or bool(k)  # one byte in: cancelling now loses the framing
            await self._rest(self._h2, k)
        self._mid = True
        self.last_rx_ms = time.ticks_ms()
        b0 = h[0]
        n = h[1] & 0x7F
        if n == 126:
            await self._fill(self._h16)
            n = h[2] << 8 | h[3]
        elif n == 127:
            await self._fill(self._h64)
            n = int.from_bytes(self._h64, "big")
        if h[1] & 0x80:
            raise _Fail(1002, "masked frame from server")
        if b0 & 0x70:
            raise _Fail(1002, "reserved bits set")
        return b0, n

    async def _fill(self, mv):
        # Read exactly len(mv) > 0 bytes into mv.
        k = await self._r.readinto(mv)
        if k != len(mv):
            await self._rest(mv, k)

    async def _rest(self, mv, k):
        # Finish a short read; k is what the first readinto returned (None: a
        # TLS record not complete yet, 0: EOF).
        if k == 0:
            raise EOFError
        got = k or 0
        n = len(mv)
        while got < n:
            if not self.open:
                raise EOFError
            k = await self._r.readinto(mv[got:])
            if k is None:
                continue
            if not k:
                raise EOFError
            got += k

    async def _skip(self, n):
        mv = self._mv
        cap = len(mv)
        while n > 0:
            c = n if n < cap else cap
            await self._fill(mv[:c] if c < cap else mv)
            n -= c

    async def _on_close(self, c):
        n = len(c)
        code = (c[0] << 8 | c[1]) if n >= 2 else 1005
        if not self._closing:  # the peer started: answer with its code
            self._closing = True
            self.close_code = code
            try:
                await self._send(_OP_CLOSE, c[:2] if n >= 2 else b"")
            except Exception:
                pass
        self.abort()

    async def _drain(self, skip):
        # After our CLOSE: discard until the peer's CLOSE.
        await self._skip(skip)
        while True:
            b0, n = await self._header()
            if b0 & 0x0F == _OP_CLOSE:
                if 0 < n <= 125:  # read it all: unread data makes close() send a RST
                    await self._fill(self._ctl[:n])
                return
            await self._skip(n)

    async def _fail(self, e):
        log.warn(_TAG, "closing %d: %s", e.code, e)
        if not self._closing:
            self._closing = True
            self.close_code = e.code
            try:
                await self._send(_OP_CLOSE, e.code.to_bytes(2, "big"))
            except Exception:
                return
        if e.code == 1009:  # framing intact: let the peer answer
            try:
                await asyncio.wait_for_ms(self._drain(e.skip), _CLOSE_WAIT_MS)
            except Exception:
                pass
        self.abort()
