# Both record stores (store_ring.RingStore, store_lfs.LfsStore) on the
# simulated NOR flash: append / records / ack, rotation, full, recovery.
import gc
from mpocpp_board.norflash import NorFlash, mount_lfs, umount
from mpocpp.queue.record import StoreFull
from mpocpp.queue.ring import RingStore
from mpocpp.queue.lfs import LfsStore


class Rig:
    # A store of one backend on a fresh simulated flash; power() starts a new
    # power epoch (after a cut, or as a clean reboot) and returns a new store.
    def __init__(self, kind, blocks=16, capacity=65536):
        self.kind = kind
        self.blocks = blocks
        self.capacity = capacity
        # littlefs needs room beyond the queue: metadata and copy-on-write
        self.dev = NorFlash((blocks if kind == "ring" else blocks * 2 + 8) * 4096)
        if kind == "lfs":
            mount_lfs(self.dev, "/flash")
        self.store = self._new()

    def _new(self):
        if self.kind == "ring":
            s = RingStore(self.dev, 0, self.blocks)
        else:
            s = LfsStore("/flash/q", self.capacity, 4096)
        s.mount()
        return s

    def power(self):
        if self.kind == "lfs":
            umount("/flash")
        self.dev = self.dev.reopen()
        self.store = None
        gc.collect()
        if self.kind == "lfs":
            mount_lfs(self.dev, "/flash")
        self.store = self._new()
        return self.store


def rec(i, n=100):
    # a payload that names its number: bad ordering or mixing shows
    b = b"%d:" % i
    return b + b"x" * (n - len(b))


def num(data):
    return int(bytes(data).split(b":")[0])


def content(s):
    return [(q, num(d)) for q, d in s.records()]


def both(fn):
    fn("ring")
    fn("lfs")


def test_append_records_ack():
    def t(kind):
        s = Rig(kind).store
        assert s.count() == 0 and s.first() is None and list(s.records()) == []
        seqs = [s.append(rec(i)) for i in range(10)]
        assert seqs == list(range(1, 11))
        assert s.count() == 10 and s.used() > 0
        assert content(s) == [(i + 1, i) for i in range(10)]
        s.ack(3)
        assert s.count() == 7 and s.first()[0] == 4
        s.ack(2)  # going back does nothing
        assert s.count() == 7
        s.ack(100)  # beyond the end: everything
        assert s.count() == 0 and s.first() is None
        assert s.append(rec(10)) == 11
        assert content(s) == [(11, 10)]
    both(t)


def test_survives_reboot_and_sequence_grows():
    def t(kind):
        r = Rig(kind)
        s = r.store
        for i in range(30):
            s.append(rec(i, 300))
        s.ack(12)
        s = r.power()
        assert s.count() == 18
        assert content(s) == [(i + 1, i) for i in range(12, 30)]
        s.ack(30)
        s = r.power()
        assert s.count() == 0 and s.next_seq() == 31
        assert s.append(rec(99)) == 31
    both(t)


def test_rotation_full_and_reuse():
    def t(kind):
        r = Rig(kind, blocks=4, capacity=4 * 4096)
        s = r.store
        n = 0
        try:
            while True:
                s.append(rec(n, 200))
                n += 1
        except StoreFull:
            pass
        assert 60 <= n <= 80, n  # ~16 KiB of 212-byte records
        assert s.free() < 212
        assert [x for _, x in content(s)] == list(range(n))
        # acknowledging a whole sector / segment makes room again
        s.ack(40)
        m = 0
        try:
            while True:
                s.append(rec(n + m, 200))
                m += 1
        except StoreFull:
            pass
        assert m >= 19, m
        s = r.power()
        assert [x for _, x in content(s)] == list(range(40, n + m))
        # and many times round the ring
        s.ack(s.next_seq())
        for i in range(500):
            q = s.append(rec(i, 200))
            s.ack(q)
        assert s.count() == 0
        if kind == "ring":
            assert r.dev.violations == 0  # never programmed a 0 bit to 1
            assert max(r.dev.wear) - min(r.dev.wear) <= 1  # even wear
    both(t)


def test_record_too_large_and_empty():
    def t(kind):
        s = Rig(kind).store
        try:
            s.append(b"x" * (s.max_record() + 1))
            assert False
        except ValueError:
            pass
        assert s.append(b"x" * s.max_record()) == 1
        assert s.append(b"") == 2
        assert [len(d) for _, d in s.records()] == [s.max_record(), 0]
    both(t)


def test_stop_iteration_early_then_write():
    # a generator left unfinished must not break later writes
    def t(kind):
        s = Rig(kind).store
        for i in range(50):
            s.append(rec(i))
        for k in range(30):
            for q, d in s.records():
                break
            s.ack(q)
            s.append(rec(50 + k))
        gc.collect()
        assert s.count() == 50 and s.first()[0] == 31
    both(t)


