"""Link faults against the running firmware (issue 12, docs/reliability.md).

The simulated charger talks to the bench CSMS through a TCP proxy of this
module, which injects, at random moments while transactions run:

  reset      both TCP connections closed with a RST (SO_LINGER 0)
  restart    the CSMS goes away: connections closed, new ones refused for a
             while, then it is back (as a restarted CSMS on the same port)
  halfopen   nothing goes through either way, no FIN, no RST, for a while:
             the charger must notice on its own (WebSocket PING and its
             PONG deadline) and connect again
  silent     the CSMS accepts and reads but never answers, for a while
  slow       every piece of traffic held 1-4 s, for a while
  callerror  the next StartTransaction, StopTransaction or MeterValues is
             answered with a CALLERROR
  malformed  the next one is answered with a CALLRESULT that breaks its
             schema

Then the EV leaves, the queue drains, and txoracle checks the CSMS's
records: every transaction stopped exactly once, nothing lost, MeterValues
in order, the energy register; and this module counts duplicates per fault
and the time from the end of each connection fault to the charger's next
connection.

    c = Campaign(faults=40, transactions=10, seed=1)
    c.start(); c.run(); stats = c.finish(); c.close()
"""
import collections
import logging
import os
import random
import select
import socket
import struct
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

from csms_lib import BenchCSMS, CallErrorReply  # noqa: E402
import txoracle  # noqa: E402

ID_TAG = "LINKCARD"
KINDS = ("reset", "restart", "halfopen", "silent", "slow", "callerror", "malformed", "dns")
_CONN_FAULTS = ("reset", "restart", "halfopen", "dns")
PROVISIONING = {
    "identity": {"chargePointVendor": "OpenCharge", "chargePointModel": "MPY-AC22",
                 "chargePointSerialNumber": "SIM-LINK", "firmwareVersion": "0.1.0-link"},
    "keys": {"MessageTimeout": 3, "HeartbeatInterval": 300, "MeterValueSampleInterval": 1,
             "MeterValuesSampledData": txoracle.REG, "ConnectionTimeOut": 60,
             "TransactionMessageRetryInterval": 1, "TransactionMessageAttempts": 100,
             "WebSocketPingInterval": 2},
    "settings": {"reconnectMinMs": 200, "reconnectMaxMs": 2000, "bootRetryS": 2,
                 "connectTimeoutMs": 3000, "pongTimeoutMs": 2000},
}
# The longest a charger may take to connect again once a connection fault
# is over: its PING period and PONG deadline (a half-open link), its
# connect timeout, and the back-off's cap, with a margin for a busy machine.
RECONNECT_S = (2 + 2 + 3 + 2) + 5.0
_NOTICE_S = 2 + 2 + 2.0  # a half-open link is noticed within PING + PONG + margin


class Proxy:
    """A TCP proxy in a thread: charger -> listen port -> upstream (the CSMS)."""

    def __init__(self, upstream):
        self.upstream = upstream  # (host, port)
        self.port = 0
        self.ls = None
        self._lock = threading.Lock()
        self.listen(True)
        self.mode = None  # None, "refuse", "halfopen", "silent", "slow"
        self.delay = 0.0
        self.pairs = []  # [client, server]
        self.accepts = 0  # connections the charger opened
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def listen(self, on):
        """Open (or close) the listening port: closed, a connection attempt
        is refused by the TCP stack, as at an address where nothing runs."""
        with self._lock:
            if on and self.ls is None:
                ls = socket.socket()
                ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                ls.bind(("127.0.0.1", self.port))
                ls.listen(8)
                self.port = ls.getsockname()[1]
                self.ls = ls
            elif not on and self.ls is not None:
                self.ls.close()
                self.ls = None

    def _run(self):
        held = collections.deque()  # (due, socket, data) for "slow"
        while not self._stop:
            with self._lock:
                socks = [s for p in self.pairs for s in p]
                if self.ls is not None:
                    socks.append(self.ls)
            try:
                r, _, _ = select.select(socks, [], [], 0.05)
            except (OSError, ValueError):
                self._prune()
                continue
            now = time.time()
            while held and held[0][0] <= now:
                _, dst, data = held.popleft()
                self._send(dst, data)
            for s in r:
                if s is self.ls and s is not None:
                    self._accept()
                    continue
                pair = self._pair_of(s)
                if pair is None:
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self._close(pair, rst=False)
                    continue
                dst = pair[1] if s is pair[0] else pair[0]
                mode = self.mode
                if mode == "halfopen":
                    continue  # dropped on the floor, both ways
                if mode == "silent" and s is pair[1]:
                    continue  # the CSMS's answers never arrive
                if mode == "slow":
                    held.append((now + self.delay, dst, data))
                    continue
                self._send(dst, data)

    def _accept(self):
        try:
            c, _ = self.ls.accept()
        except (OSError, AttributeError):  # closed by listen(False) meanwhile
            return
        self.accepts += 1
        if self.mode == "refuse":
            self._rst(c)
            return
        try:
            u = socket.create_connection(self.upstream, timeout=3)
        except OSError:
            self._rst(c)
            return
        with self._lock:
            self.pairs.append([c, u])

    def _pair_of(self, s):
        with self._lock:
            for p in self.pairs:
                if s is p[0] or s is p[1]:
                    return p
        return None

    def _send(self, dst, data):
        try:
            dst.sendall(data)
        except OSError:
            p = self._pair_of(dst)
            if p is not None:
                self._close(p, rst=False)

    @staticmethod
    def _rst(s):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        except OSError:
            pass

    def _close(self, pair, rst):
        with self._lock:
            if pair in self.pairs:
                self.pairs.remove(pair)
        for s in pair:
            if rst:
                self._rst(s)
            else:
                try:
                    s.close()
                except OSError:
                    pass

    def _prune(self):
        with self._lock:
            pairs = list(self.pairs)
        for p in pairs:
            if any(s.fileno() < 0 for s in p):
                self._close(p, rst=False)

    def reset_all(self):
        with self._lock:
            pairs = list(self.pairs)
        for p in pairs:
            self._close(p, rst=True)

    def close(self):
        self._stop = True
        self._t.join(2)
        self.reset_all()
        self.listen(False)


