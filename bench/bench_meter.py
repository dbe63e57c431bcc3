"""Sampling-tick jitter and CPU share of the 1 Hz meter task (mpocpp/metering/meter.py).

usage: .venv/bin/python bench/bench_meter.py [--quick] [--duration SECONDS]

Runs the real Meter in the MicroPython unix port, on a littlefs over the
simulated NOR flash, with the unix board's simulated ADC (boards/unix/simhw.py
+ boards/common/adcmeter.py: a read blocks ~20 ms) or, when those are absent,
a fake driver that busy-waits 20 ms. Two scenarios of half the duration each
(default 20 minutes in all: 10 minutes idle, 10 in the burst; --quick 1 minute):
idle, and a burst (a concurrent task doing json.loads of an 8 KiB message and
fsutil.write_atomic of 4 KiB every 100 ms). Prints a Markdown section.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
from harness import MICROPYTHON, MPY_PATH  # noqa: E402

MP_SCRIPT = r'''
import sys
import time
import json
import asyncio
from mpocpp_board import norflash
from mpocpp.util import fsutil
from mpocpp.metering import meter
from mpocpp.metering.tickstats import TickStats

DUR_MS = int(sys.argv[1])
MODE = sys.argv[2]

dev = norflash.NorFlash(512 * 1024)
norflash.mount_lfs(dev, "/flash")


class BusyDrv:
    # Stand-in for the ADC driver: blocks 20 ms like one mains cycle.
    power_w = None

    def read(self):
        t = time.ticks_us()
        while time.ticks_diff(time.ticks_us(), t) < 20000:
            pass
        return (16.0, 16.0, 16.0), (230.0, 230.0, 230.0), 30.0


def make_driver():
    try:
        from mpocpp_board import simhw
        from mpocpp_board import adcmeter  # noqa: F401
    except ImportError:
        return BusyDrv(), "fake 20 ms busy-wait driver", None
    hw = simhw.SimConnectorHw(1, phases=3, max_amps=32)
    d = hw.drivers()  # (the pilot and relay drivers start in their safe state)
    hw.load(16.0, 230.0)
    hw.plug_in("C")
    d.pilot.offer(16)
    d.relay.close()
    return d.meter, "AdcMeter on simhw (3 x 16 A, 230 V, noise)", hw


async def burst(stop, out):
    # Large incoming messages and flash writes every 100 ms.
    item = ('{"idTag":"%08X","idTagInfo":{"status":"Accepted",'
            '"expiryDate":"2027-01-01T00:00:00Z"}},')
    body = "".join(item % i for i in range(90))
    msg = ('[2,"1","SendLocalList",{"listVersion":1,"updateType":"Full",'
           '"localAuthorizationList":[' + body[:-1] + ']}]')
    msg = msg + " " * (8192 - len(msg))
    blob = bytes(4096)
    worst = 0
    n = 0
    while not stop[0]:
        t = time.ticks_us()
        json.loads(msg)
        fsutil.write_atomic("/flash/burst.bin", blob)
        d = time.ticks_diff(time.ticks_us(), t)
        worst = d if d > worst else worst
        n += 1
        await asyncio.sleep_ms(100)
    out["burst_n"] = n
    out["burst_worst_us"] = worst
    out["msg_bytes"] = len(msg)


class Timed:
    # The driver, with how long each read() blocked (us).
    def __init__(self, drv):
        self.drv = drv
        self.us = []
        self.power_w = None

    def read(self):
        t = time.ticks_us()
        r = self.drv.read()
        self.power_w = self.drv.power_w
        self.us.append(time.ticks_diff(time.ticks_us(), t))
        self.power_w = getattr(self.drv, "power_w", None)
        return r


async def main():
    drv, kind, hw = make_driver()
    drv = Timed(drv)
    m = meter.Meter({1: drv}, "/flash", save_step_wh=100, stats=TickStats())
    m.load()
    out = {"driver": kind}
    stop = [False]
    bt = asyncio.create_task(burst(stop, out)) if MODE == "burst" else None
    task = asyncio.create_task(m.run())
    await asyncio.sleep_ms(DUR_MS)
    st = m.stats
    out.update(st.summary())
    out["late_mean_ms"] = st.late_sum / st.count if st.count else 0
    out["busy_mean_us"] = st.busy_us / st.count if st.count else 0
    task.cancel()
    us = sorted(drv.us)
    if us:
        out["read_p50_ms"] = us[len(us) // 2] / 1000
        out["read_p99_ms"] = us[min(len(us) - 1, len(us) * 99 // 100)] / 1000
        out["read_max_ms"] = us[-1] / 1000
    stop[0] = True
    if bt:
        await asyncio.sleep_ms(150)
    lt = m.latest(1)
    out["power_w"] = lt["power_w"]
    out["true_w"] = (sum(hw.amps) * 230.0) if hw else 3 * 16 * 230.0
    out["saves"] = m.saves
    # flash cost of one register save (alternating slots, write_atomic)
    e0 = dev.erases
    p0 = dev.programmed_bytes
    n = 300
    c = m._ch[1]
    for i in range(n):
        c.wh += 100
        m.save()
    out["erases_per_save"] = (dev.erases - e0) / n
    out["bytes_per_save"] = (dev.programmed_bytes - p0) / n
    print("RESULT " + json.dumps(out))

asyncio.run(main())
'''


def run(mode, seconds):
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(MP_SCRIPT)
        path = f.name
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        env = dict(os.environ)
        env["MICROPYPATH"] = MPY_PATH
        p = subprocess.run([MICROPYTHON, "-X", "heapsize=4M", path,
                            str(int(seconds * 1000)), mode],
                           env=env, capture_output=True, text=True,
                           timeout=seconds + 120)
    finally:
        os.unlink(path)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            r["proc_cpu_s"] = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
            return r
    raise SystemExit(
        "bench_meter: %s run failed:\n%s%s" % (mode, p.stdout[-3000:], p.stderr[-3000:])
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="30 s in all")
    ap.add_argument("--duration", type=float, default=None,
                    help="total seconds, split between the two scenarios (default 600)")
    a = ap.parse_args()
    total = a.duration or (60.0 if a.quick else 1200.0)  # full: 10 minutes per scenario
    half = total / 2
    load = os.getloadavg()[0]
    res = [("idle", run("idle", half)), ("burst: 8 KiB json.loads + 4 KiB flash write / 100 ms",
                                          run("burst", half))]
    d0 = res[0][1]
    print("## Meter sampling tick (1 Hz)\n")
    print("MicroPython unix port; %s; %.0f s per scenario; lateness = ms after the "
          "ideal tick time (start + k x 1000 ms). Host load average %.1f on %d CPUs "
          "at the start (a shared host stretches the figures).\n" % (
              d0["driver"], half, load, os.cpu_count() or 1))
    print("| scenario | ticks | skipped | late p50 (ms) | late p99 (ms) | late worst (ms) "
          "| task busy mean / max (ms) | driver read p50 / p99 / worst (ms) "
          "| task share of wall time | process CPU (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in res:
        print(
            "| %s | %d | %d | %d | %d | %d | %.1f / %.1f | %.1f / %.1f / %.1f | %.2f %% | %.2f |"
            % (
                name,
                r["count"],
                r["skipped"],
                r["late_p50_ms"],
                r["late_p99_ms"],
                r["late_max_ms"],
                r["busy_mean_us"] / 1000,
                r["busy_max_us"] / 1000,
                r.get("read_p50_ms", 0),
                r.get("read_p99_ms", 0),
                r.get("read_max_ms", 0),
                100 * r["cpu_share"],
                r["proc_cpu_s"],
            )
        )
    b = res[1][1]
    print("\nBurst task: %d iterations, worst %.1f ms blocking per iteration "
          "(json.loads of %d bytes + write_atomic of 4096 bytes).\n" % (
              b.get("burst_n", 0), b.get("burst_worst_us", 0) / 1000, b.get("msg_bytes", 0)))
    print("| figure | value |")
    print("|---|---|")
    err = 100 * (d0["power_w"] - d0["true_w"]) / d0["true_w"] if d0["true_w"] else 0
    print("| Power.Active.Import measured / simulated (W) | %.0f / %.0f (%+.2f %%) |" % (
        d0["power_w"], d0["true_w"], err))
    print(
        "| flash erases per register save (4 KiB sectors, littlefs) | %.2f |"
        % d0["erases_per_save"]
    )
    print("| flash bytes programmed per register save | %.0f |" % d0["bytes_per_save"])


if __name__ == "__main__":
    main()
