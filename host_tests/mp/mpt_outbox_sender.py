# The RAM outbox (queue/outbox.py) and the sender's order (queue/sender.py)
# against a fake RPC that answers every CALL at once, with the real
# Registration and the real persistent queue on a littlefs over simulated
# NOR flash.
import asyncio

from fakes import Registration, T0, config, init_clock, settle, tmpdir

from mpocpp.protocol.rpc import CallError
from mpocpp.protocol.registration import Registration as RealRegistration
from mpocpp.queue.outbox import Outbox
from mpocpp.queue.sender import Sender


def _status(cid, status, err="NoError"):
    return {"connectorId": cid, "status": status, "errorCode": err,
            "timestamp": "2026-01-01T00:00:00Z"}


def test_outbox_offline_changes_collapse_and_restamp():
    reg = Registration(online=False)
    ob = Outbox(reg, asyncio.Event())
    ob.status_changed(_status(1, "Preparing"))
    ob.status_changed(_status(1, "Charging"))
    ob.status_changed(_status(2, "Faulted", "GroundFailure"))
    assert ob.statuses == []  # offline: nothing queued yet
    reg.online = True
    ob.reconnected("2026-01-01T00:05:00Z")
    assert [(p["connectorId"], p["status"]) for p in ob.statuses] == [(1, "Charging"),
                                                                      (2, "Faulted")]
    assert all(p["timestamp"] == "2026-01-01T00:05:00Z" for p in ob.statuses)
    ob.reconnected("2026-01-01T00:06:00Z")  # nothing new: nothing added
    assert len(ob.statuses) == 2


def test_outbox_online_bounded_and_boot_first():
    ob = Outbox(Registration(), asyncio.Event())
    for i in range(20):
        ob.status_changed(_status(1 + i % 2, "Charging" if i % 4 < 2 else "SuspendedEV"))
    assert len(ob.statuses) <= 16
    assert {p["connectorId"] for p in ob.statuses} == {1, 2}  # none lost entirely
    ob.boot([_status(0, "Available"), _status(1, "Available")])
    assert ob.first and [p["connectorId"] for p in ob.statuses] == [0, 1]
    ob.offline()
    assert not ob.first
    ob.trigger("Heartbeat", {})
    assert ob.triggered[0].action == "Heartbeat"


class Rpc:
    # The RPC layer as the sender sees it: canned answers, calls recorded.
    def __init__(self, boot="Accepted", interval=60):
        self.calls = []
        self.boot = boot
        self.interval = interval
        self.fail = {}  # action -> CallError to raise
        self.silent = False
        self.gate = None

    async def call(self, action, payload, timeout_s, on_result=None):
        self.calls.append((action, payload))
        await asyncio.sleep_ms(0)
        if action in self.fail:
            raise self.fail[action]
        if action == "BootNotification":
            res = {"status": self.boot, "interval": self.interval,
                   "currentTime": "2026-01-01T00:00:30.250Z"}
        elif action == "StartTransaction":
            res = {"transactionId": 7, "idTagInfo": {"status": "Accepted"}}
        elif action in ("Heartbeat",):
            res = {"currentTime": "2026-01-01T00:01:00Z"}
        else:
            res = {}
        if on_result is not None:
            on_result(res)
        return res

    def actions(self):
        return [a for a, _ in self.calls]


def _queue(wake, cfg):
    from mpocpp_board.norflash import NorFlash, mount_lfs
    from mpocpp.queue.lfs import LfsStore
    from mpocpp.queue.messages import MessageQueue
    from mpocpp.model.config import Setting
    dev = NorFlash(64 * 4096)
    mount_lfs(dev, "/flash")
    q = MessageQueue((LfsStore("/flash/t", 32768), LfsStore("/flash/o", 16384)),
                     Setting(cfg, "TransactionMessageAttempts"),
                     Setting(cfg, "TransactionMessageRetryInterval"), wake=wake)
    q.mount()
    return q, dev


class Rig:
    def __init__(self, boot="Accepted", keys=None):
        self.clock = init_clock()
        self.cfg = config(tmpdir("mpt_sender"), dict({"HeartbeatInterval": 0}, **(keys or {})),
                          settings={"bootRetryS": 1})
        self.wake = asyncio.Event()
        self.rpc = Rpc(boot)
        self.reg = RealRegistration(self.cfg, self.rpc, False, "9.9")
        self.reg.online = True
        self.ob = Outbox(self.reg, self.wake)
        self.queue, self.dev = _queue(self.wake, self.cfg)
        self.registered = []
        self.delivered = []
        self.sender = Sender(self.cfg, self.rpc, self.reg, self.ob, self.queue, self.wake,
                             self._registered, self._delivered)

    def _registered(self):
        self.registered.append(True)
        self.ob.boot([_status(0, "Available"), _status(1, "Available")])

    def _delivered(self, action, payload, res):
        self.delivered.append((action, res))

    def done(self):
        from mpocpp_board.norflash import umount
        umount("/flash")

    async def run_for(self, ms):
        t = asyncio.create_task(self.sender.run())
        await asyncio.sleep_ms(ms)
        t.cancel()
        await settle()


