"""Benchmark of the persistent message queue on both store backends.

usage: .venv/bin/python bench/bench_store.py [--quick]

Runs MicroPython (unix port) with the queue (mpocpp/queue/messages.py) over the
raw flash ring (store_ring.py, 16 sectors = 64 KiB) and over the littlefs
segment log (store_lfs.py, a 64 KiB littlefs holding the queue, store
capacity 48 KiB) on the simulated NOR flash (boards/unix/norflash.py,
4 KiB sectors), and prints a Markdown section:
- bytes programmed per payload byte and erases per 1,000 messages, for
  messages persisted and then acknowledged one by one (the online path; the
  offline path does the same work, only later);
- messages per second through push + peek + delivered on the host;
- complete offline transactions (StartTransaction, begin and end
  MeterValues, StopTransaction) that fit before the queue refuses a new one;
- the projected life of the most worn sector at one message every 10 s,
  for 100,000-cycle NOR flash.
Message sizes are those of realistic OCPP JSON: StartTransaction ~130 B,
StopTransaction ~140 B, MeterValues with 8 sampled values ~850 B.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

from harness import MICROPYTHON, mp_env  # noqa: E402

# Runs inside MicroPython; N (messages per run) is prepended.
MP_SCRIPT = r"""
import gc, json, time
from mpocpp.util import log
from mpocpp_board.norflash import NorFlash, mount_lfs, umount
from mpocpp.queue.ring import RingStore
from mpocpp.queue.lfs import LfsStore
from mpocpp.queue.messages import MessageQueue
log.level = 3

TS = "2026-03-01T12:00:00Z"


def start(i):
    return {"connectorId": 1, "idTag": "04A2B3C4D5E6F7", "meterStart": 1234567 + i,
            "timestamp": TS, "reservationId": 12}


def stop(tx, i):
    return {"transactionId": tx, "idTag": "04A2B3C4D5E6F7", "meterStop": 1240000 + i,
            "timestamp": TS, "reason": "EVDisconnected"}


def mv(tx, i, ctx="Sample.Periodic"):
    sv = [{"value": str(1234567 + i), "context": ctx, "measurand": "Energy.Active.Import.Register",
           "unit": "Wh", "location": "Outlet"},
          {"value": "7360", "context": ctx, "measurand": "Power.Active.Import", "unit": "W"}]
    for ph in ("L1", "L2", "L3"):
        sv.append({"value": "10.6", "context": ctx, "measurand": "Current.Import",
                   "phase": ph, "unit": "A"})
        sv.append({"value": "230.4", "context": ctx, "measurand": "Voltage",
                   "phase": ph + "-N", "unit": "V"})
    return {"connectorId": 1, "transactionId": tx,
            "meterValue": [{"timestamp": TS, "sampledValue": sv[:8]}]}


def make(kind):
    dev = NorFlash(16 * 4096)
    if kind == "ring":
        s = RingStore(dev, 0, 16)
    else:
        mount_lfs(dev, "/flash")
        s = LfsStore("/flash/q", 48 * 1024, 4096)
    q = MessageQueue(s, lambda: 3, lambda: 10)
    q.mount()
    return dev, s, q


def message(q, i):
    # one transaction = Start, MeterValues x 10, Stop
    k = i % 12
    if k == 0:
        return "StartTransaction", start(i)
    if k == 11:
        return "StopTransaction", stop(7, i)
    return "MeterValues", mv(7, i)


def cycle(kind, n):
    dev, s, q = make(kind)
    payload = 0
    for i in range(12):  # warm up (files, first sectors)
        a, p = message(q, i)
        q.push(a, p)
        qid = q.peek(0).qid
        q.delivered(qid, {"transactionId": 7})
    p0, e0 = dev.programmed_bytes, dev.erases
    w0 = list(dev.wear)
    t = 0
    for i in range(n):
        a, p = message(q, i)
        payload += len(json.dumps(p, separators=(",", ":")))
        t0 = time.ticks_us()
        q.push(a, p)
        qid = q.peek(0).qid
        q.delivered(qid, {"transactionId": 7})
        t += time.ticks_diff(time.ticks_us(), t0)
    wear = max(dev.wear[b] - w0[b] for b in range(len(w0)))
    if kind == "lfs":
        umount("/flash")
    return {"amp": (dev.programmed_bytes - p0) / payload,
            "erases_k": (dev.erases - e0) * 1000 / n,
            "wear_max": wear / n, "wear": [dev.wear[b] - w0[b] for b in range(len(w0))],
            "msgs": n * 1e6 / t, "avg": payload / n}


