"""The heap-budget scenario of issue 8, shared by the test that holds the
budget (test_heap_budget.py) and the benchmark that measures it
(bench/bench_heap.py).

One simulated charger, as the boards build it (bytecode without line numbers),
on a fixed `-X heapsize`, goes through:

- wss:// with security profile 2 (the test CA, Basic auth);
- a local list of LocalAuthListMaxLength (1,024) entries: a Full list of 255
  and Differential updates, every entry with expiryDate and parentIdTag;
- a transaction with MeterValues every 10 s (every MeterValueSampleInterval);
- a full authorization cache: 256 cards presented during the transaction, each
  one Authorize whose answer is cached;
- ChargeProfileMaxStackLevel + 2 = 10 charging profiles installed;
- a full message queue: offline with Sample.Clock values every second until the
  queue drops the oldest, then online again and drained;
- during the transaction: a SendLocalList of 255 entries (25 KB of JSON), a
  GetDiagnostics upload over HTTP and a GetCompositeSchedule.

It passes when every call is answered as expected and the charger neither
logged a MemoryError nor restarted.
"""
import base64
import os
import time

from conftest import FAST, merged
from csms_lib import BenchCSMS
from fileservers import HttpFileServer
from simcharger import Charger

KEY = "heap-budget-key-16"
GROUPS = 7
# What an idle charger lets go (idleReleaseMs): the sessions' code, the
# authorization rules and store, the payload validator and the date parser.
_RELEASED = ("mpocpp.model.sessionflow", "mpocpp.model.authrules", "mpocpp.model.authstore",
             "mpocpp.protocol.validate", "mpocpp.util.timeparse")


def entry(i, prefix="L"):
    # A 20-character idTag with every optional field: the largest entry.
    return {"idTag": "%s%019d" % (prefix, i),
            "idTagInfo": {"status": "Accepted", "expiryDate": "2099-01-01T00:00:00Z",
                          "parentIdTag": "GROUP%015d" % (i % GROUPS)}}


def _pem(der):
    b = base64.encodebytes(der).decode()
    return "-----BEGIN CERTIFICATE-----\n" + b + "-----END CERTIFICATE-----\n"


def profile(pid, stack, connector_purpose, limit):
    return {"chargingProfileId": pid, "stackLevel": stack,
            "chargingProfilePurpose": connector_purpose, "chargingProfileKind": "Recurring",
            "recurrencyKind": "Daily",
            "chargingSchedule": {
                "chargingRateUnit": "A", "startSchedule": "2026-01-01T00:00:00Z",
                "duration": 86400,
                "chargingSchedulePeriod": [
                    {"startPeriod": 3600 * h, "limit": limit - h % 3, "numberPhases": 3}
                    for h in range(0, 24, 2)]}}


def profiles():
    # Ten: the charge point's maximum, and TxDefaultProfile stacks 0-8 on
    # connectors 0 and 1.
    out = [(0, profile(1, 0, "ChargePointMaxProfile", 32))]
    out.append((0, profile(2, 0, "TxDefaultProfile", 30)))
    for s in range(8):
        out.append((1, profile(10 + s, s + 1 if s else 0, "TxDefaultProfile", 28 - s)))
    return out