async def test_boot_then_statuses_then_transaction_messages():
    r = Rig()
    try:
        # queued before the connection (scenario 46): a StartTransaction
        ph = r.queue.new_placeholder()
        r.queue.push("StartTransaction", {"connectorId": 1, "idTag": "T1", "meterStart": 0,
                                          "timestamp": "2026-01-01T00:00:00Z"}, True, ph)
        r.queue.push("MeterValues", {"connectorId": 0, "meterValue": []}, False)
        await r.run_for(200)
        a = r.rpc.actions()
        assert a[:5] == ["BootNotification", "StatusNotification", "StatusNotification",
                         "StartTransaction", "MeterValues"], a
        boot = r.rpc.calls[0][1]
        assert boot["chargePointVendor"] == "OpenCharge" and boot["firmwareVersion"] == "9.9"
        assert r.registered == [True] and r.reg.status == "Accepted"
        assert r.cfg.get("HeartbeatInterval") == 60  # from the answer
        assert r.clock.sets[-1] == T0 + 30  # the RTC gets whole seconds
        assert r.delivered[0] == ("StartTransaction", {"transactionId": 7,
                                                        "idTagInfo": {"status": "Accepted"}})
        assert r.queue.resolve(ph) == 7 and len(r.queue) == 0
    finally:
        r.done()


async def test_transaction_messages_go_before_later_statuses():
    r = Rig()
    try:
        await r.run_for(100)
        n = len(r.rpc.calls)
        r.ob.status_changed(_status(1, "Charging"))
        r.queue.push("StopTransaction", {"transactionId": 7, "meterStop": 10,
                                         "timestamp": "2026-01-01T00:00:00Z", "reason": "Local"})
        await r.run_for(100)
        # the connection goes on (no new BootNotification): the transaction
        # message before the status that changed meanwhile
        assert r.rpc.actions()[n:n + 2] == ["StopTransaction", "StatusNotification"], \
            r.rpc.actions()[n:]
    finally:
        r.done()


async def test_triggered_first_and_heartbeat_when_idle():
    r = Rig(keys={"HeartbeatInterval": 1})
    try:
        r.rpc.interval = 1
        r.ob.trigger("DiagnosticsStatusNotification", {"status": "Idle"})
        await r.run_for(1600)
        a = r.rpc.actions()
        assert a[1] == "DiagnosticsStatusNotification", a
        assert "Heartbeat" in a
    finally:
        r.done()


async def test_triggered_heartbeat_sets_the_clock():
    # A Heartbeat asked by TriggerMessage: its currentTime sets the clock,
    # as an idle one's does.
    r = Rig()
    try:
        r.ob.trigger("Heartbeat", {})
        await r.run_for(300)
        a = r.rpc.actions()
        assert a[:2] == ["BootNotification", "Heartbeat"], a
        assert r.clock.sets[-1] == 1767225660, r.clock.sets  # 2026-01-01T00:01:00Z
    finally:
        r.done()


async def test_pending_answers_only_triggered_and_retries_boot():
    r = Rig(boot="Pending")
    try:
        r.rpc.interval = 1  # retry the BootNotification after 1 s
        r.queue.push("MeterValues", {"connectorId": 0, "meterValue": []}, False)
        r.ob.trigger("StatusNotification", _status(1, "Available"))
        await r.run_for(1500)
        a = r.rpc.actions()
        assert a.count("BootNotification") >= 2 and "StatusNotification" in a
        assert "MeterValues" not in a  # nothing but the triggered while Pending
        r.rpc.boot = "Accepted"
        await r.run_for(1500)
        assert "MeterValues" in r.rpc.actions()
    finally:
        r.done()


async def test_rejected_is_silent_for_the_interval():
    r = Rig(boot="Rejected")
    try:
        r.rpc.interval = 1
        t = asyncio.create_task(r.sender.run())
        await asyncio.sleep_ms(100)
        assert r.rpc.silent  # set as the answer is read (on_result)
        assert r.rpc.actions() == ["BootNotification"]
        await asyncio.sleep_ms(1200)
        t.cancel()
        await settle()
        assert r.rpc.actions().count("BootNotification") >= 2
    finally:
        r.done()


async def test_callerror_on_a_transaction_message_retried_then_dropped():
    r = Rig(keys={"TransactionMessageAttempts": 2, "TransactionMessageRetryInterval": 0})
    try:
        r.rpc.fail["StopTransaction"] = CallError("InternalError", "db down")
        r.queue.push("StopTransaction", {"transactionId": 7, "meterStop": 1,
                                         "timestamp": "2026-01-01T00:00:00Z", "reason": "Local"})
        await r.run_for(300)
        assert r.rpc.actions().count("StopTransaction") == 2, r.rpc.actions()
        assert len(r.queue) == 0, len(r.queue)
    finally:
        r.done()
