#!/usr/bin/env python3
"""The firmware on the real rp2 port (stock MicroPython for the Raspberry Pi
Pico in the rp2040js emulator, tools/pico): GC heap in use after the charger
is built and, sampled every 5 s of emulated time after a collection, while
its main loop runs offline (no WiFi on this Pico), with `.mpy` files in
/lib as `tools/deploy` installs them, and run in place from a ROMFS
partition (a build with one: `tools/deploy --romfs`); offline also while an
EV charges (FreeCharging) and once the session's code is released after it;
and connected to a bench CSMS over the USB serial bridge, idle and while a
remotely started transaction sends MeterValues.

    .venv/bin/python bench/bench_pico.py [--quick]
    .venv/bin/python bench/bench_pico.py --map [--romfs]
    .venv/bin/python bench/bench_pico.py --names

--names: the names a charger interns over a life in which every module
of the firmware is loaded once (each imported, then released): a name is
never freed, so what a long-running charger holds once it has served every
operation, against the qstr pools that hold them.

--map: where the heap goes instead, connected and while a transaction
sends MeterValues (`micropython.mem_info(1)` and `qstr_info` on the Pico):
the names, the modules loaded and the size of their .mpy files, the GC
blocks by kind and the largest ones.
"""
import argparse
import ast
import collections
import json
import os
import re
import sys
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

from pico.harness import Pico, find_uf2, mkfs, mkromfs, node_ready  # noqa: E402
from test_pico import HEAP_MAIN, PROVISIONING, bundle, ev, load, until, wire  # noqa: E402


def _samples(p, after, seconds):
    # The "HEAP run" figures printed from the console mark `after` on, over
    # `seconds` of emulated time (one every 5 s).
    t0 = p.emu_ms()
    while p.emu_ms() - t0 < seconds * 1000:
        time.sleep(1)
    # (a bridge frame may share a line with the text: search, not startswith)
    return [int(n) for n in re.findall(r"HEAP run (\d+)", p.console()[after:])]


def _session(p):
    # Offline, FreeCharging: an EV plugs in, draws 16 A for 15 s and leaves;
    # -> ([heap while charging], [heap 40 s after it left]: the session's
    # code released after idleReleaseMs, 30 s).
    load(p, 16)
    ev(p, 9)
    p.wait_for("transaction started", timeout=120)
    ev(p, 6)
    until(p, lambda: p.gpio(15) == 1, "relay closed")
    charging = _samples(p, p.mark(), 15)
    ev(p, 12)
    p.wait_for("transaction stopped", timeout=120)
    t0 = p.emu_ms()
    until(p, lambda: p.emu_ms() - t0 > 40000, "40 s idle", timeout=600)
    return charging, _samples(p, p.mark(), 15)


def _remote_start(p, csms):
    # Connected: the bench CSMS starts a transaction remotely, the EV draws
    # 16 A -> the CSMS's mark before it, once the relay is closed.
    load(p, 16)
    m = csms.mark()
    r = csms.call("PICO1", "RemoteStartTransaction", {"idTag": "REMOTE1", "connectorId": 1},
                  timeout=120)
    assert r["status"] == "Accepted", r
    ev(p, 9)
    csms.wait_for("StartTransaction", cp_id="PICO1", after=m, timeout=180)
    ev(p, 6)
    until(p, lambda: p.gpio(15) == 1, "relay closed")
    return m


def _online_session(p, csms):
    # A remote start, MeterValues every 10 s (each validated both ways: the
    # validator stays loaded) -> [heap while charging].
    m = _remote_start(p, csms)
    mv = csms.wait_for("MeterValues", cp_id="PICO1", after=m, timeout=180)
    charging = _samples(p, p.mark(), 25)
    csms.call("PICO1", "RemoteStopTransaction", {"transactionId": mv.payload["transactionId"]},
              timeout=120)
    csms.wait_for("StopTransaction", cp_id="PICO1", after=m, timeout=180)
    return charging


def _online_provisioning(csms):
    return dict(PROVISIONING, keys={"HeartbeatInterval": 60, "MeterValueSampleInterval": 10},
                settings={"csmsUrl": csms.url, "chargeBoxId": "PICO1", "net": "usb",
                          # the validator released 5 s after a message (30 s
                          # by default): the samples see both
                          "idleReleaseMs": 5000})


def _flash(tmp, romfs, main, prov):
    # The board's flash as tools/deploy leaves it: the bundle in /lib (or in
    # a ROMFS image), main.py, the provisioning -> (littlefs image, ROMFS
    # image or None).
    files = bundle()
    rom = None
    if romfs:
        rom = mkromfs(os.path.join(tmp, "romfs.img"),
                      {k: v for k, v in files.items() if k.startswith("/lib/")})
        files = {}
    files["/main.py"] = main.encode()
    files["/provisioning.json"] = json.dumps(prov).encode()
    img = os.path.join(tmp, "fs.img")
    mkfs(img, files)
    return img, rom