def fill(kind):
    # complete offline transactions until the queue refuses a new one
    dev, s, q = make(kind)
    n = 0
    while q.can_start_transaction():
        ph = q.new_placeholder()
        ok = q.push("StartTransaction", start(n), placeholder=ph) is not None
        ok = ok and q.push("MeterValues", mv(ph, n, "Transaction.Begin")) is not None
        ok = ok and q.push("MeterValues", mv(ph, n, "Transaction.End")) is not None
        ok = ok and q.push("StopTransaction", stop(ph, n)) is not None
        if not ok:
            break
        n += 1
    # all still there after a power cycle, and acknowledging still works
    if kind == "lfs":
        umount("/flash")
        dev = dev.reopen()
        mount_lfs(dev, "/flash")
        s = LfsStore("/flash/q", 48 * 1024, 4096)
    else:
        dev = dev.reopen()
        s = RingStore(dev, 0, 16)
    q = MessageQueue(s, lambda: 3, lambda: 10)
    q.mount()
    kept = q.pending_txn()
    h = q.peek(0)
    q.delivered(h.qid, {"transactionId": 1})
    if kind == "lfs":
        umount("/flash")
    return {"txns": n, "kept": kept, "ok": ok}


out = {}
for kind in ("ring", "lfs"):
    r = cycle(kind, N)
    gc.collect()
    r.update(fill(kind))
    gc.collect()
    out[kind] = r
print("RESULT " + json.dumps(out))
"""


def run(n):
    src = "N = %d\n" % n + MP_SCRIPT
    p = subprocess.run([MICROPYTHON, "-X", "heapsize=4M", "-c", src],
                       env=mp_env(), capture_output=True, text=True, timeout=600)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit("benchmark failed:\n" + p.stdout[-2000:] + p.stderr[-2000:])


def main():
    quick = "--quick" in sys.argv
    n = 600 if quick else 6000
    r = run(n)
    per_day = 86400 / 10
    print("## Message queue in flash (msgqueue + store_ring / store_lfs)\n")
    print("Simulated NOR flash, 4 KiB sectors, 64 KiB region; %d messages of a mix of "
          "StartTransaction, 10 MeterValues (8 sampled values), StopTransaction "
          "(average %d B of JSON), each persisted then acknowledged.\n"
          % (n, r["ring"]["avg"]))
    print("| figure | raw flash ring | littlefs segment log |")
    print("|---|---|---|")
    rows = [
        ("bytes programmed per payload byte", "%.2f", "amp"),
        ("flash erases per 1,000 messages", "%.0f", "erases_k"),
        ("messages per second through the queue (host)", "%.0f", "msgs"),
        ("complete offline transactions in 64 KiB", "%d", "txns"),
    ]
    for title, fmt, key in rows:
        print("| %s | %s | %s |" % (title, fmt % r["ring"][key], fmt % r["lfs"][key]))
    life = []
    for k in ("ring", "lfs"):
        w = r[k]["wear_max"]  # erases of the most worn sector per message
        days = 100000 / (w * per_day) if w else 0
        life.append(("%.1f years" % (days / 365)) if days >= 365 else "%.0f days" % days)
    print("| flash life at 1 message / 10 s (most worn sector, 100k cycles) | %s | %s |"
          % tuple(life))
    print("\nAn offline transaction here is StartTransaction, MeterValues "
          "Transaction.Begin and Transaction.End (8 values each), StopTransaction; "
          "the queue stops at can_start_transaction() (1 KiB kept for running "
          "transactions' StopTransaction). The littlefs store's capacity is 48 KiB "
          "of its 64 KiB filesystem (metadata and copy-on-write need the rest). "
          "Queued after a power cycle: ring %d, littlefs %d messages."
          % (r["ring"]["kept"], r["lfs"]["kept"]))


if __name__ == "__main__":
    main()
