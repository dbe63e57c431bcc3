"""Benchmark of the authorization store (mpocpp/model/authstore.py).

usage: .venv/bin/python bench/bench_auth.py [--quick]

Runs MicroPython (unix port, -X heapsize=256k) on littlefs over a flash kept
in a host file (not in the heap being measured) with a 1,024-entry local list
and a full 256-entry cache, and prints a Markdown section: RAM held by the
store, allocation per lookup, lookup time, flash work per cache put, list write time.
"""
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

from harness import MICROPYTHON, mp_env  # noqa: E402

HEAP = "256k"

# Runs inside MicroPython; N (iterations) is prepended.
MP_SCRIPT = r"""
import gc, time, vfs
from mpocpp.util import log
from mpocpp.model.authstore import AuthStore
log.level = 3


class FileFlash:
    # Flash of 4 KiB blocks kept in a host file, so that the image is not in
    # the GC heap being measured; counts programmed bytes and erases.
    def __init__(self, path, blocks):
        self.n = blocks
        self.f = open(path, "w+b")
        self.ff = b"\xff" * 4096
        for _ in range(blocks):
            self.f.write(self.ff)
        self.programmed_bytes = self.erases = 0

    def readblocks(self, blk, buf, off=0):
        self.f.seek(blk * 4096 + off)
        self.f.readinto(buf)

    def writeblocks(self, blk, buf, off=None):
        if off is None:
            for i in range(len(buf) // 4096):
                self.ioctl(6, blk + i)
            off = 0
        self.f.seek(blk * 4096 + off)
        self.f.write(buf)
        self.programmed_bytes += len(buf)

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return 4096
        if op == 6:
            self.f.seek(arg * 4096)
            self.f.write(self.ff)
            self.erases += 1
        return 0


dev = FileFlash(IMAGE, 256)
vfs.VfsLfs2.mkfs(dev)
vfs.mount(vfs.VfsLfs2(dev), "/flash")
D = "/flash/auth"


def flash():
    return dev.programmed_bytes, dev.erases


def ents(lo, hi):
    return [{"idTag": "TAG%06d" % (i * 7),
             "idTagInfo": {"status": "Accepted", "parentIdTag": "P%d" % (i % 9),
                           "expiryDate": "2030-01-01T00:00:00Z"}}
            for i in range(lo, hi)]


out = []


def row(name, value, unit):
    out.append((name, value, unit))


a = AuthStore(D, list_max=1024, cache_max=256)
a.mount()
# The list in 8 messages of 128 entries: a SendLocalList must fit the
# 8 KiB receive buffer, and 1,024 parsed entries would not fit the heap.
for v in range(1, 9):
    e = ents((v - 1) * 128, v * 128)
    gc.collect()
    t = time.ticks_us()
    f0 = flash()
    r = a.list_update(v, "Full" if v == 1 else "Differential", e)
    dt = time.ticks_diff(time.ticks_us(), t)
    assert r == "Accepted", r
    if v == 1:
        row("Full update, 128 entries", "%.1f" % (dt / 1000), "ms")
    del e
assert a.list_count() == 1024
row("Differential update +128 onto 896 (writes 1,024)", "%.1f" % (dt / 1000), "ms")
row("  flash programmed by it", "%.1f" % ((flash()[0] - f0[0]) / 1024), "KiB")
row("  erases by it", flash()[1] - f0[1], "4 KiB blocks")
e = ents(500, 501)  # an update: the list is full
t = time.ticks_us()
assert a.list_update(9, "Differential", e) == "Accepted"
row("Differential update of 1 entry on 1,024", "%.1f"
    % (time.ticks_diff(time.ticks_us(), t) / 1000), "ms")
del e

for i in range(256):
    a.cache_put("CACHE%d" % i, {"status": "Accepted"})
assert a.cache_count() == 256

# RAM: a freshly mounted store (list 1,024 + cache 256), then lookups.
del a
gc.collect()
m0 = gc.mem_alloc()
a = AuthStore(D, list_max=1024, cache_max=256)
gc.collect()
row("RAM held by the store object (cache_max 256)", gc.mem_alloc() - m0, "bytes")
t = time.ticks_us()
a.mount()
row("mount (CRC of the list, replay of the cache log)", "%.1f"
    % (time.ticks_diff(time.ticks_us(), t) / 1000), "ms")
gc.collect()
row("RAM held after mount", gc.mem_alloc() - m0, "bytes")
m1 = gc.mem_alloc()
assert a.list_lookup("tag000070")
row("allocated by one list lookup (hit)", gc.mem_alloc() - m1, "bytes")
m1 = gc.mem_alloc()
assert a.cache_lookup("cache77")
row("allocated by one cache lookup (hit)", gc.mem_alloc() - m1, "bytes")
gc.collect()
row("heap free after mount, 256 KiB heap", gc.mem_free(), "bytes")


def timed(name, tags, fn):
    t = time.ticks_us()
    for s in tags:
        fn(s)
    row(name, "%.0f" % (time.ticks_diff(time.ticks_us(), t) / len(tags)), "us")


hits = ["tag%06d" % ((i * 389 % 1024) * 7) for i in range(N)]
timed("list lookup, hit (mean)", hits, a.list_lookup)
timed("list lookup, miss (mean)", ["nope%d" % i for i in range(N)], a.list_lookup)
timed("cache lookup, hit (mean)", ["cache%d" % (i % 256) for i in range(N)],
      a.cache_lookup)
timed("cache lookup, miss (mean)", ["nope%d" % i for i in range(N)],
      a.cache_lookup)

# Cache puts into a full cache: each evicts; compaction every 256 puts.
f0 = flash()
t = time.ticks_us()
for i in range(N):
    a.cache_put("NEW%d" % i, {"status": "Accepted" if i % 4 else "Invalid"})
dt = time.ticks_diff(time.ticks_us(), t)
f1 = flash()
row("cache put into the full cache (mean, incl. compaction)", "%.0f" % (dt / N), "us")
row("  flash programmed per put (48-byte record)", "%.0f" % ((f1[0] - f0[0]) / N),
    "bytes")
row("  erases per put", "%.2f" % ((f1[1] - f0[1]) / N), "4 KiB blocks")
for r in out:
    print("ROW|%s|%s|%s" % r)
"""


def main():
    quick = "--quick" in sys.argv
    n = 200 if quick else 1024
    tmp = tempfile.mkdtemp(prefix="bench_auth_")
    path = os.path.join(tmp, "bench.py")
    with open(path, "w") as f:
        f.write("N = %d\nIMAGE = %r\n" % (n, os.path.join(tmp, "flash.img"))
                + MP_SCRIPT)
    try:
        p = subprocess.run([MICROPYTHON, "-X", "heapsize=" + HEAP, path],
                           env=mp_env(), capture_output=True, text=True,
                           timeout=600)
    finally:
        shutil.rmtree(tmp)
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        sys.exit(1)
    rows = []
    for line in p.stdout.splitlines():
        if line.startswith("ROW|"):
            rows.append(line.split("|")[1:])
    print("## Authorization store: 1,024-entry local list, 256-entry cache\n")
    print("MicroPython unix port (64-bit: objects take ~1.5-2x the RAM of the "
          "32-bit boards), -X heapsize=%s, littlefs on a 1 MiB flash of 4 KiB "
          "blocks kept in a host file (outside the measured heap); %d "
          "iterations per timing.\n" % (HEAP, n))
    print("| measure | value | unit |")
    print("|---|---:|---|")
    for name, value, unit in rows:
        print("| %s | %s | %s |" % (name, value, unit))


if __name__ == "__main__":
    main()