def _bridge(p):
    # tools/bridge on the Pico's USB serial port (the CSMS's TCP side).
    return subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tools", "bridge"), "--serial", p.pty()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _registered(csms):
    csms.wait_for("StatusNotification", cp_id="PICO1", timeout=300,
                  pred=lambda m: m.payload["connectorId"] == 1)


# The heap-map run's main: HEAP_MAIN, and once a transaction has sent
# values for a while (its third report with MeterValues' code loaded) the
# names, the modules and the block map, printed once.
_REPORT = '        print("HEAP run %d %d" % (gc.mem_alloc(), gc.mem_free()))\n'
MAP_MAIN = HEAP_MAIN.replace(_REPORT, _REPORT + """\
        import sys, micropython
        if "mpocpp.metering.metervalues" in sys.modules:
            n[0] += 1
            if n[0] == 3:
                micropython.qstr_info()
                print("MODULES", sorted(sys.modules))
                micropython.mem_info(1)
                print("MAP END")
""").replace("async def report():", "n = [0]\nasync def report():")
assert MAP_MAIN.count("MAP END") == 1 and "n = [0]" in MAP_MAIN

# Block kinds in micropython.mem_info(1)'s map (py/gc.c): the head block
# of each allocation, "=" its tail blocks, "." free.
KINDS = {"h": "other: bytecode, raw code, instances, dict and map tables, buffers, "
              "qstr pools",
         "B": "function objects", "S": "str and bytes", "D": "dicts", "T": "tuples",
         "F": "floats", "M": "modules", "L": "lists", "A": "arrays and bytearrays"}


def blocks(text, block=16):
    """-> [(kind, bytes)] of each allocation in the last block map printed
    in text (micropython.mem_info(1)), largest first."""
    i = text.rfind("GC memory layout")
    out = []
    cur = None
    pos = None
    for addr, row in re.findall(r"^([0-9a-f]{5,8}): (.*?)\r?$", text[i:], re.M):
        start = int(addr, 16) // block
        if start != pos and cur is not None:  # free lines left out between
            out.append(cur)
            cur = None
        pos = start
        for c in row:
            if c == "=":
                if cur is not None:
                    cur[1] += block
            else:
                if cur is not None:
                    out.append(cur)
                cur = [c, block] if c != "." else None
            pos += 1
    if cur is not None:
        out.append(cur)
    return sorted(((k, n) for k, n in out), key=lambda x: -x[1])


def heap_map(romfs):
    """Connected over the USB serial bridge, a remote start, an EV drawing
    16 A: the console once the map is printed, and the bundle -> (console,
    {board path: host path}), or None with why."""
    found, why = find_uf2(romfs)
    why = why or node_ready()
    if why:
        return None, why
    from csms_lib import BenchCSMS
    with tempfile.TemporaryDirectory(prefix="bench-pico-map-") as tmp:
        csms = BenchCSMS(log=lambda line: None).start()
        img, rom = _flash(tmp, romfs, MAP_MAIN, _online_provisioning(csms))
        p = Pico(fs=img, romfs=rom)
        bridge = None
        try:
            wire(p)
            p.start()
            bridge = _bridge(p)
            _registered(csms)
            _remote_start(p, csms)
            p.wait_for("MAP END", timeout=600)
            return (p.console(), bundle()), None
        finally:
            p.stop()
            if bridge is not None:
                bridge.kill()
                bridge.wait()
            csms.stop()


# qstr_info()'s summary line: pools, names, bytes of text, bytes in all.
_POOL = re.compile(r"qstr pool: n_pool=(\d+), n_qstr=(\d+), n_str_data_bytes=(\d+), "
                   r"n_total_bytes=(\d+)")


