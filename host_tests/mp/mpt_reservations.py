# Reservations (model/reservations.py) and ReserveNow / CancelReservation
# (operations/reservation.py) on fake hardware, inside MicroPython.
import time

from fakes import T0, Rig, clock, settle

from mpocpp.model.authorization import same_tag
from mpocpp.operations.reservation import Reservation as Handlers


def _rig(n=2, keys=None):
    r = Rig(n=n, keys=keys)
    h = Handlers(r.cfg, r.cons, r.reservations)
    return r, h


def _reserve(h, cid, rid=1, tag="R1", parent=None, expiry="2026-01-01T01:00:00Z"):
    req = {"connectorId": cid, "reservationId": rid, "idTag": tag, "expiryDate": expiry}
    if parent is not None:
        req["parentIdTag"] = parent
    return h.ReserveNow(req)["status"]


def test_reserve_match_and_status():
    r, h = _rig()
    assert _reserve(h, 1, parent="FLEET") == "Accepted"
    c = r.con(1)
    assert c.status == "Reserved" and c.reservation.id == 1
    res = r.reservations
    assert res.matches(c, "r1", None)  # idTags are case-insensitive
    assert res.matches(c, "OTHER", "fleet")  # the group
    assert not res.matches(c, "OTHER", None)
    assert not res.matches(c, "OTHER", "ELSE")
    assert res.matches(r.con(2), "ANY", None)  # not reserved
    assert same_tag("ab", "AB") and not same_tag(None, "AB")


def test_same_id_replaces_cancel_and_unknown():
    r, h = _rig()
    assert _reserve(h, 1, rid=7) == "Accepted"
    assert _reserve(h, 2, rid=7, tag="R2") == "Accepted"  # moved
    assert r.con(1).reservation is None and r.con(1).status == "Available"
    assert r.con(2).reservation.id_tag == "R2"
    assert h.CancelReservation({"reservationId": 99})["status"] == "Rejected"
    assert h.CancelReservation({"reservationId": 7})["status"] == "Accepted"
    assert r.con(2).reservation is None and r.con(2).status == "Available"


def test_answers_for_busy_connectors():
    r, h = _rig()
    assert _reserve(h, 0) == "Rejected"  # connector 0: ReserveConnectorZeroSupported false
    assert _reserve(h, 3) == "Rejected"  # no such connector
    assert _reserve(h, 1, expiry="2025-12-31T23:00:00Z") == "Rejected"  # already past
    assert _reserve(h, 1, expiry="garbage") == "Rejected"
    r.con(1).raise_fault("GroundFailure")
    assert _reserve(h, 1) == "Faulted"
    r.con(1).clear_fault()
    r.availability.change(1, False)
    assert _reserve(h, 1) == "Unavailable"
    r.availability.change(1, True)
    r.ev("B", 1)  # plugged
    assert _reserve(h, 1) == "Occupied"
    assert _reserve(h, 2, rid=2) == "Accepted"
    assert _reserve(h, 2, rid=3) == "Occupied"  # reserved by another id


def test_free_charging_reserves_nothing():
    r, h = _rig(keys={"FreeCharging": True})
    assert _reserve(h, 1) == "Rejected"


def test_expiry_through_tick():
    r, h = _rig()
    assert _reserve(h, 1, expiry="2026-01-01T00:10:00Z") == "Accepted"
    assert not r.reservations.tick(T0 + 599)
    assert r.con(1).reservation is not None
    assert r.reservations.tick(T0 + 600)
    assert r.con(1).reservation is None and r.con(1).status == "Available"


async def test_start_takes_the_reservation_and_reports_its_id():
    r, h = _rig()
    assert _reserve(h, 1, rid=5, tag="R1") == "Accepted"
    r.auth.answers["OTHER"] = {"status": "Accepted"}
    r.ev("B", 1)
    await r.swipe("OTHER")  # not the reservation's card: nothing starts on 1
    assert r.con(1).tx is None
    r.ev("A", 1)
    r.auth.answers["R1"] = {"status": "Accepted"}
    c = await r.start("R1", cid=1)
    assert c.reservation is None
    assert r.queue.last("StartTransaction")["reservationId"] == 5
    await settle()
    assert clock.now() == T0


