#!/usr/bin/env python3
"""Foundation figures (issue 2): smallest heap that boots, connects and
exchanges 100 heartbeats; GC heap in use after boot; time from process start
to BootNotification; CPU time per CALL round trip on the charger side,
compared in the same run with a charge point written on the `ocpp` package
under CPython doing the same exchange.

    .venv/bin/python bench/bench_foundation.py [--quick]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

from csms_lib import BenchCSMS  # noqa: E402
from simcharger import Charger  # noqa: E402

CONFIG = {
    "identity": {"chargePointVendor": "OpenCharge", "chargePointModel": "MPY-AC22"},
    "keys": {"HeartbeatInterval": 300, "MessageTimeout": 5},
    "settings": {"reconnectMinMs": 200, "reconnectMaxMs": 1000},
}


def cpu_seconds(pid):
    # utime + stime of a process and its threads, from /proc.
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def sim_pid(ch):
    # tools/sim (bash) runs the micropython process as its child.
    out = subprocess.run(["pgrep", "-P", str(ch.proc.pid)], capture_output=True, text=True).stdout
    pids = [int(p) for p in out.split()]
    return pids[0] if pids else ch.proc.pid


def heartbeats(csms, cp_id, n):
    for _ in range(n):
        csms.call(cp_id, "TriggerMessage", {"requestedMessage": "Heartbeat"})
    csms.wait_for("Heartbeat", cp_id=cp_id, pred=lambda m: True,
                  after=max(0, csms.mark() - 4), timeout=10)


def try_heap(csms, heap, tmp):
    d = tempfile.mkdtemp(dir=tmp)
    ch = Charger(csms.url, d, cp_id="H%s" % heap, config=CONFIG, heap=heap)
    try:
        ch.start()
        csms.wait_for("StatusNotification", cp_id=ch.cp_id,
                      pred=lambda m: m.payload.get("connectorId") == 1, timeout=10)
        before = len(csms.calls("Heartbeat", cp_id=ch.cp_id))
        for _ in range(100):
            csms.call(ch.cp_id, "TriggerMessage", {"requestedMessage": "Heartbeat"}, timeout=5)
        deadline = time.time() + 10
        while (
            len(csms.calls("Heartbeat", cp_id=ch.cp_id)) < before + 100 and time.time() < deadline
        ):
            time.sleep(0.05)
        ok = (
            len(csms.calls("Heartbeat", cp_id=ch.cp_id)) >= before + 100 and ch.proc.poll() is None
        )
        return ok
    except Exception:
        return False
    finally:
        ch.stop()


def smallest_heap(csms, tmp, lo_k=48, hi_k=512, step_k=8):
    if not try_heap(csms, "%dk" % hi_k, tmp):
        return None
    lo, hi = lo_k, hi_k  # invariant: hi works
    while hi - lo > step_k:
        mid = (lo + hi) // 2 // step_k * step_k
        if try_heap(csms, "%dk" % mid, tmp):
            hi = mid
        else:
            lo = mid
    return hi


def boot_figures(csms, tmp, runs):
    times, heaps = [], []
    for i in range(runs):
        d = tempfile.mkdtemp(dir=tmp)
        ch = Charger(csms.url, d, cp_id="B%d" % i, config=CONFIG)
        t0 = time.time()
        ch.start(wait_bench=False)
        try:
            m = csms.wait_for("BootNotification", cp_id=ch.cp_id, timeout=15)
            times.append(m.t - t0)
            csms.wait_for("StatusNotification", cp_id=ch.cp_id,
                          pred=lambda m: m.payload.get("connectorId") == 1, timeout=10)
            ch.bench.connect(timeout=10)
            h = ch.ok("heap")
            heaps.append(h["alloc"])
        finally:
            ch.stop()
    return times, heaps


def charger_cpu_per_call(csms, tmp, n):
    d = tempfile.mkdtemp(dir=tmp)
    ch = Charger(csms.url, d, cp_id="CPU1", config=CONFIG)
    ch.start()
    try:
        csms.wait_for("StatusNotification", cp_id="CPU1",
                      pred=lambda m: m.payload.get("connectorId") == 1, timeout=10)
        time.sleep(0.5)
        pid = sim_pid(ch)
        c0 = cpu_seconds(pid)
        t0 = time.time()
        for _ in range(n):
            csms.call("CPU1", "TriggerMessage", {"requestedMessage": "Heartbeat"})
        deadline = time.time() + 10
        while len(csms.calls("Heartbeat", cp_id="CPU1")) < n and time.time() < deadline:
            time.sleep(0.01)
        wall = time.time() - t0
        c1 = cpu_seconds(pid)
        # Each cycle is two CALL round trips: TriggerMessage in, Heartbeat out.
        return (c1 - c0) / (2 * n), wall / n
    finally:
        ch.stop()


OCPP_CP = r'''
import asyncio, sys, websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp, call, call_result
from ocpp.v16.enums import RegistrationStatus, TriggerMessageStatus

class ChargePoint(Cp):
    @on("TriggerMessage")
    async def on_trigger(self, requested_message, **kw):
        loop = asyncio.get_running_loop()
        loop.call_soon(lambda: asyncio.ensure_future(self.call(call.Heartbeat())))
        return call_result.TriggerMessage(status=TriggerMessageStatus.accepted)

async def main(url, cp_id):
    async with websockets.connect(url + "/" + cp_id, subprotocols=["ocpp1.6"]) as ws:
        cp = ChargePoint(cp_id, ws)
        t = asyncio.create_task(cp.start())
        await cp.call(call.BootNotification(charge_point_model="PY", charge_point_vendor="ocpp"))
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError",
                                              status="Available"))
        await t

asyncio.run(main(sys.argv[1], sys.argv[2]))
'''


def ocpp_cpu_per_call(csms, tmp, n):
    path = os.path.join(tmp, "ocpp_cp.py")
    with open(path, "w") as f:
        f.write(OCPP_CP)
    p = subprocess.Popen([sys.executable, path, csms.url, "PY1"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        csms.wait_for("StatusNotification", cp_id="PY1", timeout=15)
        time.sleep(0.5)
        c0 = cpu_seconds(p.pid)
        t0 = time.time()
        for _ in range(n):
            csms.call("PY1", "TriggerMessage", {"requestedMessage": "Heartbeat"})
        deadline = time.time() + 10
        while len(csms.calls("Heartbeat", cp_id="PY1")) < n and time.time() < deadline:
            time.sleep(0.01)
        wall = time.time() - t0
        c1 = cpu_seconds(p.pid)
        return (c1 - c0) / (2 * n), wall / n
    finally:
        p.kill()
        p.wait()


ROM_SCRIPT = r"""
import gc, sys, vfs
with open(sys.argv[2]) as f:  # a file: an argument of 256 characters kills the unix port
    mods = f.read().split()