def print_map(romfs):
    how = "run in place from ROMFS" if romfs else "`.mpy` files in /lib"
    got, why = heap_map(romfs)
    if got is None:
        print("%s: skipped: %s (docs/pico-emulator.md).\n" % (how, why))
        return
    text, mpy = got
    text = text[text.rfind("qstr pool:"):]
    pool = _POOL.search(text)
    gc_line = re.search(r"GC: total: (\d+), used: (\d+), free: (\d+)", text)
    mods = ast.literal_eval(re.search(r"MODULES (\[.*?\])", text).group(1))
    ours = [m for m in mods if m.startswith("mpocpp")]
    size = 0
    for m in ours:
        base = "/lib/" + m.replace(".", "/")
        for path in (base + ".mpy", base + "/__init__.mpy"):
            if path in mpy:
                size += os.path.getsize(mpy[path])
    b = blocks(text)
    by = collections.Counter()
    count = collections.Counter()
    for k, n in b:
        by[k] += n
        count[k] += 1
    print("Where the heap goes on the emulated Pico (the rp2 port), %s, connected over the "
          "USB serial bridge, a remotely started transaction sending MeterValues every 10 s "
          "(`bench/bench_pico.py --map%s`).\n" % (how, " --romfs" if romfs else ""))
    print("| what | bytes |")
    print("|---|---|")
    print("| GC heap in use (of %s) | %s |" % (gc_line.group(1), gc_line.group(2)))
    print("| names: %s in %s qstr pools (%s bytes of text) | %s |"
          % (pool.group(2), pool.group(1), pool.group(3), pool.group(4)))
    print("| firmware modules loaded: %d, their `.mpy` files (bytecode and names%s) | %d |"
          % (len(ours), ", in flash" if romfs else "", size))
    for k, n in by.most_common():
        print("| blocks `%s` (%s): %d | %d |" % (k, KINDS.get(k, "?"), count[k], n))
    print("| the largest blocks | %s |" % ", ".join("%s %d" % (k, n) for k, n in b[:12]))
    sizes = collections.Counter(n for k, n in b if k == "h")
    top = sorted(sizes.items(), key=lambda x: -x[0] * x[1])[:12]
    print("| `h` blocks by size, the most bytes first (size x count) | %s |"
          % ", ".join("%d x %d" % x for x in top))
    print("\nModules: %s\n" % ", ".join(m.replace("mpocpp.", "") for m in ours))


# The names run's main: every module of the bundle imported in turn, each
# released before the next (the Pico's heap does not hold them all at
# once), qstr_info() after each.
NAMES_MAIN = """import gc, sys, micropython
for m in %r:
    try:
        __import__(m)
    except Exception as e:
        print("NAMES failed", m, repr(e))
    for k in list(sys.modules):
        if k.startswith("mpocpp"):
            del sys.modules[k]
    gc.collect()
    print("NAMES after", m, end=" ")
    micropython.qstr_info()
print("NAMES heap", gc.mem_alloc())
micropython.qstr_info(1)
print("NAMES END")
"""


def lifetime_names():
    """-> (console, {module: its .mpy's names}), or None with why."""
    found, why = find_uf2(False)
    why = why or node_ready()
    if why:
        return None, why
    files = bundle()
    mods = sorted(k[5:-4].replace("/", ".") for k in files
                  if k.startswith("/lib/") and k.endswith(".mpy"))
    files = dict(files)
    files["/main.py"] = (NAMES_MAIN % (mods,)).encode()
    with tempfile.TemporaryDirectory(prefix="bench-pico-names-") as tmp:
        img = os.path.join(tmp, "fs.img")
        mkfs(img, files)
        p = Pico(fs=img)
        try:
            p.start()
            p.wait_for("NAMES END", timeout=600)
            return (p.console(), {m: mpy_names(files["/lib/" + m.replace(".", "/") + ".mpy"])
                                  for m in mods}), None
        finally:
            p.stop()


def mpy_names(path):
    """-> the names a .mpy file interns when loaded (its qstr table less the
    static names, which every port has in ROM): .mpy format 6."""
    with open(path, "rb") as f:
        b = f.read()

    def vuint(i):
        v = 0
        while True:
            c = b[i]
            i += 1
            v = (v << 7) | (c & 0x7F)
            if not c & 0x80:
                return v, i

    assert b[:2] == b"M\x06", path
    n, i = vuint(4)
    _, i = vuint(i)  # the objects
    out = []
    for _ in range(n):
        ln, i = vuint(i)
        if ln & 1:  # static
            continue
        ln >>= 1
        out.append(b[i:i + ln].decode())
        i += ln + 1
    return out


def print_names():
    got, why = lifetime_names()
    if got is None:
        print("names: skipped: %s (docs/pico-emulator.md).\n" % why)
        return
    text, tables = got
    rows = re.findall(r"NAMES after (\S+) " + _POOL.pattern, text)
    failed = re.findall(r"NAMES failed (\S+) (.*)", text)
    heap = re.search(r"NAMES heap (\d+)", text)
    names = re.findall(r"^Q\((.*)\)\r?$", text[heap.end():], re.M)
    pool = rows[-1][1:]  # pools, names, text bytes, all bytes
    grew = [(rows[k][0], rows[k - 1][2]) for k in range(1, len(rows))
            if rows[k][1] != rows[k - 1][1]]
    in_mpy = set()
    for v in tables.values():
        in_mpy.update(v)
    by_import = [q for q in names if q not in in_mpy and (q.startswith("/") or "." in q)]
    heap = int(heap.group(1))
    print("The names on the emulated Pico (the rp2 port, `.mpy` files in /lib) after every "
          "module of the firmware has been loaded once and released "
          "(`bench/bench_pico.py --names`): a name is never freed, so this is what a "
          "long-running charger holds once it has served every operation.\n")
    print("| what | value |")
    print("|---|---|")
    print("| modules loaded in turn | %d%s |" % (len(rows), "".join(
        "; %s not loaded: %s" % (m, e.strip()) for m, e in failed)))
    print("| names (the script's own dozen included) | %s in %s qstr pools, %s bytes of text, "
          "%s bytes in all |" % (pool[1], pool[0], pool[2], pool[3]))
    print("| of them interned by the import itself (file paths, dotted module names) | %d |"
          % len(by_import))
    print("| GC heap in use after all were released (the names, `sys.modules`' table, the "
          "script) | %d |" % heap)
    print("| a new qstr pool was allocated | %s |" % ", ".join(
        "at %s (%s names before)" % g for g in grew))
    print()