class Campaign:
    def __init__(self, faults=40, transactions=10, seed=1, micropython=None, data_dir=None,
                 heap="512k", log=print, kinds=KINDS):
        unknown = set(kinds) - set(KINDS)
        if unknown or not kinds:
            raise ValueError("fault kinds are among %s, not %s" % (", ".join(KINDS),
                                                                 ", ".join(sorted(unknown))))
        self.kinds = tuple(kinds)
        self.faults = faults
        self.transactions = transactions
        self.r = random.Random(seed)
        self.micropython = micropython
        self.heap = heap
        self.say = log
        self._tmp = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="linkfaults-")
            data_dir = self._tmp.name
        self.data_dir = data_dir
        self.csms = self.proxy = self.charger = None
        self.failures = []
        self.stats = collections.Counter()
        self.reconnect_s = []
        self._answer_fault = None  # "callerror" / "malformed" for the next tx message

    # --- setup
    def start(self):
        from simcharger import Charger
        logging.getLogger("csms").setLevel(logging.ERROR)
        self.csms = BenchCSMS(log=lambda s: None).start()
        for action in ("StartTransaction", "StopTransaction", "MeterValues"):
            self.csms.set_handler(action, self._answer)
        host, port = self.csms.url.split("//", 1)[1].split("/", 1)[0].split(":")
        self.proxy = Proxy((host, int(port)))
        # by name, as a charger in the field: the dns fault stops it resolving
        url = self.csms.url.replace("%s:%s/" % (host, port), "localhost:%d/" % self.proxy.port)
        self.charger = Charger(url, os.path.join(self.data_dir, "CP1"), config=PROVISIONING,
                               heap=self.heap, micropython=self.micropython)
        self.charger.start()
        self.csms.wait_for("StatusNotification", timeout=20,
                           pred=lambda m: m.payload.get("connectorId") == 1)
        self.t0 = time.time()

    def _answer(self, cp_id, payload):
        # The bench CSMS's handler for the transaction messages: the default
        # answer, or once the fault asked for.
        action = self._action_of(payload)
        f, self._answer_fault = self._answer_fault, None
        if f == "callerror":
            self.stats["answered_callerror"] += 1
            return CallErrorReply("InternalError", "link fault campaign")
        if f == "malformed":
            self.stats["answered_malformed"] += 1
            return {"idTagInfo": "not an object", "transactionId": "x"} \
                if action == "StartTransaction" else {"idTagInfo": 5}
        return self.csms.default_reply(action, cp_id, payload)

    @staticmethod
    def _action_of(payload):
        if "meterStart" in payload:
            return "StartTransaction"
        if "meterStop" in payload:
            return "StopTransaction"
        return "MeterValues"

    # --- the run
    def run(self):
        # The faults are spread over the transactions: each transaction
        # charges for a few seconds while its share of faults happens.
        per = [0] * self.transactions
        for i in range(self.faults):
            per[self.r.randrange(self.transactions)] += 1
        for n in range(self.transactions):
            self._transaction(per[n])
            if len(self.failures) > 20:
                break

    def _transaction(self, nfaults):
        r, ch = self.r, self.charger
        self._ok("plug_in", connector=1)
        self._ok("swipe", idTag=ID_TAG)
        self._ok("load", connector=1, amps=[r.choice((6, 16, 32))] * 3)
        for _ in range(nfaults):
            time.sleep(r.random() * 1.5)
            self._fault(r.choice(self.kinds))
        time.sleep(1 + r.random() * 2)
        deadline = time.time() + 60
        while True:  # the card stops it once the charger has it running
            try:
                c = ch.connector()
                if c["transaction"] is not None:
                    ch.ok("swipe", idTag=ID_TAG)
                    break
            except (AssertionError, OSError):
                pass
            if time.time() > deadline:
                self._fail("transaction %d never seen running" % self.stats["transactions_run"])
                break
            time.sleep(0.2)
        self._ok("plug_out", connector=1)
        self.stats["transactions_run"] += 1

    def _ok(self, op, **kw):
        try:
            self.charger.ok(op, **kw)
        except (AssertionError, OSError) as e:
            self._fail("bench %s: %s" % (op, e))

    def _fault(self, kind):
        r, p, c = self.r, self.proxy, self.csms
        self.stats["fault_" + kind] += 1
        n = c.connections("CP1")
        if kind == "reset":
            p.reset_all()
        elif kind == "restart":
            p.mode = "refuse"
            p.reset_all()
            time.sleep(0.5 + r.random() * 3)
            p.mode = None
        elif kind == "halfopen":
            p.mode = "halfopen"
            a0 = p.accepts
            d = 2 + r.random() * 6
            time.sleep(d)
            if d > _NOTICE_S:  # PING period + PONG deadline + a margin
                if p.accepts == a0:
                    self._fail("half-open link not noticed in %.1f s" % d)
                else:
                    self.stats["halfopen_noticed"] += 1
            p.reset_all()  # the old connections are dead to both ends by now
            p.mode = None
        elif kind == "silent":
            p.mode = "silent"
            time.sleep(1 + r.random() * 4)
            p.mode = None
        elif kind == "slow":
            p.delay = 1 + r.random() * 3
            p.mode = "slow"
            time.sleep(2 + r.random() * 4)
            p.mode = None
        elif kind == "dns":
            # Names stop resolving, then nothing listens at the address for
            # a while (a failed connection makes the board resolve again):
            # the charger must come back on the last address that worked.
            looked = self.charger.ok("dns", up=False)["lookups"]
            p.listen(False)
            p.reset_all()
            time.sleep(0.5 + r.random() * 3)
            p.listen(True)
        else:
            self._answer_fault = kind
            time.sleep(1 + r.random())
        if kind in _CONN_FAULTS:
            t = time.time()
            try:
                c.wait_connected("CP1", timeout=RECONNECT_S + 30, count=n + 1)
                self.reconnect_s.append(time.time() - t)
                if time.time() - t > RECONNECT_S:
                    self._fail("%s: reconnected after %.1f s (allowed %.0f s)" % (
                        kind, time.time() - t, RECONNECT_S))
            except (TimeoutError, AssertionError):
                self._fail("%s: no new connection within %.0f s" % (kind, RECONNECT_S + 30))
        if kind == "dns":
            tried = self.charger.ok("dns", up=True)["lookups"] - looked
            self.stats["dns_lookups_failed"] += tried
            if tried == 0:
                self._fail("dns: the charger never tried to resolve its CSMS again")

    def _fail(self, text):
        self.failures.append(text)
        self.say("FAIL " + text)

    # --- the end
    def finish(self, drain_timeout=120):
        ch, c = self.charger, self.csms
        self.proxy.mode = None
        self._answer_fault = None
        c.wait_connected("CP1", timeout=30)
        txoracle.drain(ch, c, ID_TAG, self._fail, drain_timeout)
        self.stats["duration_s"] = round(time.time() - self.t0, 1)
        txoracle.check(c, self._fail, self.stats)
        faults = sum(v for k, v in self.stats.items() if k.startswith("fault_"))
        dups = self.stats["start_duplicates"] + self.stats["stop_duplicates"]
        if dups > faults:
            self._fail("%d duplicates for %d faults" % (dups, faults))
        if ch.state()["boot"] != 1:
            self._fail("the charger restarted during the run")
        self.stats["connections"] = c.connections("CP1")
        return self.stats

    def close(self):
        if self.charger is not None:
            self.charger.stop()
        if self.proxy is not None:
            self.proxy.close()
        if self.csms is not None:
            self.csms.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


def report(stats, failures, reconnect_s=()):
    s = stats
    kinds = ", ".join("%s %d" % (k, s["fault_" + k]) for k in KINDS)
    lines = [
        "faults: %d (%s)" % (sum(s["fault_" + k] for k in KINDS), kinds),
        "transactions: %d run, %d at the CSMS (StartTransaction %d, StopTransaction %d)" % (
            s["transactions_run"], s["transactions"], s["start_messages"], s["stop_messages"]),
        "duplicates: Start %d, Stop %d; answered CALLERROR %d, malformed %d; "
        "connections %d" % (s["start_duplicates"], s["stop_duplicates"],
                            s["answered_callerror"], s["answered_malformed"], s["connections"]),
        "reconnect after a connection fault: max %.1f s, mean %.1f s; half-open links "
        "noticed by the charger itself: %d; duration %.0f s" % (
            max(reconnect_s or [0]), sum(reconnect_s) / len(reconnect_s) if reconnect_s else 0,
            s["halfopen_noticed"], s["duration_s"]),
        "names that did not resolve during the dns faults: %d (the last address used "
        "each time)" % s["dns_lookups_failed"],
        "failures: %d" % len(failures)]
    return "\n".join(lines)
