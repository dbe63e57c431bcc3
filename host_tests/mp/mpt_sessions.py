# Charging sessions (mpocpp/model/sessions.py) over fake hardware, a fake
# queue and a fake authorization: card swipes, plug events, start and stop
# of transactions, the cable lock, ConnectionTimeOut, FreeCharging,
# StopTransactionOnInvalidId, PowerLoss recovery, a full queue, the
# emergency stop and remote start / stop.
import asyncio
import time

from fakes import Registration, Rig, config, settle
from mpocpp.model import transaction
from mpocpp.model.reservations import Reservation
from mpocpp.model.sessions import Assigner
from mpocpp.util import fsutil

_STOP_REASONS = ("DeAuthorized", "EmergencyStop", "EVDisconnected", "HardReset", "Local",
                 "Other", "PowerLoss", "Reboot", "Remote", "SoftReset", "UnlockCommand")


def _later(ms):
    return time.ticks_add(time.ticks_ms(), ms)


def _stops_complete(r):
    # StopTransaction always carries reason and idTag (the firmware's decision).
    for p in r.queue.all("StopTransaction"):
        assert p["reason"] in _STOP_REASONS, p
        assert p.get("idTag"), p
        assert p["meterStop"] >= 0 and p["timestamp"]


# --- start --------------------------------------------------------------------

async def test_plug_then_swipe_starts_a_transaction():
    r = Rig(answers={"TAG1": {"status": "Accepted"}})
    r.meter.wh[1] = 1234
    c = r.con()
    r.ev("B")
    assert c.status == "Preparing" and r.queue.pushed == []
    await r.swipe("TAG1")
    assert r.auth.asked == ["TAG1"]
    st = r.queue.last("StartTransaction")
    assert st == {"connectorId": 1, "idTag": "TAG1", "meterStart": 1234,
                  "timestamp": "2026-01-01T00:00:00Z"}, st
    assert r.queue.pushed[0].placeholder == c.tx.id and c.tx.id <= -2
    assert r.hooks.started == [1]
    assert r.hw[1].lock.locked  # locked for the transaction
    assert transaction.load(r.dir, 1).id_tag == "TAG1"  # on flash for PowerLoss
    assert c.status == "Preparing"  # until the EV answers the offer
    assert r.hw[1].pilot.offered == 32 and not r.hw[1].relay.closed
    r.ev("C")
    assert c.status == "Charging" and r.hw[1].relay.closed
    assert r.statuses() == ["Preparing", "Charging"]


async def test_swipe_then_plug_on_either_connector():
    r = Rig(n=2, answers={"TAG1": {"status": "Accepted"}})
    await r.swipe("TAG1")
    assert r.con(1).status == "Preparing" and r.con(2).status == "Preparing"
    assert r.queue.pushed == []
    r.ev("B", 2)
    assert r.con(2).tx is not None and r.queue.last("StartTransaction")["connectorId"] == 2
    r.sessions.tick(time.ticks_ms())
    assert r.con(1).pending is None and r.con(1).status == "Available"
    assert r.queue.actions() == ["StartTransaction"]


async def test_swipe_without_plug_times_out_after_connection_timeout():
    r = Rig(keys={"ConnectionTimeOut": 30}, answers={"TAG1": {"status": "Accepted"}})
    await r.swipe("TAG1")
    c = r.con()
    assert c.status == "Preparing"
    r.sessions.tick(_later(29000))
    assert c.status == "Preparing"
    r.sessions.tick(_later(30100))
    assert c.status == "Available" and c.pending is None
    r.ev("B")  # too late: no transaction
    assert c.tx is None and r.queue.pushed == []


async def test_plug_without_swipe_times_out_to_finishing():
    r = Rig(keys={"ConnectionTimeOut": 10})
    c = r.con()
    r.ev("B")
    r.sessions.tick(_later(9000))
    assert c.status == "Preparing"
    r.sessions.tick(_later(10100))
    assert c.status == "Finishing"  # B6: the cable is in, no idTag came
    r.ev("A")
    assert c.status == "Available"
    assert r.queue.pushed == []