async def test_reserved_stays_reserved_with_a_cable_and_a_stranger():
    r, h = _rig(n=1, keys={"ConnectionTimeOut": 1})
    assert _reserve(h, 1, rid=5, tag="R1") == "Accepted"
    c = r.con(1)
    r.ev("B", 1)  # a cable plugged in
    assert c.status == "Reserved"
    r.auth.answers["OTHER"] = {"status": "Accepted"}
    await r.swipe("OTHER")
    assert c.status == "Reserved" and c.tx is None
    r.sessions.tick(time.ticks_add(time.ticks_ms(), 5000))  # ConnectionTimeOut ran out
    assert c.status == "Reserved"
    assert "Preparing" not in r.statuses(1) and "Finishing" not in r.statuses(1)
    r.auth.answers["R1"] = {"status": "Accepted"}
    await r.swipe("R1")  # the reservation's identity: Preparing, the transaction
    assert c.tx is not None and r.queue.last("StartTransaction")["reservationId"] == 5
    assert r.statuses(1)[:2] == ["Reserved", "Preparing"]


async def test_reserved_to_preparing_for_the_owner_before_the_plug():
    r, h = _rig(n=1)
    assert _reserve(h, 1, rid=6, tag="R1", parent="FLEET") == "Accepted"
    r.auth.answers["MATE"] = {"status": "Accepted", "parentIdTag": "FLEET"}
    await r.swipe("MATE")  # the group: waits for the plug
    c = r.con(1)
    assert c.status == "Preparing" and c.pending is not None
    r.ev("B", 1)
    assert c.tx is not None and r.queue.last("StartTransaction")["reservationId"] == 6


async def test_remote_start_for_the_group_resolves_the_parent():
    # §5.13: another idTag on a connector reserved with a parentIdTag is not
    # refused up front; its parent comes from the list / cache, else Authorize.
    r, h = _rig(n=1, keys={"AuthorizeRemoteTxRequests": False})
    assert _reserve(h, 1, rid=9, tag="R1", parent="FLEET") == "Accepted"
    c = r.con(1)
    r.auth.parents["CACHED"] = "FLEET"
    assert r.sessions.remote_start("CACHED", 1) == "Accepted"
    await settle()
    assert r.auth.asked == []  # the cache knew the parent
    assert c.pending is not None and c.status == "Preparing"
    r.ev("B", 1)
    assert c.tx is not None and r.queue.last("StartTransaction")["reservationId"] == 9


async def test_remote_start_for_the_group_asks_authorize():
    r, h = _rig(n=1, keys={"AuthorizeRemoteTxRequests": False})
    assert _reserve(h, 1, rid=9, tag="R1", parent="FLEET") == "Accepted"
    c = r.con(1)
    r.ev("B", 1)  # plugged: still Reserved
    r.auth.answers["MATE"] = {"status": "Accepted", "parentIdTag": "fleet"}
    r.auth.answers["OUTSIDER"] = {"status": "Accepted", "parentIdTag": "OTHER"}
    assert r.sessions.remote_start("OUTSIDER", 1) == "Accepted"
    await settle()
    assert r.auth.asked == ["OUTSIDER"] and c.tx is None and c.status == "Reserved"
    assert r.sessions.remote_start("MATE", 1) == "Accepted"
    await settle()
    assert c.tx is not None and r.queue.last("StartTransaction")["reservationId"] == 9


async def test_remote_start_refused_up_front_without_a_group():
    r, h = _rig(n=2)
    assert _reserve(h, 1, rid=9, tag="R1") == "Accepted"  # no parentIdTag
    assert r.sessions.remote_start("OTHER", 1) == "Rejected"
    r.auth.answers["OTHER"] = {"status": "Accepted"}
    assert r.sessions.remote_start("OTHER", None) == "Accepted"  # connector 2
    await settle()
    assert r.con(2).pending is not None and r.con(1).status == "Reserved"


# --- connector 0 (ReserveConnectorZeroSupported) ---------------------------------

_ZERO = {"ReserveConnectorZeroSupported": True}


async def test_connector_zero_keeps_one_connector_for_its_idtag():
    r, h = _rig(n=2, keys=_ZERO)
    assert _reserve(h, 0, rid=30, tag="R1") == "Accepted"
    res = r.reservations
    assert r.cons[0].reservation.id == 30 and r.cons[0].status == "Available"
    assert [r.con(i).status for i in (1, 2)] == ["Available", "Available"]
    assert res.matches(r.con(1), "OTHER", None)  # connector 2 stays free
    r.auth.answers["OTHER"] = {"status": "Accepted"}
    r.auth.answers["THIRD"] = {"status": "Accepted"}
    c1 = await r.start("OTHER", cid=1)  # the others keep working
    assert "reservationId" not in r.queue.last("StartTransaction")
    assert not res.matches(r.con(2), "THIRD", None)
    assert _reserve(h, 2, rid=31, tag="X") == "Occupied"  # would take the last free one
    assert r.sessions.remote_start("THIRD", 2) == "Rejected"
    r.ev("B", 2)
    await r.swipe("THIRD")  # the last connector is kept for R1
    assert r.con(2).tx is None
    r.auth.answers["R1"] = {"status": "Accepted"}
    await r.swipe("R1")
    assert r.con(2).tx is not None
    assert r.queue.last("StartTransaction")["reservationId"] == 30
    assert r.cons[0].reservation is None and c1.tx is not None


