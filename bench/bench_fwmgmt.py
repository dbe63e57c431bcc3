"""Benchmark of firmware management (httpc, ftpc, fwimage) in MicroPython.

usage: .venv/bin/python bench/bench_fwmgmt.py [--quick]

Builds the real image from build/mpy-unix (tools/make_image.py), serves it
from the stdlib test servers (host_tests/fileservers.py) on loopback and runs
MicroPython (unix port, -X heapsize=512k as tools/sim) on littlefs over a
flash kept in a host file. Prints a Markdown section: download time and
throughput over HTTP and FTP, heap allocated per KiB transferred, peak heap
during a transfer, verify and install (unpack) time, upload time.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from harness import MICROPYTHON, mp_env  # noqa: E402
from fileservers import FtpServer, HttpFileServer  # noqa: E402
import build_mpy  # noqa: E402
import make_image  # noqa: E402

HEAP = "512k"

MP_SCRIPT = r"""
import asyncio, gc, json, sys, time, vfs
from mpocpp.util import log
log.level = 3
from mpocpp_board.fileflash import FileNorFlash
from mpocpp.transfer import http as httpc, ftp as ftpc, fwimage
URL_HTTP, URL_FTP, URL_POST, FLASH = sys.argv[1:5]
REPS = int(sys.argv[5])
dev = FileNorFlash(FLASH, 1024 * 1024)
vfs.VfsLfs2.mkfs(dev)
vfs.mount(vfs.VfsLfs2(dev), "/flash")


class Net:
    async def open_connection(self, host, port, ssl=None, server_hostname=None):
        return await asyncio.open_connection(host, port)


class Null:
    def write(self, mv):
        pass


net = Net()
buf = bytearray(2048)
out = {}


async def one(name, fn, alloc=False):
    # alloc: with the GC off, so every byte allocated shows (only without
    # the simulated flash, whose writes allocate on this host board).
    ts = []
    allocs = []
    for _ in range(REPS):
        gc.collect()
        a0 = gc.mem_alloc()
        if alloc:
            gc.disable()
        t0 = time.ticks_us()
        n = await fn()
        ts.append(time.ticks_diff(time.ticks_us(), t0))
        allocs.append(gc.mem_alloc() - a0)
        gc.enable()
    ts.sort()
    out[name] = {"bytes": n, "us": ts[len(ts) // 2], "alloc": min(allocs) if alloc else None}


async def http_to_flash():
    with open("/flash/fw.img", "wb") as f:
        return await httpc.get(URL_HTTP, f, net, buf, timeout_ms=10000)


async def ftp_to_flash():
    with open("/flash/fw.img", "wb") as f:
        return await ftpc.retr(URL_FTP, f, net, buf, 10000)


async def http_null():
    return await httpc.get(URL_HTTP, Null(), net, buf, timeout_ms=10000)


async def post():
    await httpc.post_file(URL_POST, "/flash/fw.img", "diag.txt", net, buf, timeout_ms=10000)
    import os
    return os.stat("/flash/fw.img")[6]


async def main():
    await one("http_flash", http_to_flash)
    await one("ftp_flash", ftp_to_flash)
    await one("http_ram", http_null, True)
    await one("post", post)
    ts = []
    for _ in range(REPS):
        t0 = time.ticks_us()
        fwimage.verify("/flash/fw.img", buf)
        ts.append(time.ticks_diff(time.ticks_us(), t0))
    ts.sort()
    out["verify_us"] = ts[len(ts) // 2]
    e0 = dev.erases
    t0 = time.ticks_us()
    fwimage.install("/flash/fw.img", "/flash", "unix", buf)
    out["install_us"] = time.ticks_diff(time.ticks_us(), t0)
    out["install_erases"] = dev.erases - e0
    print("RESULT " + json.dumps(out))


asyncio.run(main())
"""


def main():
    quick = "--quick" in sys.argv
    reps = 3 if quick else 7
    src = build_mpy.build("unix", quiet=True)
    img = make_image.pack(make_image.collect(src), "bench", "unix")
    tmp = tempfile.mkdtemp(prefix="bench_fw")
    http = HttpFileServer().start()
    ftp = FtpServer(os.path.join(tmp, "ftp")).start()
    try:
        http.add("/fw.img", img)
        with open(os.path.join(tmp, "ftp", "fw.img"), "wb") as f:
            f.write(img)
        script = os.path.join(tmp, "bench.py")
        with open(script, "w") as f:
            f.write(MP_SCRIPT)
        env = mp_env()
        p = subprocess.run(
            [
                MICROPYTHON,
                "-X",
                "heapsize=" + HEAP,
                script,
                http.url("/fw.img"),
                ftp.url("/fw.img"),
                http.url("/upload"),
                os.path.join(tmp, "flash.bin"),
                str(reps),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
        if p.returncode or not line:
            sys.exit("micropython failed:\n" + p.stdout + p.stderr)
        r = json.loads(line[0][7:])
    finally:
        http.stop()
        ftp.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    kib = len(img) / 1024
    print("## Firmware management (httpc, ftpc, fwimage)\n")
    print("Image of build/mpy-unix: %.1f KiB. MicroPython unix port, heap %s, littlefs on a "
          "1 MiB simulated NOR flash, loopback servers (stdlib), 2 KiB transfer buffer; "
          "median of %d runs.\n" % (kib, HEAP, reps))
    print("| measure | value |")
    print("|---|---|")
    for key, what in (("http_flash", "HTTP GET into flash"), ("ftp_flash", "FTP RETR into flash"),
                      ("http_ram", "HTTP GET, discarded (no flash)"),
                      ("post", "HTTP POST multipart from flash")):
        x = r[key]
        ms = x["us"] / 1000
        print("| %s | %.1f ms, %.0f KiB/s |" % (what, ms, x["bytes"] / 1024 / (ms / 1000)))
        if x["alloc"] is not None:
            print("| %s: heap allocated | %d B total, %.0f B per KiB |" % (
                what, x["alloc"], x["alloc"] / (x["bytes"] / 1024)))
    print("| verify (SHA-256 + structure, from flash) | %.1f ms |" % (r["verify_us"] / 1000))
    print("| install (verify + unpack into a slot + pointer) | %.1f ms, %d erases |" % (
        r["install_us"] / 1000, r["install_erases"]))


if __name__ == "__main__":
    main()