def measure(run_s, romfs, online=False):
    """-> (UF2 name, GC heap in all, in use after the build, [in use while
    running], session) in bytes, or None with why. online: connected to a
    bench CSMS over the USB serial bridge (tools/bridge), sampled once
    registered; session is _session()'s figures offline, _online_session()'s
    connected."""
    found, why = find_uf2(romfs)
    why = why or node_ready()
    if why:
        return None, why
    with tempfile.TemporaryDirectory(prefix="bench-pico-") as tmp:
        prov = PROVISIONING
        csms = bridge = None
        if online:
            from csms_lib import BenchCSMS
            csms = BenchCSMS(log=lambda line: None).start()
            prov = _online_provisioning(csms)
        img, rom = _flash(tmp, romfs, HEAP_MAIN, prov)
        p = Pico(fs=img, romfs=rom)
        try:
            wire(p)
            p.start()
            if online:
                bridge = _bridge(p)
                _registered(csms)
            else:
                p.wait_for("HEAP built", timeout=300)
            m = p.mark()  # samples before it registered left out
            p.wait_for("HEAP run", timeout=120, after=m)
            runs = _samples(p, m, run_s)
            lines = p.console()
            session = _online_session(p, csms) if online else _session(p)
        finally:
            p.stop()
            if bridge is not None:
                bridge.kill()
                bridge.wait()
            if csms is not None:
                csms.stop()
    built = [(int(a), int(b)) for a, b in re.findall(r"HEAP built (\d+) (\d+)", lines)][-1]
    return (os.path.basename(found[0]), built[0] + built[1], built[0], runs, session), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--map", action="store_true", help="where the heap goes, connected and "
                    "charging, instead of the figures")
    ap.add_argument("--romfs", action="store_true", help="with --map: run in place from ROMFS")
    ap.add_argument("--names", action="store_true", help="the names held once every module "
                    "has been loaded, instead of the figures")
    a = ap.parse_args()
    if a.names:
        print_names()
        return
    if a.map:
        print_map(a.romfs)
        return
    print("## The real rp2 port: heap on the emulated Pico (issue 8)\n")
    run_s = 30 if a.quick else 120
    runs = ((False, False, "`.mpy` files in /lib (stock firmware, `tools/deploy`), offline"),
            (True, False, "run in place from ROMFS (`tools/deploy --romfs`), offline"),
            (False, True, "`.mpy` files in /lib, connected (ws://, the USB serial bridge)"),
            (True, True, "run in place from ROMFS, connected (ws://, the USB serial bridge)"))
    for romfs, online, how in runs:
        got, why = measure(run_s, romfs, online)
        if got is None:
            print("%s: skipped: %s (docs/pico-emulator.md).\n" % (how, why))
            continue
        uf2, total, built, alloc, session = got
        print("MicroPython rp2 port (`%s`), firmware without line numbers, board code "
              "`boards/rp2`: %s.\n" % (uf2, how))
        print("| figure | value |")
        print("|---|---|")
        print("| GC heap in all | %.1f KB |" % (total / 1000))
        print("| in use after the charger is built | %.1f KB |" % (built / 1000))
        print("| in use while running, %d samples over %d s (min / max) | %.1f / %.1f KB |"
              % (len(alloc), run_s, min(alloc) / 1000, max(alloc) / 1000))
        if online:
            print("| while charging (a remote start, an EV drawing 16 A, MeterValues every 10 s), "
                  "%d samples over 25 s (max) | %.1f KB |" % (len(session), max(session) / 1000))
        elif session is not None:
            charging, after = session
            print("| while charging (FreeCharging, an EV drawing 16 A), %d samples over 15 s "
                  "(max) | %.1f KB |" % (len(charging), max(charging) / 1000))
            print("| idle again, 40 s after the EV left (max) | %.1f KB |" % (max(after) / 1000))
        print()


if __name__ == "__main__":
    main()
