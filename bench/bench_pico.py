#!/usr/bin/env python3
"""The firmware on the real rp2 port (stock MicroPython for the Raspberry Pi
Pico in the rp2040js emulator, tools/pico): GC heap in use after the charger
is built and, sampled every 5 s of emulated time after a collection, while
its main loop runs offline (no WiFi on this Pico), with `.mpy` files in
/lib as `tools/deploy` installs them, and run in place from a ROMFS
partition (a build with one: `tools/deploy --romfs`).

    .venv/bin/python bench/bench_pico.py [--quick]
"""
import argparse
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
from test_pico import HEAP_MAIN, PROVISIONING, bundle, wire  # noqa: E402


def measure(run_s, romfs, online=False):
    """-> (UF2 name, GC heap in all, in use after the build, [in use while
    running]) in bytes, or None with why. online: connected to a bench CSMS
    over the USB serial bridge (tools/bridge), sampled once registered."""
    found, why = find_uf2(romfs)
    why = why or node_ready()
    if why:
        return None, why
    files = bundle()
    with tempfile.TemporaryDirectory(prefix="bench-pico-") as tmp:
        img = os.path.join(tmp, "fs.img")
        rom = None
        if romfs:
            rom = mkromfs(os.path.join(tmp, "romfs.img"),
                          {k: v for k, v in files.items() if k.startswith("/lib/")})
            files = {}
        prov = PROVISIONING
        csms = bridge = None
        if online:
            from csms_lib import BenchCSMS
            csms = BenchCSMS(log=lambda line: None).start()
            prov = dict(PROVISIONING, keys={"HeartbeatInterval": 60},
                        settings={"csmsUrl": csms.url, "chargeBoxId": "PICO1", "net": "usb",
                                  # the validator released 5 s after a message
                                  # (30 s by default): the samples see both
                                  "idleReleaseMs": 5000})
        files["/main.py"] = HEAP_MAIN.encode()
        files["/provisioning.json"] = json.dumps(prov).encode()
        mkfs(img, files)
        p = Pico(fs=img, romfs=rom)
        try:
            wire(p)
            p.start()
            if online:
                bridge = subprocess.Popen(
                    [sys.executable, os.path.join(ROOT, "tools", "bridge"), "--serial", p.pty()],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                csms.wait_for("StatusNotification", cp_id="PICO1", timeout=300,
                              pred=lambda m: m.payload["connectorId"] == 1)
            else:
                p.wait_for("HEAP built", timeout=300)
            seen = p.console().count("HEAP run")  # samples before it registered
            p.wait_for("HEAP run", timeout=120, after=p.mark())
            t0 = p.emu_ms()
            while p.emu_ms() - t0 < run_s * 1000:
                time.sleep(1)
            lines = p.console()
            # (a bridge frame may share a line with the text: search, not startswith)
            runs = [int(n) for n in re.findall(r"HEAP run (\d+)", p.console())][seen:]
        finally:
            p.stop()
            if bridge is not None:
                bridge.kill()
                bridge.wait()
            if csms is not None:
                csms.stop()
    built = [(int(a), int(b)) for a, b in re.findall(r"HEAP built (\d+) (\d+)", lines)][-1]
    return (os.path.basename(found[0]), built[0] + built[1], built[0], runs), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
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
        uf2, total, built, alloc = got
        print("MicroPython rp2 port (`%s`), firmware without line numbers, board code "
              "`boards/rp2`: %s.\n" % (uf2, how))
        print("| figure | value |")
        print("|---|---|")
        print("| GC heap in all | %.1f KB |" % (total / 1000))
        print("| in use after the charger is built | %.1f KB |" % (built / 1000))
        print("| in use while running, %d samples over %d s (min / max) | %.1f / %.1f KB |"
              % (len(alloc), run_s, min(alloc) / 1000, max(alloc) / 1000))
        print()


if __name__ == "__main__":
    main()