if sys.argv[1] == "rom":
    data = open(sys.argv[3], "rb").read()  # on a board: memory-mapped flash, not heap
    vfs.mount(vfs.VfsRom(data), "/rom")
    sys.path.insert(0, "/rom")
else:
    sys.path.insert(0, sys.argv[3])
gc.collect()
a = gc.mem_alloc()
for m in mods:
    __import__(m)
gc.collect()
print("HEAP", gc.mem_alloc() - a)
"""


def module_heap(tmp, modules):
    # GC heap taken by the firmware's modules: .mpy files in the filesystem
    # (bytecode copied into the heap) against a ROMFS image (executed in place).
    from harness import MICROPYTHON
    out = os.path.join(ROOT, "build", "mpy-unix")
    rom = os.path.join(tmp, "fw.romfs")
    src = os.path.join(tmp, "romsrc")
    shutil.copytree(out, src, dirs_exist_ok=True)
    mpremote = os.path.join(os.path.dirname(sys.executable), "mpremote")
    subprocess.run([mpremote, "romfs", "--no-mpy", "-o", rom, "build", src], check=True,
                   capture_output=True)
    script = os.path.join(tmp, "romheap.py")
    with open(script, "w") as f:
        f.write(ROM_SCRIPT)
    names = os.path.join(tmp, "modules.txt")
    with open(names, "w") as f:
        f.write("\n".join(modules))
    res = {}
    for kind, arg in (("mpy", out), ("rom", rom)):
        p = subprocess.run(
            [MICROPYTHON, "-X", "heapsize=4M", script, kind, names, arg],
            capture_output=True,
            text=True,
            env=dict(os.environ, MICROPYPATH=".frozen"),
        )
        res[kind] = int(p.stdout.split("HEAP")[1])
    return res, os.path.getsize(rom)


# The firmware modules loaded at boot (the simulator's own left out; the full
# list with what each costs on the 32-bit port is in bench_heap).
FIRMWARE_MODULES = [
    "mpocpp.charger", "mpocpp.ondemand", "mpocpp.operations", "mpocpp.metering.meter",
    "mpocpp.model.authorization", "mpocpp.model.availability", "mpocpp.model.config",
    "mpocpp.model.connector", "mpocpp.model.reservations", "mpocpp.model.sessions",
    "mpocpp.model.transaction", "mpocpp.protocol.link", "mpocpp.protocol.registration",
    "mpocpp.protocol.rpc", "mpocpp.protocol.schema", "mpocpp.protocol.validate",
    "mpocpp.protocol.ws", "mpocpp.queue.lfs", "mpocpp.queue.messages", "mpocpp.queue.outbox",
    "mpocpp.queue.record", "mpocpp.queue.sender", "mpocpp.transfer.jobs", "mpocpp.util.clock",
    "mpocpp.util.fsutil", "mpocpp.util.log", "mpocpp.util.modules",
    "mpocpp_board.relay", "mpocpp_board.lock", "mpocpp_board.led", "mpocpp_board.pilot",
    "mpocpp_board.adcmeter",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "build_mpy.py"), "--quiet"], check=True
    )
    tmp = tempfile.mkdtemp(prefix="bench-foundation-")
    n = 200 if a.quick else 1000
    try:
        with BenchCSMS() as csms:
            heap = smallest_heap(csms, tmp, step_k=16 if a.quick else 8)
            times, heaps = boot_figures(csms, tmp, 3 if a.quick else 10)
            mp_cpu, mp_wall = charger_cpu_per_call(csms, tmp, n)
            py_cpu, py_wall = ocpp_cpu_per_call(csms, tmp, n)
        mods, rom_size = module_heap(tmp, FIRMWARE_MODULES)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    times.sort()
    heaps.sort()
    print("## Foundation (issue 2)\n")
    print("Host: MicroPython unix port, 64-bit (objects take roughly 1.5-2x the RAM of a "
          "32-bit board).\n")
    print("| figure | value |")
    print("|---|---|")
    print("| smallest `--heap` that boots, connects and exchanges 100 heartbeats | %s |"
          % ("%d KiB" % heap if heap else "more than 512 KiB"))
    print("| GC heap in use after boot (after a collection, median of %d) | %.1f KiB |"
          % (len(heaps), heaps[len(heaps) // 2] / 1024))
    print(
        "| process start to BootNotification received by the CSMS (median / worst of %d) "
        "| %.0f / %.0f ms |"
        % (len(times), times[len(times) // 2] * 1000, times[-1] * 1000)
    )
    print(
        "| charger CPU time per CALL round trip, MicroPython firmware (%d round trips) | %.0f us |"
        % (2 * n, mp_cpu * 1e6)
    )
    print(
        "| same exchange, charge point on the `ocpp` package under CPython | %.0f us |"
        % (py_cpu * 1e6)
    )
    print(
        "| ratio CPython `ocpp` / MicroPython firmware | %.1fx |"
        % (py_cpu / mp_cpu if mp_cpu else 0)
    )
    print("| GC heap taken by the firmware modules loaded at boot, as .mpy files | %.1f KiB |"
          % (mods["mpy"] / 1024))
    print(
        "| same modules executed in place from a ROMFS image (%.0f KiB image, in flash on a "
        "board) | %.1f KiB |"
        % (rom_size / 1024, mods["rom"] / 1024)
    )
    print()


if __name__ == "__main__":
    main()