async def test_refused_cards_start_nothing():
    for st in ("Invalid", "Blocked", "Expired", "ConcurrentTx"):
        r = Rig(answers={"BAD": {"status": st}})
        r.ev("B")
        await r.swipe("BAD")
        c = r.con()
        assert c.tx is None and r.queue.pushed == [], st
        assert r.refused.calls == ["faulted"]
        assert c.status == "Preparing" and r.hw[1].pilot.offered == 0
        assert not r.hw[1].relay.closed


async def test_a_second_swipe_while_authorizing_is_ignored():
    import asyncio
    r = Rig(answers={"TAG1": {"status": "Accepted"}, "TAG2": {"status": "Accepted"}})
    r.auth.gate = asyncio.Event()
    r.ev("B")
    await r.swipe("TAG1")
    await r.swipe("TAG2")
    r.auth.gate.set()
    await settle()
    assert r.auth.asked == ["TAG1"]
    assert r.con().tx.id_tag == "TAG1"


# --- stop by card ----------------------------------------------------------------

async def test_same_card_stops_without_authorize():
    r = Rig()
    c = await r.start("TAG1")
    r.meter.wh[1] = 7000
    r.auth.asked[:] = []
    await r.swipe("tag1")  # idTags are case-insensitive
    assert r.auth.asked == []
    sp = r.queue.last("StopTransaction")
    assert sp["transactionId"] == r.queue.pushed[0].placeholder
    assert (sp["reason"], sp["idTag"], sp["meterStop"]) == ("Local", "tag1", 7000)
    assert c.tx is None and c.status == "Finishing"
    assert not r.hw[1].relay.closed and r.hw[1].pilot.offered == 0
    assert not r.hw[1].lock.locked  # a normal end unlocks (§4.10)
    assert transaction.load(r.dir, 1) is None
    assert r.hooks.stopped == [1]
    r.ev("A")
    assert c.status == "Available"
    assert r.statuses()[-3:] == ["Charging", "Finishing", "Available"]
    _stops_complete(r)


async def test_group_card_stops_other_group_does_not():
    r = Rig(answers={"TAG2": {"status": "Accepted", "parentIdTag": "FLEET"},
                     "TAG3": {"status": "Accepted", "parentIdTag": "OTHER"},
                     "TAG4": {"status": "Blocked", "parentIdTag": "FLEET"}})
    c = await r.start("TAG1", parent="FLEET")
    await r.swipe("TAG3")
    await r.swipe("TAG4")  # same group but not Accepted
    assert c.tx is not None and r.queue.all("StopTransaction") == []
    await r.swipe("TAG2")
    assert c.tx is None
    sp = r.queue.last("StopTransaction")
    assert (sp["reason"], sp["idTag"]) == ("Local", "TAG2")


async def test_group_from_the_start_transaction_answer():
    r = Rig(answers={"TAG2": {"status": "Accepted", "parentIdTag": "FLEET"}})
    c = await r.start("TAG1")
    assert c.tx.parent is None
    r.sessions.on_start_answer(c, {"status": "Accepted", "parentIdTag": "FLEET"})
    assert c.tx.parent == "FLEET"
    assert transaction.load(r.dir, 1).parent == "FLEET"  # survives a power cut
    await r.swipe("TAG2")
    assert c.tx is None and r.queue.last("StopTransaction")["idTag"] == "TAG2"


# --- StartTransaction.conf not Accepted ---------------------------------------------