def test_ring_skips_torn_and_garbage():
    r = Rig("ring", blocks=4)
    s = r.store
    for i in range(5):
        s.append(rec(i))
    # a record torn in its data part, then garbage where a header should be
    r.dev.cut_after_bytes = 12 + 40
    try:
        s.append(rec(5))
        assert False
    except OSError:
        pass
    s = r.power()
    assert [x for _, x in content(s)] == [0, 1, 2, 3, 4]
    assert s.append(rec(6)) == 6  # the torn record's sequence is reused
    assert [x for _, x in content(s)] == [0, 1, 2, 3, 4, 6]
    # garbage where the next header goes (a cut in its first bytes): the
    # sector goes on after it, 4 bytes on, and keeps doing so at each mount
    s.append(rec(7))
    pos = 16 + 8 * 112
    r.dev.writeblocks(r.store._cur, b"\x12\x34", pos)
    s = r.power()
    assert [x for _, x in content(s)] == [0, 1, 2, 3, 4, 6, 7]
    assert s._pos == pos + 4  # appends go on 4 bytes after the garbage
    free = s.free()
    s.append(rec(8))
    assert s._cur == 0 and [x for _, x in content(s)][-1] == 8
    assert free - s.free() == 112
    s = r.power()
    assert [x for _, x in content(s)] == [0, 1, 2, 3, 4, 6, 7, 8]
    s.append(rec(9))
    s = r.power()
    assert [x for _, x in content(s)] == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert r.dev.violations == 0


def test_ring_cuts_inside_headers_cost_bytes_not_sectors():
    # The StopTransaction reserve must survive a string of cuts with no
    # delivery: each cut tears a header in its first bytes (its length
    # unreadable) and costs a few bytes, never the rest of the sector.
    import random
    rnd = random.Random(3) if hasattr(random, "Random") else random
    r = Rig("ring", blocks=4)
    s = r.store
    kept = []
    for k in range(60):
        s.append(rec(k, 40))
        kept.append(k)
        free = s.free()
        r.dev.cut_after_bytes = rnd.randrange(1, 4)  # magic, flag, half the length
        try:
            s.append(rec(1000 + k, 40))
            assert False
        except OSError:
            pass
        s = r.power()
        assert free - s.free() <= 8, (k, free, s.free())
        assert [x for _, x in content(s)] == kept
    assert s.free() > 3 * 4096 - 60 * (52 + 8) - 16 * 4
    assert r.dev.violations == 0


def test_ring_bad_crc_in_old_sector_skipped():
    r = Rig("ring", blocks=4)
    s = r.store
    for i in range(80):
        s.append(rec(i))
    # flip data bits of the second record (NOR can clear bits anywhere)
    r.dev.writeblocks(0, b"\x00", 16 + 112 + 30)
    s = r.power()
    got = [x for _, x in content(s)]
    assert got == [0] + list(range(2, 80)), got
    assert s.count() == 79


def test_lfs_stray_files_and_empty_segment():
    r = Rig("lfs")
    s = r.store
    for i in range(3):
        s.append(rec(i))
    with open("/flash/q/%08x.q" % 4, "wb"):
        pass  # a segment created just before a cut
    with open("/flash/q/notes.txt", "w") as f:
        f.write("not a segment")
    s = r.power()
    assert [x for _, x in content(s)] == [0, 1, 2]
    assert s.append(rec(3)) == 4
    s = r.power()
    assert [x for _, x in content(s)] == [0, 1, 2, 3]


def test_stats_count_work():
    def t(kind):
        r = Rig(kind)
        s = r.store
        for i in range(20):
            s.append(rec(i))
        st = s.stats()
        assert st["appended"] == 20
        if kind == "ring":
            assert st["programmed"] == r.dev.programmed_bytes
            assert st["erases"] == r.dev.erases
    both(t)


def test_lfs_keeps_no_file_open_between_appends():
    # An open littlefs file holds a buffer of the filesystem's cache size in
    # the heap: the segment taking appends is opened for each record.
    r = Rig("lfs")
    s = r.store
    gc.collect()
    before = gc.mem_alloc()
    for i in range(4):
        s.append(rec(i))
    gc.collect()
    grew = gc.mem_alloc() - before  # the first segment's entries in three lists
    before = gc.mem_alloc()
    f = open("/flash/held", "ab")
    gc.collect()
    held = gc.mem_alloc() - before  # what one open file takes
    f.close()
    assert grew < held, (grew, held)
    assert content(s) == [(1, 0), (2, 1), (3, 2), (4, 3)]
    assert content(r.power()) == [(1, 0), (2, 1), (3, 2), (4, 3)]