class Scenario:
    """Sets up the CSMS side (TLS CSMS, HTTP upload server) and runs the
    charger through the scenario; `run()` returns the figures."""

    def __init__(self, tmp, micropython, heap, log=None, romfs=False):
        self.tmp = str(tmp)
        self.micropython = micropython
        self.heap = heap  # the firmware's: a ROMFS image's own block comes on top
        self.romfs = romfs  # the bytecode run in place from a ROMFS image (tools/sim --romfs)
        self.log = log or (lambda s: None)
        self.csms = None
        self.http = None
        self.ch = None

    # --- setup and teardown -----------------------------------------------------
    def __enter__(self):
        from certs import pki
        self.pki = p = pki()
        self.csms = BenchCSMS(ssl_context=p.server_context())
        self.csms.passwords = {"CP1": KEY}
        self.csms.start()
        self.http = HttpFileServer().start()
        return self

    def __exit__(self, *exc):
        if self.ch is not None:
            self.ch.stop()
        self.http.stop()
        self.csms.stop()

    def charger(self, settings=None):
        # settings: more non-OCPP settings (docs/configuration.md)
        url = self.csms.url.replace("127.0.0.1", "localhost")
        cfg = merged(FAST, {
            "keys": {"MeterValueSampleInterval": 10, "ConnectionTimeOut": 60,
                     "MeterValuesSampledData": "Energy.Active.Import.Register,"
                     "Power.Active.Import,Current.Import,Voltage",
                     "MeterValuesAlignedData": "Energy.Active.Import.Register,"
                     "Power.Active.Import,Current.Import,Voltage",
                     "HeartbeatInterval": 60},
            "security": {"SecurityProfile": 2, "AuthorizationKey": KEY.encode().hex(),
                         "caCert": _pem(self.pki.ca_der)},
            "settings": dict({"csmsUrl": url, "queueBytes": 16384}, **(settings or {})),
        })
        self.ch = Charger(url, os.path.join(self.tmp, "CP1"), config=cfg, heap=self.heap,
                          micropython=self.micropython,
                          extra=["--no-lines"] + (["--romfs"] if self.romfs else []))
        return self.ch.start()

    # --- helpers --------------------------------------------------------------
    def call(self, action, payload, timeout=30):
        return self.csms.call("CP1", action, payload, timeout=timeout)

    def booted(self, after=0, timeout=60):
        self.csms.wait_for("BootNotification", after=after, timeout=timeout)
        self.csms.wait_for("StatusNotification", after=after, timeout=timeout,
                           pred=lambda m: m.payload.get("connectorId") == 1)

    def send_list(self, version, kind, entries):
        r = self.call("SendLocalList", {"listVersion": version, "updateType": kind,
                                        "localAuthorizationList": entries}, timeout=60)
        assert r["status"] == "Accepted", r

    def start_listed(self):
        # A transaction from a listed card, on an EV drawing 16 A: -> the
        # CSMS's mark before the swipe, once the relay is closed.
        c, ch = self.csms, self.ch
        ch.ok("load", connector=1, amps=[16, 16, 16])
        ch.ok("plug_in", connector=1)
        m = c.mark()
        ch.ok("swipe", idTag=entry(3)["idTag"])
        c.wait_for("StartTransaction", after=m, timeout=30)
        ch.wait_state(lambda s: s["connectors"][0]["relay"], timeout=30, what="charging")
        return m

    def stop_listed(self):
        # The same card stops it: -> the StopTransaction.
        m = self.csms.mark()
        self.ch.ok("swipe", idTag=entry(3)["idTag"])
        return self.csms.wait_for("StopTransaction", after=m, timeout=30)

    def wait_released(self, timeout):
        # The session code, the authorization store and the payload validator
        # gone once the connectors stay idle and no message has come or gone
        # for idleReleaseMs: -> the heap op's answer.
        deadline = time.time() + timeout
        while True:
            h = self.ch.ok("heap")
            if not any(m in h["modules"] for m in _RELEASED):
                return h
            assert time.time() < deadline, "session code or validator still loaded"
            time.sleep(0.3)

    def wait_online(self, timeout=30):
        deadline = time.time() + timeout
        while not self.csms.connected("CP1"):
            assert time.time() < deadline, "not reconnected"
            time.sleep(0.1)

    # --- the scenario -----------------------------------------------------------
    def run(self):
        c, ch = self.csms, self.charger()
        self.booted()
        boot = ch.state()["boot"]
        ch.ok("heap_watch", period_ms=50)
        self.log("connected over wss")

        # 1,024 local-list entries: a Full 255 and Differential updates.
        self.send_list(1, "Full", [entry(i) for i in range(255)])
        v, i = 1, 255
        while i < 1024:
            n = min(255, 1024 - i)
            v += 1
            self.send_list(v, "Differential", [entry(j) for j in range(i, i + n)])
            i += n
        assert self.call("GetLocalListVersion", {})["listVersion"] == v
        self.log("local list: 1024 entries, version %d" % v)

        # Ten charging profiles.
        for cid, prof in profiles():
            r = self.call("SetChargingProfile", {"connectorId": cid, "csChargingProfiles": prof})
            assert r["status"] == "Accepted", (prof["chargingProfileId"], r)

        # A transaction from a listed card.
        self.start_listed()
        self.log("transaction running")

        # A full authorization cache: 256 unknown cards, each one Authorize;
        # the CSMS accepts them in another group, so none stops the transaction.
        c.authorize = lambda tag: {"status": "Accepted", "parentIdTag": "OTHERGROUP"}
        for k in range(256):
            m, pos = c.mark(), len(ch.log_text())
            ch.ok("swipe", idTag="C%019d" % k)
            c.wait_for("Authorize", after=m, timeout=30)
            ch.wait_log("cannot stop the running transaction", timeout=30, after=pos)
        self.log("authorization cache: 256 cards")

        # A full queue: offline, clock-aligned values every second until the
        # oldest are dropped; then online again and drained.
        self.call("ChangeConfiguration", {"key": "ClockAlignedDataInterval", "value": "1"})
        pos = len(ch.log_text())
        ch.op("network", up=False)
        ch.wait_log("queue full", timeout=120, after=pos)
        ch.op("network", up=True)
        self.wait_online()
        self.call("ChangeConfiguration", {"key": "ClockAlignedDataInterval", "value": "0"})
        deadline = time.time() + 120
        while ch.state()["queue_depth"] > 0:
            assert time.time() < deadline, "queue not drained"
            time.sleep(0.2)
        self.log("queue filled offline and drained")

        # During the transaction: the largest SendLocalList, a diagnostics
        # upload and a composite schedule.
        self.send_list(v + 1, "Differential", [entry(j) for j in range(255)])
        m = c.mark()
        r = self.call("GetDiagnostics", {"location": self.http.url("/upload"), "retries": 1,
                                         "retryInterval": 1})
        assert r.get("fileName"), r
        c.wait_for("DiagnosticsStatusNotification", after=m, timeout=60,
                   pred=lambda x: x.payload["status"] == "Uploaded")
        assert self.http.uploads, "no upload"
        r = self.call("GetCompositeSchedule", {"connectorId": 1, "duration": 86400,
                                               "chargingRateUnit": "A"})
        assert r["status"] == "Accepted", r
        assert len(r["chargingSchedule"]["chargingSchedulePeriod"]) >= 2
        m = c.mark()
        c.wait_for("MeterValues", after=m, timeout=30,
                   pred=lambda x: "transactionId" in x.payload)
        self.log("SendLocalList, GetDiagnostics, GetCompositeSchedule done")

        # The card stops its transaction.
        assert self.stop_listed().payload["reason"] == "Local"

        st = ch.ok("heap")
        text = ch.log_text()
        assert "MemoryError" not in text, ch.tail(40)
        assert ch.state()["boot"] == boot, "the charger restarted"
        return {"peak": st["peak"], "alloc": st["alloc"], "samples": st["samples"]}
