"""Power cuts of the running firmware (issue 12, docs/reliability.md).

The simulated charger (tools/sim, the unix board) runs against the bench
CSMS while sessions start and stop, the network comes and goes, the CSMS
changes a key and sends local lists; at a random moment the whole process
is killed (SIGKILL, as a power cut: a flash write in progress stops at a
256-byte page, boards/unix/fileflash.py) and started again on the same
flash. At the end the EV leaves, the queue drains, and an oracle on the
CSMS's records checks what a power cut must never do:

- every transaction the charger started is stopped exactly once: no
  transactionId has two different StopTransactions, and every
  StartTransaction has its Stop, or is a Start re-sent after a cut (the
  same connector, idTag, meterStart and timestamp as one that has);
- the MeterValues of a transaction arrive in time order;
- the energy register never goes down (meterStart, meterStop and the
  sampled register, in time order);
- the charger comes back after every cut (the store mounts, no boot loop):
  a BootNotification within the time allowed, the boot counter one up;
- a configuration key read back after a cut holds the old or the new value.

    c = Campaign(cuts=50, seed=1); c.start(); c.run(); stats = c.finish(); c.close()
"""
import collections
import logging
import os
import random
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

from csms_lib import BenchCSMS  # noqa: E402
import txoracle  # noqa: E402

ID_TAG = "CUTCARD"
REG = txoracle.REG
PROVISIONING = {
    "identity": {"chargePointVendor": "OpenCharge", "chargePointModel": "MPY-AC22",
                 "chargePointSerialNumber": "SIM-CUT", "firmwareVersion": "0.1.0-cut"},
    "keys": {"MessageTimeout": 5, "HeartbeatInterval": 300, "MeterValueSampleInterval": 1,
             "MeterValuesSampledData": REG, "ConnectionTimeOut": 60,
             "TransactionMessageRetryInterval": 1, "TransactionMessageAttempts": 100,
             "LocalAuthListEnabled": True},
    "settings": {"reconnectMinMs": 200, "reconnectMaxMs": 1000, "bootRetryS": 2,
                 "connectTimeoutMs": 3000, "pongTimeoutMs": 2000},
}
BOOT_TIMEOUT = 30.0  # s from restart to BootNotification


class Failure(AssertionError):
    pass


class Campaign:
    def __init__(self, cuts=50, seed=1, micropython=None, data_dir=None, heap="512k",
                 log=print, max_on=2.5, queue="lfs"):
        self.cuts = cuts
        self.queue = queue  # the queue's backend: "lfs" or "ring" (a raw flash region)
        self.seed = seed
        self.r = random.Random(seed)
        self.micropython = micropython
        self.heap = heap
        self.say = log
        self.max_on = max_on  # longest time the charger runs between two cuts (s)
        self._tmp = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="powercut-")
            data_dir = self._tmp.name
        self.data_dir = data_dir
        self.csms = None
        self.charger = None
        self.failures = []
        self.stats = collections.Counter()
        self._threads = []
        self._key = {"confirmed": "1", "asked": set()}  # MeterValueSampleInterval

    # --- setup
    def start(self):
        from simcharger import Charger
        logging.getLogger("csms").setLevel(logging.ERROR)
        self.csms = BenchCSMS(log=lambda s: None).start()
        self.charger = Charger(self.csms.url, os.path.join(self.data_dir, "CP1"),
                               config=PROVISIONING, heap=self.heap,
                               micropython=self.micropython, queue=self.queue)
        self.charger.start()
        self.csms.wait_for("BootNotification", timeout=BOOT_TIMEOUT)
        self.boot = self.charger.state()["boot"]
        self.t0 = time.time()

    # --- the run
    def run(self):
        for i in range(self.cuts):
            self._live_a_while()
            self.charger.power_cut()
            self.stats["cuts"] += 1
            self._join()
            if self.r.random() < 0.3:
                time.sleep(self.r.random() * 0.5)  # the power stays off a moment
            self._power_on(i)
            if len(self.failures) > 20:
                break

    def _live_a_while(self):
        # Random activity, then the cut at a random moment inside it.
        r = self.r
        end = time.time() + r.random() * self.max_on
        steps = r.randint(1, 4)
        for _ in range(steps):
            try:
                self._step()
            except (AssertionError, OSError, ConnectionError):
                pass  # the charger is busy booting: the next step may work
            left = end - time.time()
            if left <= 0:
                return
            time.sleep(r.random() * left)
        left = end - time.time()
        if left > 0:
            time.sleep(left)

    def _step(self):
        r, ch = self.r, self.charger
        st = ch.state()
        c = st["connectors"][0]
        x = r.random()
        if x < 0.35:
            if c["transaction"] is None and c["pilot"] in ("A", None):
                ch.ok("plug_in", connector=1)
                ch.ok("swipe", idTag=ID_TAG)
                self.stats["swipes_start"] += 1
            elif c["transaction"] is None:
                ch.ok("swipe", idTag=ID_TAG)
                self.stats["swipes_start"] += 1
            else:
                ch.ok("load", connector=1, amps=[r.choice((6, 10, 16, 32))] * 3)
        elif x < 0.55:
            if c["transaction"] is not None:
                ch.ok("swipe", idTag=ID_TAG)  # the same card stops it
                self.stats["swipes_stop"] += 1
            elif c["pilot"] not in ("A", None):
                ch.ok("plug_out", connector=1)
        elif x < 0.7:
            ch.ok("network", up=r.random() < 0.5)
            self.stats["network_toggles"] += 1
        elif x < 0.85:
            v = str(r.randint(1, 3))
            self._key["asked"].add(v)
            self._background("ChangeConfiguration",
                             {"key": "MeterValueSampleInterval", "value": v})
        else:
            n = r.randint(1, 60)
            self._background("SendLocalList", {
                "listVersion": r.randint(1, 10 ** 6), "updateType": "Full",
                "localAuthorizationList": [{"idTag": "C%05d" % k,
                                            "idTagInfo": {"status": "Accepted"}}
                                           for k in range(n)]})

    def _background(self, action, payload):
        # A CSMS call that the cut may interrupt: in a thread, its outcome
        # does not matter (the oracle reads the charger's state after).
        def call():
            try:
                self.csms.call("CP1", action, payload, timeout=5)
            except Exception:  # the cut came first
                pass
        t = threading.Thread(target=call, daemon=True)
        t.start()
        self._threads.append(t)
        self.stats[action] += 1

    def _join(self):
        for t in self._threads:
            t.join(6)
        self._threads = []

    def _power_on(self, i):
        ch = self.charger
        mark = self.csms.mark()
        t = time.time()
        try:
            ch.start(wait_bench=True)
            self.csms.wait_for("BootNotification", after=mark, timeout=BOOT_TIMEOUT)
        except (AssertionError, OSError, ConnectionError, TimeoutError) as e:
            self._fail("cut %d: no BootNotification within %.0f s after power-on (%s)\n%s" % (
                i + 1, BOOT_TIMEOUT, str(e).splitlines()[0], ch.tail(30)))
            return
        self.stats["boot_s_max"] = max(self.stats["boot_s_max"], round(time.time() - t, 2))
        boot = ch.state()["boot"]
        if boot != self.boot + 1:
            self._fail("cut %d: boot counter %d after %d" % (i + 1, boot, self.boot))
        self.boot = boot
        ch.ok("network", up=True)
        if i % 5 == 4:
            self._check_key(i)

    def _check_key(self, i):
        # The configuration is the old or the new one, never anything else.
        k = self._key
        try:
            r = self.csms.call("CP1", "GetConfiguration",
                               {"key": ["MeterValueSampleInterval"]}, timeout=10)
        except Exception:
            return  # not connected yet: checked at a later cut
        v = r["configurationKey"][0]["value"]
        if v != k["confirmed"] and v not in k["asked"]:
            self._fail("cut %d: MeterValueSampleInterval %r, neither %r nor one of %r" % (
                i + 1, v, k["confirmed"], sorted(k["asked"])))
        k["confirmed"], k["asked"] = v, set()
        self.stats["key_checks"] += 1

    def _fail(self, text):
        self.failures.append(text)
        self.say("FAIL " + text)

    # --- the end
    def finish(self, drain_timeout=120):
        ch, c = self.charger, self.csms
        ch.ok("network", up=True)
        c.wait_connected("CP1", timeout=30)
        txoracle.drain(ch, c, ID_TAG, self._fail, drain_timeout)
        self.stats["duration_s"] = round(time.time() - self.t0, 1)
        self._oracle()
        return self.stats

    def _oracle(self):
        txoracle.check(self.csms, self._fail, self.stats)

    def close(self):
        self._join()
        if self.charger is not None:
            self.charger.stop()
        if self.csms is not None:
            self.csms.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