async def test_connector_zero_group_cancel_expiry_and_answers():
    r, h = _rig(n=1, keys=_ZERO)
    assert _reserve(h, 0, rid=40, tag="R1", parent="FLEET",
                    expiry="2026-01-01T00:10:00Z") == "Accepted"
    assert _reserve(h, 0, rid=41) == "Occupied"  # the charge point is reserved already
    assert _reserve(h, 1, rid=42) == "Occupied"  # its only connector is kept
    assert _reserve(h, 0, rid=40, tag="R2") == "Accepted"  # same id: replaced
    assert r.cons[0].reservation.id_tag == "R2"
    assert h.CancelReservation({"reservationId": 40})["status"] == "Accepted"
    assert r.cons[0].reservation is None
    assert _reserve(h, 0, rid=43, expiry="2026-01-01T00:10:00Z") == "Accepted"
    assert r.reservations.tick(T0 + 600) and r.cons[0].reservation is None
    r.con(1).raise_fault("GroundFailure")
    assert _reserve(h, 0, rid=44) == "Faulted"
    r.con(1).clear_fault()
    r.availability.change(1, False)
    assert _reserve(h, 0, rid=45) == "Unavailable"
    r.availability.change(0, False)
    assert _reserve(h, 0, rid=46) == "Unavailable"
    r.availability.change(0, True)
    r.ev("B", 1)
    await r.swipe("NOBODY")
    r.auth.answers["T1"] = {"status": "Accepted"}
    await r.swipe("T1")
    assert r.con(1).tx is not None
    assert _reserve(h, 0, rid=47) == "Occupied"  # no connector free


async def test_connector_zero_for_the_group_by_remote_start():
    r, h = _rig(n=1, keys=_ZERO)
    assert _reserve(h, 0, rid=50, tag="R1", parent="FLEET") == "Accepted"
    r.auth.answers["MATE"] = {"status": "Accepted", "parentIdTag": "FLEET"}
    assert r.sessions.remote_start("MATE", 1) == "Accepted"
    await settle()
    r.ev("B", 1)
    assert r.con(1).tx is not None
    assert r.queue.last("StartTransaction")["reservationId"] == 50


async def test_connection_timeout_counts_from_the_reservation_end():
    r, h = _rig(n=1, keys={"ConnectionTimeOut": 10})
    assert _reserve(h, 1, rid=5, tag="R1", expiry="2026-01-01T00:10:00Z") == "Accepted"
    c = r.con(1)
    r.ev("B", 1)
    now = time.ticks_ms()
    r.sessions.tick(time.ticks_add(now, 60000))  # plugged a minute while reserved
    assert c.status == "Reserved"
    assert r.reservations.tick(T0 + 600)  # expired: Preparing, the timeout starts now
    assert c.status == "Preparing"
    r.sessions.tick(time.ticks_add(now, 65000))
    assert c.status == "Preparing"
    r.sessions.tick(time.ticks_add(now, 71000))
    assert c.status == "Finishing"
    assert r.statuses(1) == ["Reserved", "Preparing", "Finishing"]


def test_supervisor_expires_reservations_with_the_session_code_loaded():
    # The session code (sessionflow.py, with the reservations' matching and
    # expiry) stays loaded while a connector is reserved: the supervisor's
    # tick ends the reservation at its expiry, then the code goes once
    # unused for idleReleaseMs.
    import sys
    flow = "mpocpp.model.sessionflow"
    sys.modules.pop(flow, None)
    r, h = _rig()
    assert _reserve(h, 1, expiry="2026-01-01T00:10:00Z") == "Accepted"
    now = time.ticks_ms()
    clock.set_time(T0 + 599)
    r.sessions.tick(time.ticks_add(now, 60000))
    assert flow in sys.modules and r.con(1).status == "Reserved"
    clock.set_time(T0 + 600)
    r.sessions.tick(time.ticks_add(now, 61000))
    assert r.con(1).reservation is None and r.con(1).status == "Available"
    r.sessions.tick(time.ticks_add(now, 62000))  # unused since the last tick
    r.sessions.tick(time.ticks_add(now, 90000))
    assert flow in sys.modules
    r.sessions.tick(time.ticks_add(now, 91000))
    assert flow not in sys.modules
    assert "mpocpp.model.reservations" not in sys.modules