async def test_invalid_start_answer_deauthorizes_and_keeps_the_cable():
    r = Rig(answers={"OTHER": {"status": "Accepted"}})
    c = await r.start("TAG1")
    r.sessions.on_start_answer(c, {"status": "Invalid"})
    sp = r.queue.last("StopTransaction")
    assert (sp["reason"], sp["idTag"]) == ("DeAuthorized", "TAG1")
    assert c.tx is None and not r.hw[1].relay.closed
    await settle()
    assert r.hw[1].lock.locked  # until the owner presents the card (§3.5.4)
    r.ev("A")
    assert c.status == "Available" and r.hw[1].lock.locked
    await r.swipe("OTHER")  # another card cannot free it nor start there
    assert r.hw[1].lock.locked and c.tx is None
    await r.swipe("TAG1")
    assert not r.hw[1].lock.locked and c.locked_for is None
    _stops_complete(r)


async def test_invalid_start_answer_suspends_when_not_stopping():
    r = Rig(keys={"StopTransactionOnInvalidId": False})
    c = await r.start("TAG1")
    r.sessions.on_start_answer(c, {"status": "Blocked"})
    assert c.tx is not None and r.queue.all("StopTransaction") == []
    assert c.status == "SuspendedEVSE"
    assert not r.hw[1].relay.closed and r.hw[1].pilot.offered == 0
    assert transaction.load(r.dir, 1).invalid  # stays suspended after a reboot
    await r.swipe("TAG1")  # the owner may still end it
    assert r.queue.last("StopTransaction")["reason"] == "Local"


# --- EV side disconnect and the lock ---------------------------------------------

async def test_ev_side_disconnect_stops_and_unlocks():
    r = Rig()
    c = await r.start("TAG1")
    r.clear()
    r.ev("A")
    assert c.tx is None
    sp = r.queue.last("StopTransaction")
    assert (sp["reason"], sp["idTag"]) == ("EVDisconnected", "TAG1")
    fin = [p for p in r.reports if p["status"] == "Finishing"]
    assert fin and fin[0]["info"] == "EV side disconnected" and fin[0]["errorCode"] == "NoError"
    assert r.statuses() == ["Finishing", "Available"]
    await settle()
    assert not r.hw[1].lock.locked  # UnlockConnectorOnEVSideDisconnect true
    _stops_complete(r)


async def test_ev_side_disconnect_keeps_the_lock_until_the_card():
    r = Rig(keys={"UnlockConnectorOnEVSideDisconnect": False},
            answers={"TAG2": {"status": "Accepted", "parentIdTag": "FLEET"},
                     "TAG9": {"status": "Accepted"}})
    c = await r.start("TAG1", parent="FLEET")
    r.ev("A")
    await settle()
    assert r.hw[1].lock.locked and c.locked_for is not None
    r.ev("B")  # someone else's EV: no session may start on a held cable
    await r.swipe("TAG9")
    assert c.tx is None
    r.ev("A")
    await r.swipe("TAG2")  # a card of the same group frees the cable
    assert not r.hw[1].lock.locked and c.locked_for is None


async def test_lock_cable_permanently_keeps_it_locked():
    r = Rig(keys={"LockCablePermanently": True})
    r.ev("B")
    await settle()
    assert r.hw[1].lock.locked  # locked as soon as plugged
    r.ev("A")
    c = await r.start("TAG1")
    await r.swipe("TAG1")
    await settle()
    assert c.tx is None and r.hw[1].lock.locked
    r.ev("A")
    await settle()
    assert r.hw[1].lock.locked and c.locked_for is None
    r.cfg.set("LockCablePermanently", False)
    r.sessions.on_config("LockCablePermanently")
    await settle()
    assert not r.hw[1].lock.locked


async def test_lock_failure_at_start_is_connector_lock_failure():
    r = Rig()
    r.hw[1].lock.works = False
    r.ev("B")
    r.auth.answers["TAG1"] = {"status": "Accepted"}
    await r.swipe("TAG1")
    c = r.con()
    assert (c.status, c.error_code) == ("Faulted", "ConnectorLockFailure")
    assert r.hw[1].pilot.offered == 0 and not r.hw[1].relay.closed


