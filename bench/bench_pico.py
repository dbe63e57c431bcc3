#!/usr/bin/env python3
"""The firmware on the real rp2 port (stock MicroPython for the Raspberry Pi
Pico in the rp2040js emulator, tools/pico): GC heap in use after the charger
is built and, sampled every 5 s of emulated time after a collection, while
its main loop runs offline (no WiFi on this Pico), with `.mpy` files in
/lib as `tools/deploy` installs them.

    .venv/bin/python bench/bench_pico.py [--quick]
"""
import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

from pico.harness import Pico, find_uf2, mkfs, node_ready  # noqa: E402
from test_pico import HEAP_MAIN, PROVISIONING, bundle, wire  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    print("## The real rp2 port: heap on the emulated Pico (issue 8)\n")
    found, why = find_uf2()
    why = why or node_ready()
    if why:
        print("Skipped: %s (docs/pico-emulator.md).\n" % why)
        return
    files = bundle()
    files["/main.py"] = HEAP_MAIN.encode()
    files["/provisioning.json"] = json.dumps(PROVISIONING).encode()
    run_s = 30 if a.quick else 120
    with tempfile.TemporaryDirectory(prefix="bench-pico-") as tmp:
        img = os.path.join(tmp, "fs.img")
        mkfs(img, files)
        p = Pico(fs=img)
        try:
            wire(p)
            p.start()
            p.wait_for("HEAP built", timeout=300)
            p.wait_for("HEAP run", timeout=120, after=p.mark())
            t0 = p.emu_ms()
            while p.emu_ms() - t0 < run_s * 1000:
                time.sleep(1)
            lines = p.console().splitlines()
            built = [x.split() for x in lines if x.startswith("HEAP built")][-1]
            runs = [x.split() for x in lines if x.startswith("HEAP run")]
        finally:
            p.stop()
    alloc = [int(r[2]) for r in runs]
    total = int(built[2]) + int(built[3])
    print("MicroPython rp2 port (`%s`), firmware as `.mpy` without line numbers in /lib, "
          "board code `boards/rp2`, offline.\n" % os.path.basename(found[0]))
    print("| figure | value |")
    print("|---|---|")
    print("| GC heap in all | %.1f KB |" % (total / 1000))
    print("| in use after the charger is built | %.1f KB |" % (int(built[2]) / 1000))
    print("| in use while running, %d samples over %d s (min / max) | %.1f / %.1f KB |"
          % (len(alloc), run_s, min(alloc) / 1000, max(alloc) / 1000))
    print()


if __name__ == "__main__":
    main()
