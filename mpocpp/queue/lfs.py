# Record store on a littlefs directory: a log of segment files.
#
#   s = LfsStore(dir, capacity=65536, segment_size=4096)
#   s.mount()                  recover after any cut
#   seq = s.append(data)       durable on return; StoreFull when no room
#   s.first()                  (seq, data) of the oldest unacknowledged, or None
#   for seq, data in s.records(): ...   unacknowledged, oldest first, from flash
#   s.ack(seq)                 acknowledge every record <= seq; durable
#   s.free() s.used() s.count() s.capacity() s.max_record() s.next_seq() s.stats()
#
# Files in dir: "<first seq, 8 hex digits>.q" segments, each a run of
# records (store.py frame, flag unused) appended and flushed one at a time,
# at most segment_size bytes; "ack" holds the highest acknowledged sequence
# in decimal and is replaced atomically (fsutil.write_atomic). A segment is
# deleted once all its records are acknowledged. No slot of any file is ever
# rewritten: littlefs appends cost about one erase per block filled, while
# rewriting in place costs several per update. Recovery: segments are read
# in name order; a record with a bad CRC is skipped, anything unreadable
# ends the segment (which then takes no more appends).
import os
from mpocpp.util import log
from mpocpp.util import fsutil
from mpocpp.queue import record as store
from mpocpp.queue.record import StoreFull, HDR
from binascii import crc32

_TAG = "lfs"