# --- FreeCharging -----------------------------------------------------------------

async def test_free_charging_starts_on_plug_without_authorize():
    r = Rig(keys={"FreeCharging": True, "FreeChargingIdTag": "FREE0001"})
    r.ev("B")
    assert r.auth.asked == []
    assert r.queue.last("StartTransaction")["idTag"] == "FREE0001"
    r.ev("C")
    assert r.con().status == "Charging"


async def test_free_charging_switched_on_starts_the_plugged_ev():
    r = Rig(keys={"ConnectionTimeOut": 5})
    r.ev("B")
    r.sessions.tick(_later(6000))  # timed out: Finishing, no plug-and-charge
    assert r.con().status == "Finishing"
    r.ev("A")
    r.ev("B")
    r.cfg.set("FreeCharging", True)
    r.sessions.on_config("FreeCharging")
    assert r.queue.last("StartTransaction")["idTag"] == "FFFFFFFF"
    r.sessions.tick(_later(60000))  # no ConnectionTimeOut under FreeCharging
    assert r.con().tx is not None


# --- other stops -------------------------------------------------------------------

async def test_emergency_stop_ends_everything_until_released():
    r = Rig(n=2)
    await r.start("TAG1", 1)
    await r.start("TAG2", 2)
    r.sessions.emergency_stop(True)
    stops = r.queue.all("StopTransaction")
    assert [p["reason"] for p in stops] == ["EmergencyStop", "EmergencyStop"]
    assert [p["idTag"] for p in stops] == ["TAG1", "TAG2"]
    for i in (1, 2):
        c = r.con(i)
        assert (c.status, c.error_code, c.info) == ("Faulted", "OtherError", "emergency stop")
        assert not r.hw[i].relay.closed and r.hw[i].pilot.offered == 0
    r.auth.answers["TAG3"] = {"status": "Accepted"}
    await r.swipe("TAG3")
    assert r.con(1).tx is None and r.con(2).tx is None
    r.sessions.emergency_stop(False)
    assert r.con(1).status == "Finishing"  # the cables are still in
    r.ev("A", 1)
    assert r.con(1).status == "Available"
    _stops_complete(r)


async def test_stop_all_and_unlock_command_carry_reason_and_id_tag():
    r = Rig(n=2)
    await r.start("TAG1", 1)
    await r.start("TAG2", 2)
    assert await r.sessions.unlock(r.con(1))
    assert r.queue.last("StopTransaction")["reason"] == "UnlockCommand"
    assert not r.hw[1].lock.locked
    assert r.sessions.stop_all("HardReset") == 1
    assert r.queue.last("StopTransaction")["reason"] == "HardReset"
    assert r.sessions.stop_all("SoftReset") == 0
    _stops_complete(r)


async def test_queue_full_refuses_a_new_transaction():
    r = Rig(answers={"TAG1": {"status": "Accepted"}})
    r.queue.room = False
    r.ev("B")
    await r.swipe("TAG1")
    c = r.con()
    assert c.tx is None and r.queue.pushed == []
    assert r.refused.calls == ["faulted"]
    assert r.hw[1].pilot.offered == 0 and transaction.load(r.dir, 1) is None


# --- PowerLoss ------------------------------------------------------------------

async def test_power_loss_recovery_from_the_transaction_file():
    r = Rig()
    r.meter.wh[1] = 1000
    await r.start("TAG1")
    ph = r.con().tx.id
    # The power goes; the charger boots over the same flash and queue.
    r2 = Rig(d=r.dir, queue=r.queue)
    r2.meter.wh[1] = 1500
    r2.sessions.recover()
    sp = r2.queue.last("StopTransaction")
    assert (sp["transactionId"], sp["reason"], sp["idTag"], sp["meterStop"]) == \
        (ph, "PowerLoss", "TAG1", 1500)
    assert r2.con().tx is None and transaction.load(r2.dir, 1) is None
    assert r2.con().status == "Available" and r2.reports == []  # the boot reports
    # A third boot finds nothing more to stop.
    r3 = Rig(d=r.dir, queue=r2.queue)
    n = len(r3.queue.pushed)
    r3.sessions.recover()
    assert len(r3.queue.pushed) == n


