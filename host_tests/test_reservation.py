"""Reservation profile (scenarios 54-55): ReserveNow, CancelReservation,
expiry, and who may charge on a reserved connector."""
import datetime
import time

from test_sessions import sns, transitions_checked  # noqa: F401 (autouse)


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


def test_reserved_stays_reserved_until_its_identity(csms, charger_factory):
    # A cable, a stranger's card and ConnectionTimeOut leave the connector
    # Reserved; the reservation's own card moves it to Preparing.
    ch = charger_factory(config={"keys": {"ConnectionTimeOut": 1}})
    csms.wait_for("StatusNotification", pred=lambda m: m.payload["connectorId"] == 1, timeout=15)
    mark = csms.mark()
    assert reserve(csms, 1, "OWNER", rid=11) == "Accepted"
    status_sn(csms, "Reserved", mark)
    ch.ok("plug_in", connector=1)
    ch.ok("swipe", idTag="STRANGER")
    csms.wait_for("Authorize", after=mark, pred=lambda m: m.payload["idTag"] == "STRANGER")
    time.sleep(2.0)  # ConnectionTimeOut (1 s) runs out with the cable in
    assert ch.connector(1)["status"] == "Reserved"
    assert csms.calls("StartTransaction", after=mark) == []
    assert sns(csms, 1, mark) == ["Reserved"]
    m2 = csms.mark()
    assert csms.call("CP1", "TriggerMessage", {"requestedMessage": "StatusNotification",
                                               "connectorId": 1})["status"] == "Accepted"
    status_sn(csms, "Reserved", m2)
    ch.ok("swipe", idTag="OWNER")
    st = csms.wait_for("StartTransaction", after=m2, timeout=5)
    assert st.payload["reservationId"] == 11
    status_sn(csms, "Charging", m2)
    assert sns(csms, 1, m2)[:3] == ["Reserved", "Preparing", "Charging"]


def test_reserved_one_of_two_the_other_works(csms, charger_factory):
    ch = charger_factory(connectors=2)
    csms.wait_for("StatusNotification", pred=lambda m: m.payload["connectorId"] == 2, timeout=15)
    mark = csms.mark()
    assert reserve(csms, 2, "OWNER", rid=12) == "Accepted"
    status_sn(csms, "Reserved", mark, cid=2)
    ch.ok("plug_in", connector=2)
    ch.ok("plug_in", connector=1)
    status_sn(csms, "Preparing", mark, cid=1)
    ch.ok("swipe", idTag="STRANGER")  # goes to the free connector 1
    st = csms.wait_for("StartTransaction", after=mark, timeout=5)
    assert st.payload["connectorId"] == 1 and "reservationId" not in st.payload
    assert ch.connector(2)["status"] == "Reserved"
    ch.ok("swipe", idTag="OWNER")
    st = csms.wait_for("StartTransaction", after=mark, timeout=5,
                       pred=lambda m: m.payload["idTag"] == "OWNER")
    assert st.payload["connectorId"] == 2 and st.payload["reservationId"] == 12


def _group_authorize(tag):
    return {"status": "Accepted", "parentIdTag": "FLEET" if tag != "OUTSIDER" else "OTHER"}


def test_remote_start_for_the_group_of_a_reservation(csms, charger):
    # §5.13: RemoteStart for another idTag of the reservation's group is
    # Accepted; the parent (here from Authorize) decides whether it starts.
    csms.authorize = _group_authorize
    mark = csms.mark()
    assert reserve(csms, 1, "OWNER", rid=21, parent="FLEET") == "Accepted"
    status_sn(csms, "Reserved", mark)
    r = csms.call("CP1", "RemoteStartTransaction", {"idTag": "OUTSIDER", "connectorId": 1})
    assert r["status"] == "Accepted"
    csms.wait_for("Authorize", after=mark, pred=lambda m: m.payload["idTag"] == "OUTSIDER")
    time.sleep(0.5)
    assert charger.connector(1)["status"] == "Reserved"
    r = csms.call("CP1", "RemoteStartTransaction", {"idTag": "COLLEAGUE", "connectorId": 1})
    assert r["status"] == "Accepted"
    status_sn(csms, "Preparing", mark)
    charger.ok("plug_in", connector=1)
    st = csms.wait_for("StartTransaction", after=mark, timeout=5)
    assert st.payload["idTag"] == "COLLEAGUE" and st.payload["reservationId"] == 21