class LfsStore:
    def __init__(self, dir, capacity=65536, segment_size=4096):
        if segment_size <= HDR or capacity < segment_size:
            raise ValueError("bad capacity / segment_size")
        self._dir = dir.rstrip("/")
        self._cap = capacity
        self._seg = segment_size
        self._hdr = bytearray(HDR)
        self._chunk = bytearray(64)
        self._written = 0
        self._appended = 0
        self._reset()

    def _reset(self):
        self._first = []   # first sequence (= name) of each segment, oldest first
        self._lastq = []   # last valid sequence in it (first - 1 when none)
        self._size = []    # its size in bytes
        self._sealed = False  # the newest segment takes no more appends
        self._ack = 0
        self._next = 1
        self._count = 0
        self._hs = 0       # head hint: segment name and offset of the first
        self._hp = 0       # record that may be unacknowledged

    def _path(self, first):
        return "%s/%08x.q" % (self._dir, first)

    # --- recovery

    def mount(self):
        self._reset()
        fsutil.makedirs(self._dir)
        a = fsutil.read(self._dir + "/ack")
        if a is not None:
            try:
                self._ack = int(a)
            except ValueError:
                log.error(_TAG, "unreadable ack file %r", a)
        firsts = []
        for name in os.listdir(self._dir):
            if len(name) == 10 and name.endswith(".q"):
                try:
                    firsts.append(int(name[:8], 16))
                except ValueError:
                    pass
        firsts.sort()
        nxt = self._ack + 1
        for first in firsts:
            last, size, ok = self._scan(first)
            nxt = max(nxt, last + 1, first)
            if not size:  # created just before a cut: holds nothing
                fsutil.remove(self._path(first))
                continue
            self._first.append(first)
            self._lastq.append(last)
            self._size.append(size)
            self._sealed = not ok
        self._next = nxt
        if self._first:
            self._hs = self._first[0]
        self._reclaim()
        n = self._count
        log.info(
            _TAG, "mounted %s: %d records, next %d, %d bytes free", self._dir, n, nxt, self.free()
        )

    def _scan(self, first):
        # -> (last valid sequence, size, whole file readable); counts the
        # unacknowledged records into self._count
        last = first - 1
        size = 0
        try:
            with open(self._path(first), "rb") as f:
                while True:
                    n = self._rec(f)
                    if n < 0:
                        return last, size, n == -1
                    if self._rok:
                        last = self._rseq
                        if last > self._ack:
                            self._count += 1
                    size += HDR + n
        except OSError as e:
            log.exc(_TAG, "segment %x", e, first)
            return last, size, False

    def _rec(self, f):
        # Read the next record of f: its data length (self._rok says whether
        # it is valid, self._rseq gives its sequence), -1 at the end of the
        # file, -2 at garbage or a cut-off record.
        h = self._hdr
        k = f.readinto(h)
        if not k:
            return -1
        if k < HDR:
            return -2
        n = store.length(h, self._seg - HDR)
        if n < 0:
            return -2
        c = store.crc_start(h)
        ch = self._chunk
        left = n
        while left:
            mv = memoryview(ch)[:min(left, len(ch))]
            k = f.readinto(mv)
            if k != len(mv):
                return -2
            c = crc32(mv, c)
            left -= k
        self._rok = store.crc_ok(h, c)
        self._rseq = store.seq(h)
        return n

    # --- reading

    def _walk(self, load):
        # Yields (seq, data or length) of unacknowledged records, oldest
        # first, starting at the head hint (moved past acknowledged ones).
        # No file stays open across a yield: a file left to the garbage
        # collector may be closed in the middle of another littlefs call.
        firsts = self._first[:]
        hint = True
        for first in firsts:
            if first < self._hs:
                continue
            pos = self._hp if first == self._hs else 0
            while True:
                try:
                    f = open(self._path(first), "rb")
                except OSError:
                    break  # deleted meanwhile (acknowledged)
                try:
                    f.seek(pos)
                    while True:
                        n = self._rec(f)
                        if n < 0 or (self._rok and self._rseq > self._ack):
                            break
                        pos += HDR + n
                    if n >= 0 and load:
                        data = bytearray(n)
                        f.seek(pos + HDR)
                        f.readinto(data)
                finally:
                    f.close()
                if n < 0:
                    break
                if hint:
                    self._hs = first
                    self._hp = pos
                    hint = False
                pos += HDR + n
                yield self._rseq, (data if load else n)

    def records(self):
        return self._walk(True)

    def first(self):
        for r in self._walk(True):
            return r
        return None

    # --- writing

    def max_record(self):
        return self._seg - HDR

    def append(self, data):
        n = len(data)
        if n > self.max_record():
            raise ValueError("record too large: %d bytes" % n)
        if self.used() + HDR + n > self._cap:
            if not self._spent():
                raise StoreFull("store full")
            # Only acknowledged records left (the segment kept for appends):
            # delete it and start a new one, else a store of one segment
            # stays full for ever once its records are dropped.
            self._sealed = True
            self._reclaim()
        s = self._next
        if not self._first or self._sealed or self._size[-1] + HDR + n > self._seg:
            self._first.append(s)
            self._lastq.append(s - 1)
            self._size.append(0)
            self._sealed = False
        h = self._hdr
        store.pack(h, s, data)
        try:
            # Opened for each record, not kept: an open littlefs file holds
            # a buffer of the filesystem's cache size in the heap (1 KiB on
            # the rp2 port), and closing flushes as flush() did.
            with open(self._path(self._first[-1]), "ab") as f:
                f.write(h)
                f.write(data)
        except OSError as e:
            if e.errno == 28:  # ENOSPC: the filesystem is fuller than planned
                self._sealed = True
                raise StoreFull("filesystem full")
            raise
        self._next = s + 1
        self._lastq[-1] = s
        self._size[-1] += HDR + n
        self._count += 1
        self._written += HDR + n
        self._appended += 1
        if self._count == 1:
            self._hs = self._first[-1]
            self._hp = self._size[-1] - HDR - n
        self._reclaim()
        return s

    def ack(self, seq):
        seq = min(seq, self._next - 1)
        if seq <= self._ack:
            return
        n = 0
        for s, ln in self._walk(False):
            if s > seq:
                break
            n += 1
        fsutil.write_atomic(self._dir + "/ack", b"%d" % seq)
        self._written += len(b"%d" % seq)
        self._ack = seq
        self._count -= n
        self._reclaim()

    def _reclaim(self):
        # Delete segments whose records are all acknowledged, except the one
        # taking appends while it has room.
        while self._first and self._lastq[0] <= self._ack and (
                len(self._first) > 1 or self._sealed
                or self._size[0] + HDR > self._seg):
            fsutil.remove(self._path(self._first[0]))
            self._first.pop(0)
            self._lastq.pop(0)
            self._size.pop(0)
            if not self._first:
                self._sealed = False

    # --- figures

    def capacity(self):
        return self._cap

    def used(self):
        # bytes held in segment files (acknowledged ones too until deleted)
        u = 0
        for n in self._size:
            u += n
        return u

    def free(self):
        return self._cap - self.used() + self._spent()

    def _spent(self):
        # Bytes of the newest segment when every record in it is acknowledged:
        # append deletes it when it needs the room, so they count as free.
        if self._first and self._lastq[-1] <= self._ack:
            return self._size[-1]
        return 0

    def count(self):
        return self._count

    def next_seq(self):
        return self._next

    def stats(self):
        return {"written": self._written, "appended": self._appended}