async def test_power_loss_meter_stop_never_below_meter_start():
    r = Rig()
    r.meter.wh[1] = 9000
    await r.start("TAG1")
    r2 = Rig(d=r.dir, queue=r.queue)  # the meter came back reading less
    r2.sessions.recover()
    assert r2.queue.last("StopTransaction")["meterStop"] == 9000


async def test_power_loss_after_the_stop_was_queued_stops_nothing_twice():
    r = Rig()
    await r.start("TAG1")
    ph = r.con().tx.id
    r2 = Rig(d=r.dir)
    # The StopTransaction was queued (persistent), then power went before the
    # transaction file was removed.
    r2.queue.push("StopTransaction", {"transactionId": ph, "meterStop": 0, "reason": "Local",
                                      "timestamp": "2026-01-01T00:00:00Z", "idTag": "TAG1"})
    r2.sessions.recover()
    assert r2.queue.actions() == ["StopTransaction"]
    assert not fsutil.exists(r.dir + "/tx1")


async def test_power_cut_before_the_start_was_queued_stops_nothing():
    # Found by tools/powercut: the power went after the transaction was
    # written down and before its StartTransaction was queued. It never
    # began for the central system (nor for the relay): dropped at boot,
    # no StopTransaction (which would carry transactionId -1).
    r = Rig()
    await r.start("TAG1")
    assert r.con().tx.id <= -2
    r2 = Rig(d=r.dir)  # the queue in flash did not get the Start
    r2.sessions.recover()
    assert r2.queue.pushed == [] and transaction.load(r2.dir, 1) is None
    # answered before the cut: the mapping is known, the Stop goes
    r = Rig()
    await r.start("TAG1")
    ph = r.con().tx.id
    q = type(r.queue)()
    q.map[ph] = 77
    r2 = Rig(d=r.dir, queue=q)
    r2.sessions.recover()
    assert r2.queue.actions() == ["StopTransaction"]


async def test_recovery_keeps_a_scheduled_inoperative():
    r = Rig()
    c = await r.start("TAG1")
    assert r.availability.change(1, False) == "Scheduled"
    r2 = Rig(d=r.dir, queue=r.queue)
    r2.sessions.recover()
    assert r2.queue.last("StopTransaction")["reason"] == "PowerLoss"
    assert r2.con().status == "Unavailable" and c.operative  # the old object untouched


# --- remote start / stop --------------------------------------------------------

async def test_remote_start_authorizes_then_waits_for_the_plug():
    r = Rig(answers={"R1": {"status": "Accepted", "parentIdTag": "FLEET"}})
    assert r.sessions.remote_start("R1", 1) == "Accepted"
    await settle()
    assert r.auth.asked == ["R1"]  # AuthorizeRemoteTxRequests true
    c = r.con()
    assert c.status == "Preparing" and c.tx is None
    r.ev("B")
    assert r.queue.last("StartTransaction")["idTag"] == "R1"
    assert c.tx.parent == "FLEET"


async def test_remote_start_without_authorize_starts_a_plugged_ev_at_once():
    r = Rig(keys={"AuthorizeRemoteTxRequests": False})
    r.ev("B")
    assert r.sessions.remote_start("R1", None) == "Accepted"
    await settle()
    assert r.auth.asked == []
    assert r.queue.last("StartTransaction") == {
        "connectorId": 1, "idTag": "R1", "meterStart": 0, "timestamp": "2026-01-01T00:00:00Z"}


async def test_remote_start_refused_by_authorize_starts_nothing():
    r = Rig(answers={"R1": {"status": "Blocked"}})
    assert r.sessions.remote_start("R1", 1) == "Accepted"  # answered before Authorize
    await settle()
    r.ev("B")
    assert r.con().tx is None and r.queue.pushed == []