def test_remote_start_for_the_group_parent_from_the_cache(csms, charger_factory):
    # AuthorizeRemoteTxRequests=false: the local list knows COLLEAGUE's
    # parent, no Authorize is sent; two connectors, the other one charging.
    ch = charger_factory(connectors=2, config={"keys": {"AuthorizeRemoteTxRequests": False}})
    csms.wait_for("StatusNotification", pred=lambda m: m.payload["connectorId"] == 2, timeout=15)
    csms.authorize = _group_authorize
    assert csms.call("CP1", "SendLocalList", {
        "listVersion": 1, "updateType": "Full", "localAuthorizationList": [
            {"idTag": "COLLEAGUE", "idTagInfo": {"status": "Accepted", "parentIdTag": "FLEET"}}]}
    )["status"] == "Accepted"
    ch.ok("plug_in", connector=1)
    ch.ok("swipe", idTag="OTHER1")
    csms.wait_for("StartTransaction", timeout=5)
    mark = csms.mark()
    assert reserve(csms, 2, "OWNER", rid=22, parent="FLEET") == "Accepted"
    status_sn(csms, "Reserved", mark, cid=2)
    ch.ok("plug_in", connector=2)
    r = csms.call("CP1", "RemoteStartTransaction", {"idTag": "COLLEAGUE", "connectorId": 2})
    assert r["status"] == "Accepted"
    st = csms.wait_for("StartTransaction", after=mark, timeout=5)
    assert st.payload["connectorId"] == 2 and st.payload["reservationId"] == 22
    assert csms.calls("Authorize", after=mark) == []


_ZERO = {"keys": {"ReserveConnectorZeroSupported": True}}


def test_connector_zero_key_is_read_only_and_provisioned(csms, charger_factory):
    ch = charger_factory(config=_ZERO)  # noqa: F841
    csms.wait_for("StatusNotification", pred=lambda m: m.payload["connectorId"] == 1, timeout=15)
    r = csms.call("CP1", "GetConfiguration", {"key": ["ReserveConnectorZeroSupported"]})
    assert r["configurationKey"] == [
        {"key": "ReserveConnectorZeroSupported", "readonly": True, "value": "true"}]
    assert csms.call("CP1", "ChangeConfiguration", {
        "key": "ReserveConnectorZeroSupported", "value": "false"})["status"] == "Rejected"


def test_connector_zero_one_connector(csms, charger_factory):
    ch = charger_factory(config=_ZERO)
    csms.wait_for("StatusNotification", pred=lambda m: m.payload["connectorId"] == 1, timeout=15)
    mark = csms.mark()
    assert reserve(csms, 0, "OWNER", rid=60) == "Accepted"
    assert reserve(csms, 1, "OTHER", rid=61) == "Occupied"  # kept for connector 0's
    r = csms.call("CP1", "RemoteStartTransaction", {"idTag": "STRANGER", "connectorId": 1})
    assert r["status"] == "Rejected"
    ch.ok("plug_in", connector=1)
    ch.ok("swipe", idTag="STRANGER")
    csms.wait_for("Authorize", after=mark, pred=lambda m: m.payload["idTag"] == "STRANGER")
    time.sleep(0.5)
    assert csms.calls("StartTransaction", after=mark) == []
    ch.ok("swipe", idTag="OWNER")
    st = csms.wait_for("StartTransaction", after=mark, timeout=5)
    assert st.payload["idTag"] == "OWNER" and st.payload["reservationId"] == 60
    # the reservation ended with the transaction: a new one, cancelled, expiring
    ch.ok("swipe", idTag="OWNER")
    csms.wait_for("StopTransaction", after=mark, timeout=5)
    ch.ok("plug_out", connector=1)
    status_sn(csms, "Available", mark)
    assert reserve(csms, 0, "OWNER", rid=62) == "Accepted"
    assert csms.call("CP1", "CancelReservation", {"reservationId": 62})["status"] == "Accepted"
    assert reserve(csms, 0, "OWNER", rid=63, secs=2) == "Accepted"
    assert reserve(csms, 1, "OTHER", rid=64) == "Occupied"
    ch.wait_state(lambda s: reserve(csms, 1, "OTHER", rid=64) == "Accepted", timeout=10,
                  what="connector 0's reservation expired")
    assert csms.call("CP1", "CancelReservation", {"reservationId": 63})["status"] == "Rejected"
    assert set(sns(csms, 0, mark)) <= {"Available"}  # connector 0 is never Reserved


def test_connector_zero_two_connectors(csms, charger_factory):
    ch = charger_factory(connectors=2, config=_ZERO)
    csms.wait_for("StatusNotification", pred=lambda m: m.payload["connectorId"] == 2, timeout=15)
    mark = csms.mark()
    assert reserve(csms, 0, "OWNER", rid=70) == "Accepted"
    ch.ok("plug_in", connector=1)
    ch.ok("swipe", idTag="STRANGER")  # the other connector stays free: it starts
    st = csms.wait_for("StartTransaction", after=mark, timeout=5)
    assert st.payload["connectorId"] == 1 and "reservationId" not in st.payload
    m2 = csms.mark()
    r = csms.call("CP1", "RemoteStartTransaction", {"idTag": "THIRD", "connectorId": 2})
    assert r["status"] == "Rejected"  # the last free connector is the reservation's
    assert reserve(csms, 2, "THIRD", rid=71) == "Occupied"
    assert ch.connector(2)["status"] == "Available"
    r = csms.call("CP1", "RemoteStartTransaction", {"idTag": "OWNER"})
    assert r["status"] == "Accepted"
    ch.ok("plug_in", connector=2)
    st = csms.wait_for("StartTransaction", after=m2, timeout=5)
    assert st.payload["connectorId"] == 2 and st.payload["idTag"] == "OWNER"
    assert st.payload["reservationId"] == 70
    assert csms.call("CP1", "CancelReservation", {"reservationId": 70})["status"] == "Rejected"
