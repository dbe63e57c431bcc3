# RemoteTrigger profile: TriggerMessage (OCPP 1.6 §5.17), and the security
# whitepaper's ExtendedTriggerMessage (its messages, F06). The answer goes
# first; the requested message is handed to the outbox, which the sender
# empties even while the registration is Pending.
from mpocpp.util import modules

_KNOWN = ("BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
          "Heartbeat", "MeterValues", "StatusNotification")
_EXTENDED = ("BootNotification", "FirmwareStatusNotification", "Heartbeat",
             "LogStatusNotification", "MeterValues", "SignChargePointCertificate",
             "StatusNotification")

_FW = ("DiagnosticsStatusNotification", "FirmwareStatusNotification")
_SIGNED = "SignedFirmwareStatusNotification"
_TRANSFERS = _FW + (_SIGNED, "LogStatusNotification")  # what reads the jobs' state


class RemoteTrigger:
    # meter_values(cid) -> a MeterValues payload with the latest values, or None;
    # jobs() -> the transfer.jobs.Jobs (made on first use: asked only for a
    # transfer's status); firmware: FirmwareManagement is supported
    # (else its status notifications are NotImplemented); sign_certificate():
    # the coroutine of a new key pair and SignCertificate (Charger).
    def __init__(self, cfg, connectors, registration, sender, outbox, meter_values, jobs,
                 firmware, sign_certificate):
        self._cfg = cfg
        self._cons = connectors
        self._reg = registration
        self._sender = sender
        self._outbox = outbox
        self._meter_values = meter_values
        self._jobs = jobs
        self._firmware = firmware
        self._sign = sign_certificate

    def TriggerMessage(self, req):
        return self._trigger(req, _KNOWN)

    def ExtendedTriggerMessage(self, req):
        return self._trigger(req, _EXTENDED)

    def _trigger(self, req, known):
        what = req["requestedMessage"]
        cid = req.get("connectorId")
        n = len(self._cons) - 1
        if cid is not None and (cid < 0 or cid > n):
            return {"status": "Rejected"}
        if what not in known or (not self._firmware and what in _FW):
            return {"status": "NotImplemented"}
        if what == "BootNotification":
            if self._reg.status == "Accepted":
                return {"status": "Rejected"}  # errata E3.35
            return {"status": "Accepted"}, self._sender.boot_now
        if what == "SignChargePointCertificate":
            # A02: the CSR names the CpoName as its organization
            if not self._cfg.get("CpoName"):
                return {"status": "Rejected"}
            return {"status": "Accepted"}, self._sign
        if what == "StatusNotification":
            ids = range(n + 1) if cid is None else (cid,)
        elif what == "MeterValues":
            # connector 0: the charge point's total (the sum of its connectors)
            ids = range(1, n + 1) if cid is None else (cid,)
        else:
            ids = ()
        if what == "FirmwareStatusNotification" and known is _EXTENDED:
            what = _SIGNED  # the signed firmware's status (whitepaper 6.16)
        return {"status": "Accepted"}, _Send(self, what, ids)

    def send(self, what, ids):
        ob = self._outbox
        j = self._jobs() if what in _TRANSFERS else None
        if what == "Heartbeat":
            ob.trigger("Heartbeat", {})
        elif what == "StatusNotification":
            for i in ids:
                ob.trigger(what, self._cons[i].status_payload())
        elif what == "MeterValues":
            for i in ids:
                p = self._meter_values(i)
                if p:
                    ob.trigger(what, p)
        elif what == "FirmwareStatusNotification":
            ob.trigger(what, {"status": j.firmware})
        elif what == _SIGNED:
            name = "mpocpp.operations.signedfirmware"
            try:
                ob.trigger(what, modules.load(name).triggered(j))
            finally:
                modules.release(name)
        elif what == "LogStatusNotification":
            p = {"status": j.log_status}
            if j.log_request is not None:  # N01.FR.12: while one uploads
                p["requestId"] = j.log_request
            ob.trigger(what, p)
        else:
            ob.trigger(what, {"status": j.diagnostics})


class _Send:
    # Follow-up run once the answer has been sent (a bound object, no closure).
    def __init__(self, trigger, what, ids):
        self.trigger = trigger
        self.what = what
        self.ids = ids

    def __call__(self):
        self.trigger.send(self.what, self.ids)
