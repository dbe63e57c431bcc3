"""Reservation profile (scenarios 54-55): ReserveNow, CancelReservation,
expiry, and who may charge on a reserved connector."""
import datetime
import time


def iso(seconds_from_now):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def reserve(csms, cid, tag, rid=1, secs=60, parent=None):
    p = {"connectorId": cid, "expiryDate": iso(secs), "idTag": tag, "reservationId": rid}
    if parent:
        p["parentIdTag"] = parent
    return csms.call("CP1", "ReserveNow", p)["status"]


def status_sn(csms, status, mark, cid=1, timeout=5):
    return csms.wait_for(
        "StatusNotification",
        after=mark,
        timeout=timeout,
        pred=lambda m: m.payload["connectorId"] == cid and m.payload["status"] == status,
    )


def test_reserve_other_tag_refused_owner_starts(csms, charger):
    mark = csms.mark()
    assert reserve(csms, 1, "OWNER", rid=7) == "Accepted"
    status_sn(csms, "Reserved", mark)
    charger.ok("plug_in", connector=1)
    m2 = csms.mark()
    charger.ok("swipe", idTag="STRANGER")
    time.sleep(1.5)
    assert csms.calls("StartTransaction", after=m2) == []
    charger.ok("swipe", idTag="OWNER")
    st = csms.wait_for("StartTransaction", after=m2, timeout=5)
    assert st.payload["reservationId"] == 7


def test_parent_of_reservation_may_start(csms, charger):
    csms.authorize = lambda tag: {"status": "Accepted", "parentIdTag": "FLEET"}
    assert reserve(csms, 1, "OWNER", rid=8, parent="FLEET") == "Accepted"
    charger.ok("plug_in", connector=1)
    mark = csms.mark()
    charger.ok("swipe", idTag="COLLEAGUE")
    st = csms.wait_for("StartTransaction", after=mark, timeout=5)
    assert st.payload["reservationId"] == 8


def test_expiry_and_cancel(csms, charger):
    mark = csms.mark()
    assert reserve(csms, 1, "OWNER", rid=3, secs=2) == "Accepted"
    status_sn(csms, "Reserved", mark)
    status_sn(csms, "Available", mark, timeout=5)
    assert reserve(csms, 1, "OWNER", rid=4) == "Accepted"
    assert csms.call("CP1", "CancelReservation", {"reservationId": 4})["status"] == "Accepted"
    assert csms.call("CP1", "CancelReservation", {"reservationId": 99})["status"] == "Rejected"
    assert charger.connector(1)["status"] == "Available"


def test_reserve_refusals(csms, charger):
    assert reserve(csms, 0, "OWNER") == "Rejected"  # connector 0 not supported
    charger.ok("raise_error", connector=1, code="GroundFailure")
    charger.wait_state(lambda s: s["connectors"][0]["status"] == "Faulted")
    assert reserve(csms, 1, "OWNER") == "Faulted"
    charger.ok("clear_error", connector=1)
    assert (
        csms.call("CP1", "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})["status"]
        == "Accepted"
    )
    assert reserve(csms, 1, "OWNER") == "Unavailable"
    csms.call("CP1", "ChangeAvailability", {"connectorId": 1, "type": "Operative"})
    charger.ok("plug_in", connector=1)
    charger.ok("swipe", idTag="T1")
    csms.wait_for("StartTransaction", timeout=5)
    assert reserve(csms, 1, "OWNER") == "Occupied"


def test_free_charging_rejects(csms, charger):
    assert (
        csms.call("CP1", "ChangeConfiguration", {"key": "FreeCharging", "value": "true"})["status"]
        == "Accepted"
    )
    assert reserve(csms, 1, "OWNER") == "Rejected"
