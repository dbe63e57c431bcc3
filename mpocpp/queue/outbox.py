# The RAM outbox of the messages that need not survive a power cut:
# StatusNotifications (§4.9, errata E3.22) and the messages TriggerMessage
# asked for. Transaction messages go to the persistent queue instead
# (messages.py); the sender (sender.py) decides the order between them.
from micropython import const

_MAX = const(16)  # statuses kept; beyond, a connector's older ones are collapsed


class _Triggered:
    # A message TriggerMessage (or a job's notification) asked for.
    def __init__(self, action, payload):
        self.action = action
        self.payload = payload


class Outbox:
    def __init__(self, registration, wake):
        self._reg = registration
        self._wake = wake  # asyncio.Event the sender waits on
        self.statuses = []  # StatusNotification payloads waiting to be sent
        self.triggered = []  # _Triggered, in request order
        self._dirty = {}  # connector id -> its latest payload while offline
        self.first = False  # after boot: statuses before the queued messages

    def status_changed(self, payload):
        # A connector's status changed: StatusNotification now, or, while
        # offline, once as the current state after the reconnect.
        if self._reg.accepted:
            self._append(payload)
            self._wake.set()
        else:
            self._dirty[payload["connectorId"]] = payload

    def _append(self, payload):
        if len(self.statuses) >= _MAX:
            cid = payload["connectorId"]
            self.statuses = [p for p in self.statuses if p["connectorId"] != cid]
        self.statuses.append(payload)

    def boot(self, payloads):
        # E3.22: after the first Accepted BootNotification, the status of
        # connector 0 and of every connector, before the queued transaction
        # messages (scenario 46: Boot, StatusNotification, StopTransaction).
        self.statuses = list(payloads)
        self._dirty = {}
        self.first = True
        self._wake.set()

    def reconnected(self, now_iso):
        # Offline rules of the reference charger: what was queued before the
        # link dropped stays; a connector that changed while offline reports
        # once, its current state stamped now (the reconnection); errors that
        # came and went offline are not replayed.
        for cid in sorted(self._dirty):
            p = self._dirty[cid]
            p["timestamp"] = now_iso
            last = None
            for q in self.statuses:
                if q["connectorId"] == cid:
                    last = q
            if last is not None and last["status"] == p["status"] and \
                    last["errorCode"] == p["errorCode"] and last.get("info") == p.get("info"):
                continue  # already waiting to go
            self._append(p)
        self._dirty = {}
        self._wake.set()

    def offline(self):
        # After a reconnection the queued transaction messages go first
        # (scenario 40), even if boot statuses are still waiting.
        self.first = False

    def trigger(self, action, payload):
        self.triggered.append(_Triggered(action, payload))
        self._wake.set()