async def test_remote_start_times_out_after_authorisation_timeout():
    r = Rig(keys={"AuthorisationTimeout": 60, "AuthorizeRemoteTxRequests": False})
    r.sessions.remote_start("R1", 1)
    await settle()
    c = r.con()
    assert c.status == "Preparing"
    r.sessions.tick(_later(59000))
    assert c.pending is not None
    r.sessions.tick(_later(60100))
    assert c.status == "Available" and c.pending is None


async def test_remote_start_rejections_and_connector_choice():
    r = Rig(n=2, keys={"AuthorizeRemoteTxRequests": False})
    await r.start("TAG1", 1)
    assert r.sessions.remote_start("R1", 1) == "Rejected"  # busy
    r.ev("B", 2)
    assert r.sessions.remote_start("R1", None) == "Accepted"  # picks the free, plugged one
    await settle()
    assert r.con(2).tx.id_tag == "R1"
    r2 = Rig(n=2, keys={"AuthorizeRemoteTxRequests": False})
    r2.con(1).raise_fault("GroundFailure")
    assert r2.sessions.remote_start("R1", 1) == "Rejected"
    r2.availability.change(2, False)
    assert r2.sessions.remote_start("R1", 2) == "Rejected"
    assert r2.sessions.remote_start("R1", None) == "Rejected"
    r3 = Rig(keys={"AuthorizeRemoteTxRequests": False})
    r3.reservations.reserve(r3.con(), 4, "OWNER", None, 2000000000)
    assert r3.sessions.remote_start("R1", 1) == "Rejected"  # reserved for another
    assert r3.sessions.remote_start("OWNER", 1) == "Accepted"
    r4 = Rig(keys={"ConnectionTimeOut": 1})
    r4.ev("B")
    r4.sessions.tick(_later(2000))
    assert r4.con().status == "Finishing"
    assert r4.sessions.remote_start("R1", 1) == "Rejected"


async def test_remote_stop_finds_the_transaction_by_its_ids():
    r = Rig()
    c = await r.start("TAG1")
    ph = c.tx.id
    assert r.sessions.find_tx(ph) is c
    r.queue.map[ph] = 42  # StartTransaction answered while queued
    Assigner(r.cons, r.dir)(ph, 42)  # the queue's on_transaction_id
    assert c.tx.id == 42 and transaction.load(r.dir, 1).id == 42
    assert r.sessions.find_tx(42) is c and r.sessions.find_tx(43) is None
    assert r.sessions.stop(c, "Remote")
    sp = r.queue.last("StopTransaction")
    assert (sp["transactionId"], sp["reason"], sp["idTag"]) == (42, "Remote", "TAG1")
    assert not r.sessions.stop(c, "Remote")  # nothing left to stop


# --- reservations ------------------------------------------------------------------

async def test_reserved_connector_takes_only_its_id_tag_or_group():
    r = Rig(answers={"STRANGER": {"status": "Accepted"},
                     "COLLEAGUE": {"status": "Accepted", "parentIdTag": "FLEET"}})
    c = r.con()
    c.reservation = Reservation(7, "OWNER", "FLEET", 2000000000)
    c.update()
    assert c.status == "Reserved"
    r.ev("B")
    await r.swipe("STRANGER")
    assert c.tx is None and r.queue.pushed == []
    await r.swipe("COLLEAGUE")
    st = r.queue.last("StartTransaction")
    assert (st["idTag"], st["reservationId"]) == ("COLLEAGUE", 7)
    assert c.reservation is None


# --- offline authorization with the real Authorization --------------------------