_MAX_STATS = ("boot_s_max", "duration_s")  # the lanes' largest, not their sum


def run_lanes(lanes, cuts, seed, data_dir=None, log=print, **kw):
    """Campaigns side by side, each with its own bench CSMS, charger and
    flash, sharing the cuts (the long run in less time: a campaign mostly
    waits). Lane i has the seed seed * 100 + i (one lane: seed itself).
    -> (the stats summed, the failures named by lane)."""
    camps = []
    for i in range(lanes):
        n = cuts // lanes + (1 if i < cuts % lanes else 0)
        d = data_dir if data_dir is None or lanes == 1 else os.path.join(data_dir, "lane%d" % i)
        say = log if lanes == 1 else (lambda s, i=i: log("lane %d: %s" % (i, s)))
        camps.append(Campaign(cuts=n, seed=seed if lanes == 1 else seed * 100 + i,
                              data_dir=d, log=say, **kw))
    results = [None] * lanes

    def one(i):
        c = camps[i]
        try:
            c.start()
            c.run()
            results[i] = c.finish()
        except Exception as e:  # a lane that breaks is a failure, not the end
            c._fail("stopped: %r" % e)
        finally:
            c.close()
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = collections.Counter()
    for st in results:
        for k, v in (st or {}).items():
            total[k] = max(total[k], v) if k in _MAX_STATS else total[k] + v
    failures = [f if lanes == 1 else "lane %d: %s" % (i, f)
                for i, c in enumerate(camps) for f in c.failures]
    return total, failures


def report(stats, failures):
    s = stats
    lines = ["cuts: %d, transactions: %d (StartTransaction %d, StopTransaction %d)" % (
        s["cuts"], s["transactions"], s["start_messages"], s["stop_messages"]),
        "duplicates (same transaction re-sent after a cut): Start %d, Stop %d" % (
            s["start_duplicates"], s["stop_duplicates"]),
        "activity: swipes %d start / %d stop, network toggles %d, ChangeConfiguration %d, "
        "SendLocalList %d, key read back %d times" % (
            s["swipes_start"], s["swipes_stop"], s["network_toggles"],
            s["ChangeConfiguration"], s["SendLocalList"], s["key_checks"]),
        "slowest power-on to BootNotification: %.2f s; energy readings checked: %d; "
        "duration %.0f s" % (s["boot_s_max"], s["meter_readings"], s["duration_s"]),
        "failures: %d" % len(failures)]
    return "\n".join(lines)
