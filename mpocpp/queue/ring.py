# Record store on a raw flash region: a NOR-style log of records in a ring
# of erase sectors (an esp32.Partition, an rp2.Flash range, the simulated
# NorFlash on unix).
#
#   s = RingStore(dev, first_block=0, blocks=16)
#   s.mount()                  recover after any cut
#   seq = s.append(data)       durable on return; StoreFull when no room
#   s.first()                  (seq, data) of the oldest unacknowledged, or None
#   for seq, data in s.records(): ...   unacknowledged, oldest first, from flash
#   s.ack(seq)                 acknowledge every record <= seq; durable
#   s.free() s.used() s.count() s.capacity() s.max_record() s.next_seq() s.stats()
#
# Sector: 16-byte header (magic u32, sector sequence u32, base record
# sequence u32, CRC-32 of the first 12 bytes), then records (store.py frame)
# at 4-byte aligned offsets; the erased tail is 0xFF. Sectors are used in
# physical ring order; one is erased only when all its records are
# acknowledged, and its magic is first cleared to 0 so a torn erase never
# brings old records back. A record is acknowledged by clearing its flag
# byte (NOR programs 1 -> 0 without an erase): no acknowledgement records,
# no extra space. Recovery: sectors with a bad header are free; records with
# a bad CRC are skipped; garbage where a header should be (a cut inside a
# header write) is stepped over: the next 4-byte offset holding a valid
# record or 12 erased bytes is where the sector goes on (found at mount and
# kept, so a string of cuts costs bytes, not sectors).
from micropython import const
import struct
from binascii import crc32
from mpocpp.util import log
from mpocpp.queue import record as store
from mpocpp.queue.record import StoreFull, HDR

_SMAGIC = const(0x51524E47)
_SHDR = const(16)
_TAG = "ring"