async def test_offline_unknown_id_charges_then_deauthorized_by_the_answer():
    from mpocpp.model.authorization import Authorization
    from mpocpp.protocol.rpc import Offline

    async def call_now(action, payload):
        raise Offline

    for allow in (False, True):
        r = Rig(keys={"AllowOfflineTxForUnknownId": allow},
                make_auth=lambda cfg: Authorization(cfg, Registration(online=False), call_now,
                                                    None))
        r.ev("B")
        await r.swipe("UNKNOWN")
        c = r.con()
        if not allow:
            assert c.tx is None and r.refused.calls == ["faulted"]
            continue
        assert c.tx is not None and r.queue.last("StartTransaction")["idTag"] == "UNKNOWN"
        # Online again: the central system does not know the card.
        r.sessions.on_start_answer(c, {"status": "Invalid"})
        assert r.queue.last("StopTransaction")["reason"] == "DeAuthorized"


# --- the session's code: loaded while one is under way ----------------------------

_FLOW = "mpocpp.model.sessionflow"
_AUTH_MODULES = ("mpocpp.model.authrules", "mpocpp.model.authstore")


def _flow_loaded():
    import sys
    return _FLOW in sys.modules


def _auth_loaded():
    # Which of the authorization rules and store are in the heap.
    import sys
    return [m for m in _AUTH_MODULES if m in sys.modules]


async def test_session_code_loaded_for_each_event_and_released_when_unused():
    import sys
    sys.modules.pop(_FLOW, None)  # (loaded by an earlier test's Rig)
    r = Rig(answers={"TAG1": {"status": "Accepted"}})
    r.sessions.recover()  # nothing on flash, no EV: nothing to load
    r.sessions.tick(time.ticks_ms())
    assert not _flow_loaded()
    c = await r.start()
    assert _flow_loaded()
    now = time.ticks_ms()
    r.sessions.tick(now)  # (the tick that sees the start's use)
    r.sessions.tick(time.ticks_add(now, 29000))
    assert _flow_loaded()
    r.sessions.tick(time.ticks_add(now, 30000))  # charging, unused for 30 s: let go
    assert not _flow_loaded() and c.tx is not None and r.hooks.idles == 0
    await r.swipe("TAG1")  # the stop loads it again
    r.ev("A")
    assert c.tx is None and c.status == "Available"
    now = time.ticks_ms()
    r.sessions.tick(now)  # every connector idle from now on
    r.sessions.tick(time.ticks_add(now, 29000))
    assert _flow_loaded()
    r.sessions.tick(time.ticks_add(now, 30000))
    assert not _flow_loaded() and r.hooks.idles == 1
    # The next EV loads it again; the stop reason and the swipe rules hold.
    c = await r.start()
    assert _flow_loaded()
    assert r.queue.actions() == ["StartTransaction", "StopTransaction", "StartTransaction"]
    assert r.sessions.stop_all("HardReset") == 1
    _stops_complete(r)


async def test_session_code_kept_while_a_card_is_being_authorized():
    import sys
    sys.modules.pop(_FLOW, None)
    import asyncio
    r = Rig(answers={"TAG1": {"status": "Accepted"}})
    r.auth.gate = asyncio.Event()  # Authorize unanswered
    r.sessions.swipe("TAG1")
    await settle()
    now = time.ticks_ms()
    r.sessions.tick(now)
    r.sessions.tick(time.ticks_add(now, 60000))
    assert _flow_loaded()
    r.auth.gate.set()
    await settle()
    assert r.con().pending is not None  # authorized, waiting for the plug


async def test_boot_with_an_ev_plugged_in_or_a_transaction_on_flash_loads_it():
    import sys
    r = Rig(answers={"TAG1": {"status": "Accepted"}})
    c = await r.start()
    sys.modules.pop(_FLOW, None)
    r2 = Rig(d=r.dir, queue=r.queue)  # the power went: the transaction is on flash
    r2.hw[1].pilot.state = "A"
    r2.sessions.recover()
    assert _flow_loaded()
    assert r2.queue.last("StopTransaction")["reason"] == "PowerLoss"
    assert c.tx is not None  # (the old Rig's object, untouched)
    sys.modules.pop(_FLOW, None)
    r3 = Rig()
    r3.hw[1].pilot.state = "B"  # an EV plugged in at boot
    r3.sessions.recover()
    assert _flow_loaded() and r3.con().status == "Preparing"


