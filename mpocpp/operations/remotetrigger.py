# RemoteTrigger profile: TriggerMessage (OCPP 1.6 §5.17). The answer goes
# first; the requested message is handed to the outbox, which the sender
# empties even while the registration is Pending.
from mpocpp.protocol.registration import ACCEPTED

_KNOWN = ("BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
          "Heartbeat", "MeterValues", "StatusNotification")

_FW = ("DiagnosticsStatusNotification", "FirmwareStatusNotification")


class RemoteTrigger:
    # meter_values(cid) -> a MeterValues payload with the latest values, or None;
    # jobs: transfer.jobs.Jobs, None without FirmwareManagement (its status
    # notifications are then NotImplemented).
    def __init__(self, connectors, registration, sender, outbox, meter_values, jobs):
        self._cons = connectors
        self._reg = registration
        self._sender = sender
        self._outbox = outbox
        self._meter_values = meter_values
        self._jobs = jobs

    def TriggerMessage(self, req):
        what = req["requestedMessage"]
        cid = req.get("connectorId")
        n = len(self._cons) - 1
        if cid is not None and (cid < 0 or cid > n):
            return {"status": "Rejected"}
        if what not in _KNOWN or (self._jobs is None and what in _FW):
            return {"status": "NotImplemented"}
        if what == "BootNotification":
            if self._reg.status == ACCEPTED:
                return {"status": "Rejected"}  # errata E3.35
            return {"status": "Accepted"}, self._sender.boot_now
        if what == "StatusNotification":
            ids = range(n + 1) if cid is None else (cid,)
        elif what == "MeterValues":
            # connector 0: the charge point's total (the sum of its connectors)
            ids = range(1, n + 1) if cid is None else (cid,)
        else:
            ids = ()
        return {"status": "Accepted"}, _Send(self, what, ids)

    def send(self, what, ids):
        ob = self._outbox
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
            ob.trigger(what, {"status": self._jobs.firmware})
        else:
            ob.trigger(what, {"status": self._jobs.diagnostics})


class _Send:
    # Follow-up run once the answer has been sent (a bound object, no closure).
    def __init__(self, trigger, what, ids):
        self.trigger = trigger
        self.what = what
        self.ids = ids

    def __call__(self):
        self.trigger.send(self.what, self.ids)