class RingStore:
    def __init__(self, dev, first_block=0, blocks=16):
        if blocks < 2:
            raise ValueError("a ring needs at least 2 sectors")
        self._dev = dev
        self._b0 = first_block
        self._n = blocks
        self._bs = dev.ioctl(5, 0) or 4096
        self._hdr = bytearray(HDR)
        self._shdr = bytearray(_SHDR)
        self._chunk = bytearray(64)
        self._zero = b"\x00\x00\x00\x00"
        self._z1 = b"\x00"
        self._wi = 0       # sector and offset of the record _walk yielded last
        self._wp = 0
        self._sseq = [-1] * blocks  # sector sequence, -1 = free (bad header)
        self._last = [0] * blocks   # last valid record sequence in the sector
        self._order = []            # sectors with a header, oldest first
        self._skip = {}             # sector * 65536 + garbage offset -> where it goes on
        self._prog = 0
        self._erases = 0
        self._appended = 0
        self._reset()

    def _reset(self):
        self._skip = {}
        for i in range(self._n):
            self._sseq[i] = -1
            self._last[i] = 0
        self._order = []
        self._cur = -1     # sector taking appends
        self._pos = 0      # its write offset (block size = sealed)
        self._ack = 0      # every record <= _ack is acknowledged
        self._next = 1
        self._count = 0
        self._used = 0
        self._hs = -1      # head hint: sector and offset of the first record
        self._hp = 0       # that may be unacknowledged
        self._rseq = 0
        self._rflag = 0
        self._rok = False

    # --- raw I/O (block devices signal errors by raising or returning non-0)

    def _read(self, i, off, buf):
        if self._dev.readblocks(self._b0 + i, buf, off):
            raise OSError(5)

    def _write(self, i, off, buf):
        if self._dev.writeblocks(self._b0 + i, buf, off):
            raise OSError(5)
        self._prog += len(buf)

    def _erase(self, i):
        if self._dev.ioctl(6, self._b0 + i):
            raise OSError(5)
        self._erases += 1

    def _rec(self, i, pos):
        # Read the record at pos of sector i. Returns the offset after it
        # (self._rok says whether it is valid; _rseq, _rflag describe it),
        # -1 at the erased end of the sector, -2 at garbage.
        bs = self._bs
        if pos + HDR > bs:
            return -1
        h = self._hdr
        self._read(i, pos, h)
        n = store.length(h, bs - pos - HDR)
        if n < 0:
            return n
        c = store.crc_start(h)
        ch = self._chunk
        off = pos + HDR
        left = n
        while left:
            k = min(left, len(ch))
            mv = memoryview(ch)[:k]
            self._read(i, off, mv)
            c = crc32(mv, c)
            off += k
            left -= k
        self._rok = store.crc_ok(h, c)
        self._rseq = store.seq(h)
        self._rflag = h[1]
        return (pos + HDR + n + 3) & ~3

    def _resync(self, i, pos):
        # After garbage at pos: the first 4-byte offset holding a record with
        # a good CRC, or 12 erased bytes (where appends go on). A torn header
        # is followed by erased flash, as its data is written after it.
        h = self._hdr
        bs = self._bs
        q = pos + 4
        while q + HDR <= bs:
            self._read(i, q, h)
            n = store.length(h, bs - q - HDR)
            if n == -1:
                return q
            if n >= 0 and self._rec(i, q) > 0 and self._rok:
                return q
            q += 4
        return bs

    # --- recovery

    def mount(self):
        self._reset()
        sh = self._shdr
        base = 0
        for i in range(self._n):
            self._read(i, 0, sh)
            m, s, b, c = struct.unpack("<IIII", sh)
            if m == _SMAGIC and c == crc32(memoryview(sh)[:12]):
                self._sseq[i] = s
                base = max(base, b)
        order = [i for i in range(self._n) if self._sseq[i] >= 0]
        order.sort(key=lambda i: self._sseq[i])
        self._order = order
        acked = 0
        first = 0
        last = 0
        for i in order:
            pos = _SHDR
            while True:
                nxt = self._rec(i, pos)
                if nxt == -2:
                    nxt = self._resync(i, pos)
                    log.warn(_TAG, "garbage in sector %d at %d: going on at %d", i, pos, nxt)
                    self._skip[i << 16 | pos] = nxt
                    pos = nxt
                    continue
                if nxt < 0:
                    break
                if self._rok:
                    s = self._rseq
                    self._last[i] = s
                    last = max(last, s)
                    if self._rflag != store.LIVE:
                        acked = max(acked, s)
                    elif not first:
                        first = s
                else:
                    log.warn(_TAG, "bad record in sector %d at %d skipped", i, pos)
                pos = nxt
            if order and i == order[-1]:
                self._cur = i
                self._pos = pos
        self._next = max(base, last + 1, 1)
        self._ack = max(acked, (first or self._next) - 1)
        if order:
            self._hs = order[0]
            self._hp = _SHDR
        # count and bytes of what is still unacknowledged
        n = 0
        u = 0
        for s, ln in self._walk(False):
            n += 1
            u += HDR + ln
        self._count = n
        self._used = u
        log.info(_TAG, "mounted: %d records, next %d, %d bytes free", n, self._next, self.free())

    # --- reading

    def _walk(self, load):
        # Yields (seq, data or length) of unacknowledged records, oldest first,
        # starting at the head hint (moved forward past acknowledged ones).
        order = self._order[:]
        if self._hs not in order:
            return
        k = order.index(self._hs)
        pos = self._hp
        hint = True
        while k < len(order):
            i = order[k]
            while True:
                nxt = self._rec(i, pos)
                if nxt == -2:
                    nxt = self._skip.get(i << 16 | pos, self._bs)
                elif nxt < 0:
                    break
                elif self._rok and self._rseq > self._ack:
                    if hint:
                        self._hs = i
                        self._hp = pos
                        hint = False
                    self._wi = i
                    self._wp = pos
                    s = self._rseq
                    n = self._hdr[2] | self._hdr[3] << 8
                    if load:
                        data = bytearray(n)
                        self._read(i, pos + HDR, data)
                        yield s, data
                    else:
                        yield s, n
                pos = nxt
            k += 1
            pos = _SHDR

    def records(self):
        return self._walk(True)

    def first(self):
        for r in self._walk(True):
            return r
        return None

    # --- writing

    def max_record(self):
        return self._bs - _SHDR - HDR

    def append(self, data):
        n = len(data)
        if n > self.max_record():
            raise ValueError("record too large: %d bytes" % n)
        if self._cur < 0 or self._pos + HDR + n > self._bs:
            self._rotate()
        i = self._cur
        pos = self._pos
        s = self._next
        h = self._hdr
        store.pack(h, s, data)
        self._write(i, pos, h)
        if n:
            self._write(i, pos + HDR, data)
        self._next = s + 1
        self._pos = (pos + HDR + n + 3) & ~3
        self._last[i] = s
        self._count += 1
        self._used += HDR + n
        self._appended += 1
        if self._count == 1:
            self._hs = i
            self._hp = pos
        return s

    def _rotate(self):
        c = (self._cur + 1) % self._n
        if self._sseq[c] >= 0 and self._last[c] > self._ack:
            raise StoreFull("ring full")
        if self._sseq[c] >= 0:
            self._write(c, 0, self._zero)  # retire before the erase (see top)
            self._order.remove(c)
        self._sseq[c] = -1
        self._last[c] = 0
        for k in [k for k in self._skip if k >> 16 == c]:
            del self._skip[k]
        self._erase(c)
        s = 0
        for x in self._sseq:
            s = max(s, x + 1)
        sh = self._shdr
        struct.pack_into("<III", sh, 0, _SMAGIC, s, self._next)
        struct.pack_into("<I", sh, 12, crc32(memoryview(sh)[:12]))
        self._write(c, 0, sh)
        self._sseq[c] = s
        self._order.append(c)
        self._cur = c
        self._pos = _SHDR
        if self._count == 0:
            self._hs = c
            self._hp = _SHDR

    def ack(self, seq):
        # Clear the flag of every record up to seq, oldest first: a cut
        # leaves a prefix acknowledged, which is what recovery reads back.
        seq = min(seq, self._next - 1)
        if seq <= self._ack:
            return
        for s, ln in self._walk(False):
            if s > seq:
                self._hs = self._wi  # the new head
                self._hp = self._wp
                break
            self._write(self._wi, self._wp + 1, self._z1)
            self._count -= 1
            self._used -= HDR + ln
        self._ack = seq

    # --- figures

    def capacity(self):
        return self._n * (self._bs - _SHDR)

    def free(self):
        # Bytes (frames included) that can still be appended.
        bs = self._bs
        f = bs - self._pos if self._cur >= 0 else 0
        c = self._cur
        for _ in range(self._n - (1 if c >= 0 else 0)):
            c = (c + 1) % self._n
            if self._sseq[c] >= 0 and self._last[c] > self._ack:
                break
            f += bs - _SHDR
        return f

    def used(self):
        return self._used

    def count(self):
        return self._count

    def next_seq(self):
        return self._next

    def stats(self):
        return {"programmed": self._prog, "erases": self._erases,
                "appended": self._appended}