async def test_authorization_store_loaded_for_each_use_only():
    # The local list and cache code (authrules.py, authstore.py) leaves the
    # heap after each use, not with the session code: what it knows is in
    # flash and comes back with the next card.
    from mpocpp.model.authorization import Authorization
    r = Rig(keys={"LocalAuthorizeOffline": True, "AuthorizationCacheEnabled": True},
            make_auth=lambda cfg: Authorization(cfg, Registration(online=False), None, None))
    r.auth.remember("CACHED", {"status": "Accepted"})
    assert not _auth_loaded()
    r.ev("B")
    await r.swipe("CACHED")  # offline: the cache, mounted again, decides
    assert r.con().tx is not None
    assert r.queue.last("StartTransaction")["idTag"] == "CACHED"
    assert not _auth_loaded()


class _SlowCsms:
    # Answers Authorize once told to: the card waits for the central system.
    def __init__(self):
        self.answer = asyncio.Event()

    async def call(self, action, payload, timeout_s, on_result=None):
        await self.answer.wait()
        return {"idTagInfo": {"status": "Accepted"}}


async def test_authorization_store_kept_while_an_authorize_waits():
    # Another use ending meanwhile (an answer's idTagInfo cached) does not
    # take the store from under the card still waiting for its Authorize.
    from mpocpp.model.authorization import Authorization
    csms = _SlowCsms()
    keys = {"AuthorizationCacheEnabled": True, "LocalAuthorizeOffline": True}
    cfg = config(keys=keys)
    auth = Authorization(cfg, Registration(online=True), csms, None)
    t = asyncio.create_task(auth.authorize("CARD1"))
    await asyncio.sleep_ms(10)
    assert _auth_loaded() == list(_AUTH_MODULES)
    auth.remember("OTHER", {"status": "Accepted"})
    assert _auth_loaded() == list(_AUTH_MODULES)
    csms.answer.set()
    info = await t
    assert info["status"] == "Accepted"
    assert not _auth_loaded()
    auth.remember("CARD2", {"status": "Blocked"})
    auth2 = Authorization(config(cfg.dir, keys), Registration(online=False), None, None)
    assert (await auth2.authorize("OTHER"))["status"] == "Accepted"  # cached, in flash


async def test_an_event_without_heap_for_the_session_code_is_not_lost():
    # The session code let go while charging; the EV leaves when no block
    # is left to load it again: the relay opens at once all the same, and
    # the next tick that can load it ends the transaction (EVDisconnected).
    import sys
    from mpocpp.util import modules
    sys.modules.pop(_FLOW, None)
    r = Rig(answers={"TAG1": {"status": "Accepted"}})
    c = await r.start()
    now = time.ticks_ms()
    r.sessions.tick(now)
    r.sessions.tick(time.ticks_add(now, 30000))
    assert not _flow_loaded() and r.hw[1].relay.closed
    load = modules.load

    def no_heap(name):
        if name == _FLOW:
            raise MemoryError("memory allocation failed")
        return load(name)

    modules.load = no_heap
    try:
        r.hw[1].pilot.state = "A"  # the EV leaves
        try:
            r.sessions.tick(time.ticks_add(now, 31000))
        except MemoryError:
            pass
        else:
            raise AssertionError("no MemoryError")
    finally:
        modules.load = load
    assert not r.hw[1].relay.closed and c.tx is not None
    r.sessions.tick(time.ticks_add(now, 32000))  # the heap is back
    assert c.tx is None and r.queue.last("StopTransaction")["reason"] == "EVDisconnected"
    assert not r.hw[1].relay.closed
