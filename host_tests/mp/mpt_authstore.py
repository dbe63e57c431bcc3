# Local authorization list and cache (mpocpp/model/authstore.py), run inside
# MicroPython on the host filesystem (VfsPosix) and on littlefs over a RAM
# block device.
# heap: 4M
import gc
import os
import vfs

from mpocpp.model import authstore
from mpocpp.util import log
from mpocpp.model.authstore import AuthStore, valid

T0 = 1795289360  # 2026-11-21T19:29:20Z
LFS = "/lfs_auth"


class RamBdev:
    # Block device in RAM for littlefs; counts the flash work done.
    def __init__(self, blocks=128, bs=4096):
        self.bs = bs
        self.n = blocks
        self.mem = bytearray(blocks * bs)
        self.mv = memoryview(self.mem)  # slices of it copy nothing
        self.read_bytes = self.written = self.erases = 0

    def readblocks(self, blk, buf, off=0):
        a = blk * self.bs + off
        buf[:] = self.mv[a:a + len(buf)]
        self.read_bytes += len(buf)

    def writeblocks(self, blk, buf, off=None):
        if off is None:  # no separate erase: whole blocks
            off = 0
            for i in range(len(buf) // self.bs):
                self.ioctl(6, blk + i)
        a = blk * self.bs + off
        self.mv[a:a + len(buf)] = buf
        self.written += len(buf)

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return self.bs
        if op == 6:
            a = arg * self.bs
            self.mem[a:a + self.bs] = b"\xff" * self.bs
            self.erases += 1
        return 0


def lfs_dir(blocks=128):
    dev = RamBdev(blocks)
    vfs.VfsLfs2.mkfs(dev)
    vfs.mount(vfs.VfsLfs2(dev), LFS)
    return LFS + "/auth", dev


def posix_dir():
    d = "/tmp/mpt_authstore_%d" % (os.urandom(1)[0] * 256 + os.urandom(1)[0])
    rmtree(d)
    return d


def rmtree(d):
    try:
        names = os.listdir(d)
    except OSError:
        return
    for n in names:
        os.remove(d + "/" + n)
    os.rmdir(d)


def both(fn):
    # fn(dir) on the host filesystem, then on littlefs.
    d = posix_dir()
    try:
        fn(d)
    finally:
        rmtree(d)
    d, _ = lfs_dir()
    try:
        fn(d)
    finally:
        vfs.umount(LFS)


def store(d, **kw):
    a = AuthStore(d, **kw)
    a.mount()
    return a


def e(tag, status="Accepted", exp=None, parent=None):
    info = {"status": status}
    if exp is not None:
        info["expiryDate"] = exp
    if parent is not None:
        info["parentIdTag"] = parent
    return {"idTag": tag, "idTagInfo": info}


class Logs:
    def __enter__(self):
        self.lines = []
        log.sink = self.lines.append
        return self

    def __exit__(self, *a):
        log.sink = None

    def has(self, word):
        return any(word in ln for ln in self.lines)


def test_lookup_case_insensitive():
    def run(d):
        a = store(d)
        assert a.list_version() == 0 and a.list_count() == 0
        assert a.list_lookup("abc") is None
        r = a.list_update(3, "Full", [
            e("AbC123", exp="2026-11-21T19:29:20Z", parent="PaRent"),
            e("zz", "Blocked"), e("Ölgaß", "Invalid")])
        assert r == "Accepted", r
        want = {"status": "Accepted", "expiryDate": T0, "parentIdTag": "PaRent"}
        assert a.list_lookup("abc123") == want
        assert a.list_lookup("ABC123") == want
        assert a.list_lookup("ZZ")["status"] == "Blocked"
        assert a.list_lookup("ZZ")["parentIdTag"] is None
        assert a.list_lookup("ZZ")["expiryDate"] is None
        assert a.list_lookup("Ölgaß")["status"] == "Invalid"
        for bad in (None, 123, "", "x" * 21, "abc\x00", "abc12"):
            assert a.list_lookup(bad) is None
        assert a.cache_lookup(None) is None and not a.cache_put(123, {})
    both(run)


def test_versions_full_differential():
    # Scenario 51.
    def run(d):
        a = store(d)
        assert a.list_update(2, "Full", [e("a"), e("b"), e("c")]) == "Accepted"
        assert a.list_version() == 2 and a.list_count() == 3
        assert a.list_update(5, "Differential", [
            e("B", "Blocked"),        # update
            {"idTag": "c"},           # delete
            {"idTag": "nothere"},     # delete of an absent tag: no effect
            e("0first"), e("zlast")]) == "Accepted"
        assert a.list_version() == 5 and a.list_count() == 4
        assert a.list_lookup("b")["status"] == "Blocked"
        assert a.list_lookup("c") is None
        assert a.list_lookup("0first") and a.list_lookup("zlast")
        assert a.list_lookup("a")["status"] == "Accepted"
        assert a.list_update(5, "Differential", [e("q")]) == "VersionMismatch"
        assert a.list_update(4, "Differential", [e("q")]) == "VersionMismatch"
        assert a.list_lookup("q") is None and a.list_version() == 5
        # An empty differential changes only the version.
        assert a.list_update(6, "Differential", []) == "Accepted"
        assert a.list_version() == 6 and a.list_count() == 4
        assert a.list_update(7, "Differential", None) == "Accepted"
        # Full may go to any version > 0; an empty Full clears.
        assert a.list_update(1, "Full", [e("x")]) == "Accepted"
        assert a.list_version() == 1 and a.list_lookup("a") is None
        assert a.list_update(3, "Full", []) == "Accepted"
        assert a.list_version() == 3 and a.list_count() == 0
        assert a.list_lookup("x") is None
        # Differential onto an empty list.
        assert a.list_update(4, "Differential", [e("n"), {"idTag": "m"}]) \
            == "Accepted"
        assert a.list_count() == 1 and a.list_lookup("N")
        b = store(d)  # persisted
        assert b.list_version() == 4 and b.list_count() == 1
        assert b.list_lookup("n")["status"] == "Accepted"
    both(run)


def test_failed_leaves_list_unchanged():
    def run(d):
        a = store(d, list_max=5)
        assert a.list_update(2, "Full", [e("a"), e("b"), e("c")]) == "Accepted"
        bad = [
            (3, "Full", [e("x"), e("y"), e("X")]),           # duplicate
            (3, "Differential", [e("q"), {"idTag": "Q"}]),   # duplicate
            (3, "Full", [e(str(i)) for i in range(6)]),      # over list_max
            (3, "Differential", [e("d"), e("e"), e("f")]),   # result 6 > 5
            (0, "Full", [e("x")]),                           # E3.52
            (-1, "Full", [e("x")]),
            (0, "Differential", [e("x")]),
            ("3", "Full", [e("x")]),
            (3, "Partial", [e("x")]),
            (3, "Full", [{"idTag": "x"}]),         # Full needs idTagInfo
            (3, "Full", [e("x", "Maybe")]),
            (3, "Full", [e("x", exp="tomorrow")]),
            (3, "Full", [e("x", parent="p" * 21)]),
            (3, "Full", [e("x" * 21)]),
            (3, "Full", [{"idTagInfo": {"status": "Accepted"}}]),
            (3, "Full", ["x"]),
            (3, "Full", {"idTag": "x"}),
            (3, "Differential", [{"idTag": "x", "idTagInfo": "Accepted"}]),
        ]
        with Logs() as lg:
            for v, t, ents in bad:
                assert a.list_update(v, t, ents) == "Failed", (v, t, ents)
        assert lg.has("auth")
        for b in (a, store(d, list_max=5)):
            assert b.list_version() == 2 and b.list_count() == 3
            assert b.list_lookup("a") and b.list_lookup("x") is None
            assert b.list_lookup("d") is None
        assert sorted(os.listdir(d)) == ["authlist.bin"]
        # Exactly list_max is fine, also by a differential.
        assert a.list_update(3, "Differential", [e("d"), e("e")]) == "Accepted"
        assert a.list_count() == 5
    both(run)


def test_cache_eviction_order():
    def run(d):
        a = store(d, cache_max=4)
        past = "2026-11-21T19:29:19Z"
        assert a.cache_put("A", {"status": "Accepted"}, T0)
        assert a.cache_put("B", {"status": "Blocked"}, T0)
        assert a.cache_put("C", {"status": "Accepted", "expiryDate": past}, T0)
        assert a.cache_put("D", {"status": "Accepted"}, T0)
        assert a.cache_count() == 4
        # Full: the NOT-valid entries go first, oldest first (B, then C).
        assert a.cache_put("E", {"status": "Accepted"}, T0)
        assert a.cache_lookup("b") is None and a.cache_count() == 4
        assert a.cache_put("a", {"status": "Accepted"}, T0)  # A is updated
        assert a.cache_put("F", {"status": "Accepted"}, T0)
        assert a.cache_lookup("c") is None
        # Then the oldest valid: D (A was refreshed after it).
        assert a.cache_put("G", {"status": "Invalid"}, T0)
        assert a.cache_lookup("d") is None
        got = sorted(t for t in "ABCDEFG" if a.cache_lookup(t, T0))
        assert got == ["A", "E", "F", "G"], got
        # The same order after a restart (the log keeps it).
        b = store(d, cache_max=4)
        assert b.cache_count() == 4
        assert b.cache_put("H", {"status": "Accepted"}, T0)
        assert b.cache_lookup("g") is None  # the only NOT-valid one
        assert b.cache_put("I", {"status": "Accepted"}, T0)
        assert b.cache_lookup("e") is None  # then the oldest valid
        assert sorted(t for t in "ABCDEFGHI" if b.cache_lookup(t)) == \
            ["A", "F", "H", "I"]
    both(run)


def test_cache_entries_and_expiry():
    def run(d):
        a = store(d)
        info = {"status": "Accepted", "expiryDate": "2026-11-21T20:29:20+01:00",
                "parentIdTag": "PaRenT"}
        assert a.cache_put("TaG1", info)
        got = a.cache_lookup("tag1", T0 - 1)
        assert got == {"status": "Accepted", "expiryDate": T0,
                       "parentIdTag": "PaRenT"}, got
        assert valid(got, T0 - 1) and not valid(got, T0) and valid(got, None)
        # Past its expiryDate a cached Accepted reads Expired.
        assert a.cache_lookup("TAG1", T0)["status"] == "Expired"
        assert not valid(a.cache_lookup("TAG1", T0), T0)
        assert not valid(None, T0) and not valid({"status": "Blocked"}, None)
        assert a.cache_put("tag1", {"status": "Blocked"})  # updated in place
        assert a.cache_count() == 1
        assert a.cache_lookup("TAG1") == {"status": "Blocked",
                                          "expiryDate": None,
                                          "parentIdTag": None}
        with Logs() as lg:
            for tag, bad in (("x", {"status": "Nope"}), ("x", None),
                             ("x", {"status": "Accepted", "expiryDate": 5}),
                             ("x" * 21, {"status": "Accepted"})):
                assert not a.cache_put(tag, bad)
        assert lg.has("not cached") and a.cache_count() == 1
        assert a.cache_clear() and a.cache_count() == 0
        assert a.cache_lookup("tag1") is None
        assert store(d).cache_count() == 0  # the clear is persisted
        assert a.cache_put("y", {"status": "Accepted"})
        assert store(d).cache_lookup("Y")["status"] == "Accepted"
        assert not AuthStore(d, cache_max=0).cache_put("z", {"status":
                                                             "Accepted"})
    both(run)


def test_list_beats_cache():
    # Scenario 53: a listed tag is never cached, the list decides.
    def run(d):
        a = store(d)
        assert a.list_update(1, "Full", [e("L1", "Blocked")]) == "Accepted"
        assert not a.cache_put("l1", {"status": "Accepted"})
        assert a.cache_lookup("L1") is None and a.cache_count() == 0
        # A cached tag that the list then gets leaves the cache.
        for t in ("c1", "c2", "c3"):
            assert a.cache_put(t, {"status": "Accepted"})
        assert a.list_update(2, "Differential", [e("C2", "Blocked"),
                                                 {"idTag": "c3"}]) == "Accepted"
        assert a.cache_count() == 2 and a.cache_lookup("c2") is None
        assert a.cache_lookup("c3") is not None  # deleted from the list only
        assert a.list_update(3, "Full", [e("C1", "Invalid")]) == "Accepted"
        assert a.cache_count() == 1 and a.cache_lookup("c1") is None
        b = store(d)
        assert b.cache_count() == 1 and b.cache_lookup("C3")
        assert b.list_lookup("c1")["status"] == "Invalid"
    both(run)


def test_cache_log_compaction_persists():
    def run(d):
        a = store(d, cache_max=8)
        for i in range(100):  # many compactions
            st = "Accepted" if i % 3 else "Invalid"
            assert a.cache_put("t%d" % (i % 11), {"status": st}, T0)
        assert a.cache_count() == 8
        size = os.stat(d + "/authcache.log")[6]
        assert size <= 16 + 2 * 8 * 48, size
        want = {}
        for i in range(11):
            want["t%d" % i] = a.cache_lookup("T%d" % i, T0)
        b = store(d, cache_max=8)
        assert b.cache_count() == 8
        for t, v in want.items():
            assert b.cache_lookup(t, T0) == v, t
    both(run)


class Crash(Exception):
    pass


class CrashingOs:
    # os for authstore with rename cut off, as by a power loss.
    def __getattr__(self, name):
        return getattr(os, name)

    def rename(self, a, b):
        raise Crash


def test_crash_before_rename():
    def run(d):
        a = store(d, cache_max=4)
        assert a.list_update(2, "Full", [e("a"), e("b")]) == "Accepted"
        for t in "wxyz":
            assert a.cache_put(t, {"status": "Accepted"})
        authstore.os = CrashingOs()
        try:
            for call in (lambda: a.list_update(3, "Full", [e("c")]),
                         lambda: a.list_update(3, "Differential", [e("c")]),
                         # the 5th put makes the log 2 x capacity: compaction
                         lambda: [a.cache_put(t, {"status": "Accepted"})
                                  for t in "wxyz"]):
                try:
                    call()
                    raise AssertionError("no crash")
                except Crash:
                    pass
        finally:
            authstore.os = os
        names = os.listdir(d)
        assert "authlist.bin.tmp" in names and "authcache.log.tmp" in names
        with Logs() as lg:
            b = store(d, cache_max=4)
        assert lg.has("unfinished")
        assert sorted(os.listdir(d)) == ["authcache.log", "authlist.bin"]
        assert b.list_version() == 2 and b.list_count() == 2
        assert b.list_lookup("c") is None and b.list_lookup("B")
        assert b.cache_count() == 4 and b.cache_lookup("w")
        assert b.list_update(3, "Differential", [e("c")]) == "Accepted"
        assert b.cache_put("v", {"status": "Accepted"})
    both(run)


def test_corrupt_files_recover():
    def run(d):
        a = store(d)
        assert a.list_update(2, "Full", [e("a"), e("b")]) == "Accepted"
        assert a.cache_put("c", {"status": "Accepted"})
        assert a.cache_put("d", {"status": "Accepted"})
        lp = d + "/authlist.bin"
        cp = d + "/authcache.log"
        data = open(lp, "rb").read()
        # A flipped bit in a record: CRC mismatch -> empty list + log line.
        bad = bytearray(data)
        bad[3] ^= 1
        for junk in (bytes(bad), data[:-1], b"", b"garbage" * 10):
            with open(lp, "wb") as f:
                f.write(junk)
            with Logs() as lg:
                b = store(d)
            assert lg.has("corrupt"), junk
            assert b.list_version() == 0 and b.list_count() == 0
            assert b.list_lookup("a") is None
            assert b.cache_count() == 2
        # A torn last record of the cache log is dropped, the rest kept.
        log_data = open(cp, "rb").read()
        with open(cp, "ab") as f:
            f.write(b"\x01" * 30)
        b = store(d)
        assert b.cache_count() == 2 and b.cache_lookup("D")
        assert os.stat(cp)[6] == len(log_data)
        assert b.cache_put("e", {"status": "Accepted"})
        assert store(d).cache_count() == 3
        # A nonsense record stops the replay there.
        with open(cp, "ab") as f:
            f.write(b"\x07" * 48)
        with Logs() as lg:
            b = store(d)
        assert lg.has("damaged") and b.cache_count() == 3
        # A bad header: empty cache.
        with open(cp, "wb") as f:
            f.write(b"not a cache log at all" * 4)
        with Logs() as lg:
            b = store(d)
        assert lg.has("corrupt") and b.cache_count() == 0
        assert b.cache_lookup("c") is None
        assert b.cache_put("c", {"status": "Accepted"})
    both(run)


def test_flash_full_fails_cleanly():
    # A differential that does not fit the flash -> Failed, list unchanged.
    d, dev = lfs_dir(blocks=24)  # 96 KiB littlefs: staging + new list of 600 fit
    try:
        a = store(d, list_max=1024)
        ents = [e("tag%04d" % i) for i in range(600)]
        assert a.list_update(1, "Full", ents) == "Accepted"  # 28.8 KB
        for i in range(96):  # the rest of the flash taken by other files
            try:
                with open(d + "/filler%d" % i, "wb") as f:
                    f.write(bytes(1024))
            except OSError:
                break
        with Logs() as lg:
            r = a.list_update(2, "Differential", [e("more")])
        assert r == "Failed" and lg.has("list write failed"), r
        assert a.list_version() == 1 and a.list_count() == 600
        b = store(d)
        assert b.list_version() == 1 and b.list_lookup("TAG0599")
        assert "authlist.bin.tmp" not in os.listdir(d)
    finally:
        vfs.umount(LFS)


def _new_store(d):
    return store(d, list_max=1024, cache_max=256)


def ram_use(d):
    # (bytes held by a mounted store, bytes allocated by two lookups)
    gc.collect()
    m0 = gc.mem_alloc()
    b = _new_store(d)  # mount's temporaries die in the callee's frame
    gc.collect()
    held = gc.mem_alloc() - m0
    m0 = gc.mem_alloc()
    b.list_lookup("TAG00700")
    b.cache_lookup("c99")
    return held, gc.mem_alloc() - m0


def test_1024_entries_sanity():
    d, dev = lfs_dir()
    try:
        a = store(d, list_max=1024, cache_max=256)
        ents = [e("TAG%05d" % (i * 7), "Accepted" if i % 5 else "Blocked",
                  parent="P%d" % (i % 3)) for i in range(1024)]
        assert a.list_update(9, "Full", ents) == "Accepted"
        del ents
        assert a.list_update(10, "Full", [e("y%d" % i) for i in range(1025)]) \
            == "Failed"
        for i in range(256):
            assert a.cache_put("c%d" % i, {"status": "Accepted"})
        a = store(d, list_max=1024, cache_max=256)
        assert a.list_count() == 1024 and a.cache_count() == 256
        for i in range(1024):
            r = a.list_lookup("tag%05d" % (i * 7))
            assert r and r["parentIdTag"] == "P%d" % (i % 3), i
            assert r["status"] == ("Accepted" if i % 5 else "Blocked")
        assert a.list_lookup("tag00001") is None
        # A lookup reads a few records, never the 48 KiB list.
        dev.read_bytes = 0
        for i in range(0, 1024, 64):
            assert a.list_lookup("TAG%05d" % (i * 7))
            assert a.cache_lookup("C%d" % (i // 4))
        per = dev.read_bytes // 16
        assert per < 48 * 1024 // 4, per
        # RAM: the store object and a lookup stay small.
        held, used = ram_use(d)
        assert held < 4 * 1024, held
        assert used < 6 * 1024, used  # 2 file opens + Python bdev calls
    finally:
        vfs.umount(LFS)


def _power_cut_sweep(setup, update, check, **kw):
    # Runs update() once per program/erase operation it makes, cutting the
    # power at that operation (boards/unix/norflash.py), then remounts and
    # check(store, cut) on what survived. Returns the number of cut points.
    from mpocpp_board.norflash import NorFlash, mount_lfs
    dev = NorFlash(64 * 4096)
    mount_lfs(dev, LFS)
    setup(store(LFS, **kw))
    vfs.umount(LFS)
    image = bytes(dev.mem)
    k = 0
    while True:
        dev = NorFlash(len(image), _mem=bytearray(image))
        mount_lfs(dev, LFS)
        a = store(LFS, **kw)
        dev.cut_at_op = dev.ops + k
        try:
            update(a)
        except OSError:  # the cut itself, or EIO from a dead device
            pass
        cut = not dev.alive
        dev = dev.reopen()
        try:
            vfs.umount(LFS)
        except OSError:
            pass
        gc.collect()
        mount_lfs(dev, LFS)
        check(store(LFS, **kw), cut)
        vfs.umount(LFS)
        if not cut:
            return k
        k += 1


def test_power_cut_list_update_is_atomic():
    old = [e("T%02d" % i) for i in range(40)]

    def setup(a):
        assert a.list_update(1, "Full", old) == "Accepted"

    def update(a):
        a.list_update(2, "Differential", [e("t05", "Blocked"), {"idTag": "T06"},
                                          e("new")])

    def check(a, cut):
        v = a.list_version()
        assert v in (1, 2) and (cut or v == 2), v
        if v == 1:
            assert a.list_count() == 40 and a.list_lookup("new") is None
            assert a.list_lookup("t05")["status"] == "Accepted"
        else:
            assert a.list_count() == 40 and a.list_lookup("NEW")
            assert a.list_lookup("t05")["status"] == "Blocked"
            assert a.list_lookup("t06") is None
        assert a.list_update(3, "Differential", [e("x")]) == "Accepted"

    n = _power_cut_sweep(setup, update, check)
    assert n > 5, n


def test_power_cut_cache_put_and_compaction():
    def setup(a):
        for t in ("a", "b", "c"):
            assert a.cache_put(t, {"status": "Accepted"}, T0)
        for t in ("a", "b", "c", "d"):  # 7 records: the next put compacts
            assert a.cache_put(t, {"status": "Blocked"}, T0)

    def update(a):
        a.cache_put("e", {"status": "Invalid"}, T0)  # evicts a, compacts

    def check(a, cut):
        got = {}
        for t in "abcde":
            r = a.cache_lookup(t, T0)
            if r:
                got[t] = r["status"]
        new = {"b": "Blocked", "c": "Blocked", "d": "Blocked", "e": "Invalid"}
        old = {"a": "Blocked", "b": "Blocked", "c": "Blocked", "d": "Blocked"}
        assert got == new or (cut and got == old), got
        assert a.cache_count() == len(got)
        assert a.cache_put("f", {"status": "Accepted"}, T0)

    n = _power_cut_sweep(setup, update, check, cache_max=4)
    assert n > 2, n
