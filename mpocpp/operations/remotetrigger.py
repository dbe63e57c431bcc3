# RemoteTrigger profile: TriggerMessage. The answer goes first; the requested
# message is queued for the sender, which may send it even while the
# registration is Pending.
from mpocpp.protocol.rpc import Reply

_KNOWN = ("BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
          "Heartbeat", "MeterValues", "StatusNotification")


def TriggerMessage(cp, req):
    what = req["requestedMessage"]
    cid = req.get("connectorId")
    n = len(cp.connectors) - 1
    if cid is not None and (cid < 0 or cid > n):
        return {"status": "Rejected"}
    if what == "BootNotification":
        if cp.link.registration == "Accepted":
            return {"status": "Rejected"}  # errata E3.35
        return {"status": "Accepted"}, cp.link.boot_now
    if what == "Heartbeat":
        return {"status": "Accepted"}, _heartbeat(cp)
    if what == "StatusNotification":
        ids = range(0, n + 1) if cid is None else (cid,)
        return {"status": "Accepted"}, _status(cp, ids)
    if what == "MeterValues":
        # connector 0: the charge point's total (the sum of its connectors)
        ids = range(1, n + 1) if cid is None else (cid,)
        return {"status": "Accepted"}, _meter(cp, ids)
    if what == "FirmwareStatusNotification":
        st = cp.firmware_status if hasattr(cp, "firmware_status") else "Idle"
        return {"status": "Accepted"}, _one(cp, "FirmwareStatusNotification", {"status": st})
    if what == "DiagnosticsStatusNotification":
        st = cp.diagnostics_status if hasattr(cp, "diagnostics_status") else "Idle"
        return {"status": "Accepted"}, _one(cp, "DiagnosticsStatusNotification", {"status": st})
    return {"status": "NotImplemented"}


# Each follow-up is a small bound object rather than a closure.
class _Follow:
    def __init__(self, cp, ids):
        self.cp = cp
        self.ids = ids


class _status(_Follow):
    def __call__(self):
        for i in self.ids:
            self.cp.trigger("StatusNotification", self.cp.connectors[i].status_payload())


class _heartbeat(_Follow):
    def __init__(self, cp):
        self.cp = cp

    def __call__(self):
        self.cp.trigger("Heartbeat", {})


class _meter(_Follow):
    def __call__(self):
        for i in self.ids:
            p = self.cp.meter_values_payload(i, "Trigger") if hasattr(self.cp, "meter_values_payload") else None
            if p:
                self.cp.trigger("MeterValues", p)


class _one:
    def __init__(self, cp, action, payload):
        self.cp = cp
        self.action = action
        self.payload = payload

    def __call__(self):
        self.cp.trigger(self.action, self.payload)
