#!/usr/bin/env python3
"""Charging-session figures (issue 4): time from the EV leaving state C
(bench command) to the relay opening, and from RemoteStopTransaction
received to the relay opening, median and worst over N runs, on the
simulated charger (the real firmware in micropython).

    .venv/bin/python bench/bench_session.py [--quick]
"""
import argparse
import os
import random
import shutil
import statistics
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
    "keys": {"HeartbeatInterval": 300, "MeterValueSampleInterval": 0},
    "settings": {"reconnectMinMs": 200, "reconnectMaxMs": 1000},
}


def relay(ch):
    return ch.connector(1)["relay"]


def wait(pred, timeout=5):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if pred():
            return True
    raise TimeoutError


def ev_leaves_c(ch, n, notify):
    out = []
    for _ in range(n):
        ch.ok("ev_state", connector=1, state="C")
        wait(lambda: relay(ch))
        time.sleep(random.uniform(0, 0.05))  # a random phase against the 50 ms poll
        t0 = time.perf_counter()
        ch.ok("ev_state", connector=1, state="B", notify=notify)
        wait(lambda: not relay(ch))
        out.append(time.perf_counter() - t0)
    return out


def remote_stop(csms, ch, n):
    out = []
    for i in range(n):
        mark = csms.mark()
        ch.ok("plug_in", connector=1)
        ch.ok("swipe", idTag="BENCH%d" % i)
        st = csms.wait_for("StartTransaction", cp_id="RS", after=mark, timeout=5)
        wait(lambda: relay(ch))
        time.sleep(0.05)  # let the answer settle: measure the stop alone
        txid = [m for m in csms.messages[mark:] if m.id == st.id and m.type == 3][0].payload[
            "transactionId"
        ]
        fut = csms.call_async("RS", "RemoteStopTransaction", {"transactionId": txid})
        m = csms.wait_for(
            "RemoteStopTransaction", cp_id="RS", direction="out", after=mark, timeout=5
        )
        wait(lambda: not relay(ch))
        t1 = time.time()
        fut.result(5)
        out.append(t1 - m.t)
        csms.wait_for("StopTransaction", cp_id="RS", after=mark, timeout=5)
        ch.ok("plug_out", connector=1)
        time.sleep(0.05)
    return out


def fmt(xs):
    xs = sorted(xs)
    return "%.1f / %.1f ms" % (statistics.median(xs) * 1000, xs[-1] * 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    n = 20 if a.quick else 100
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "build_mpy.py"), "--quiet"], check=True
    )
    tmp = tempfile.mkdtemp(prefix="bench-session-")
    try:
        with BenchCSMS() as csms:
            ch = Charger(csms.url, os.path.join(tmp, "ev"), cp_id="EV", config=CONFIG).start()
            try:
                csms.wait_for("StatusNotification", cp_id="EV", timeout=10)
                ch.ok("load", connector=1, amps=[16, 16, 16], volts=[230, 230, 230])
                ch.ok("plug_in", connector=1)
                ch.ok("swipe", idTag="BENCH")
                csms.wait_for("StartTransaction", cp_id="EV", timeout=5)
                ev = ev_leaves_c(ch, n, True)
                ev_poll = ev_leaves_c(ch, n, False)
            finally:
                ch.stop()
            ch = Charger(csms.url, os.path.join(tmp, "rs"), cp_id="RS", config=CONFIG).start()
            try:
                csms.wait_for("StatusNotification", cp_id="RS", timeout=10)
                rs = remote_stop(csms, ch, n)
            finally:
                ch.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("## Charging sessions (issue 4)\n")
    print("Relay opening, measured from the outside through the bench port (state polled"
          " over loopback, so the figures include one bench round trip).\n")
    print("| figure | median / worst | runs |")
    print("|---|---|---|")
    print(
        "| EV leaves state C (bench `ev_state` B, firmware notified) to relay open | %s | %d |"
        % (fmt(ev), n)
    )
    print(
        "| same, found by the supervisor's 50 ms pilot polling (`notify: false`) | %s | %d |"
        % (fmt(ev_poll), n)
    )
    print("| RemoteStopTransaction sent by the CSMS to relay open | %s | %d |" % (fmt(rs), n))
    print()


if __name__ == "__main__":
    main()
