"""Remote control of sessions end to end (checklist §2 Core, scenarios
30-39): RemoteStart/Stop, UnlockConnector, ChangeAvailability, Reset across a
process restart, ClearCache, DataTransfer; one connector and two.
Scenarios 37-38 (GetConfiguration / ChangeConfiguration) are in test_config.py;
the two-connector view of them is here."""
import time

from test_sessions import (BOTH, transitions_checked,  # noqa: F401 (autouse)
                           boot, wait_sn, sns, conf, start, wait_stop, assert_idle,
                           no_call)


def call(csms, action, payload):
    return csms.call("CP1", action, payload)


# --- scenario 30: RemoteStart refused --------------------------------------------

@BOTH
def test_30_remote_start_rejections(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    m = csms.mark()
    assert (
        call(csms, "RemoteStartTransaction", {"idTag": "R", "connectorId": 0})["status"]
        == "Rejected"
    )
    assert (
        call(csms, "RemoteStartTransaction", {"idTag": "R", "connectorId": n + 1})["status"]
        == "Rejected"
    )
    start(ch, csms, n, "TAG1")
    # Busy connector.
    assert (
        call(csms, "RemoteStartTransaction", {"idTag": "R", "connectorId": n})["status"]
        == "Rejected"
    )
    if n == 1:  # no free connector to pick
        assert call(csms, "RemoteStartTransaction", {"idTag": "R"})["status"] == "Rejected"
    no_call(csms, "Authorize", csms.mark(), wait=0.3)
    assert len(csms.calls("StartTransaction", after=m)) == 1


def test_30_remote_start_refused_when_unavailable_or_faulted(csms, charger_factory):
    ch = boot(charger_factory, csms, 2)
    assert (
        call(csms, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})["status"]
        == "Accepted"
    )
    ch.ok("raise_error", connector=2, code="GroundFailure")
    ch.wait_state(lambda s: s["connectors"][1]["status"] == "Faulted")
    for cid in (1, 2):
        r = call(csms, "RemoteStartTransaction", {"idTag": "R", "connectorId": cid})
        assert r["status"] == "Rejected", cid
    assert call(csms, "RemoteStartTransaction", {"idTag": "R"})["status"] == "Rejected"
    ch.ok("clear_error", connector=2)
    ch.wait_state(lambda s: s["connectors"][1]["status"] == "Available")
    m = csms.mark()
    # Without a connectorId the charger picks the free one.
    assert call(csms, "RemoteStartTransaction", {"idTag": "R"})["status"] == "Accepted"
    wait_sn(csms, 2, "Preparing", m)
    ch.ok("plug_in", connector=2)
    assert csms.wait_for("StartTransaction", after=m).payload["connectorId"] == 2


def test_30_remote_start_picks_plugged_connector(csms, charger_factory):
    ch = boot(charger_factory, csms, 2)
    m = csms.mark()
    ch.ok("plug_in", connector=2)
    wait_sn(csms, 2, "Preparing", m)
    assert call(csms, "RemoteStartTransaction", {"idTag": "R"})["status"] == "Accepted"
    assert csms.wait_for("StartTransaction", after=m).payload["connectorId"] == 2
    wait_sn(csms, 2, "Charging", m)
    assert_idle(ch, 1)


# --- scenario 31: RemoteStop -------------------------------------------------------

@BOTH
def test_31_remote_stop(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    txid = start(ch, csms, n)
    assert (
        call(csms, "RemoteStopTransaction", {"transactionId": txid + 100})["status"] == "Rejected"
    )
    m = csms.mark()
    assert call(csms, "RemoteStopTransaction", {"transactionId": txid})["status"] == "Accepted"
    stop = wait_stop(csms, m, txid)
    assert stop.payload["reason"] == "Remote"
    assert stop.payload["idTag"] == "TAG1"
    wait_sn(csms, n, "Finishing", m)
    assert not ch.connector(n)["relay"]
    ch.wait_state(lambda s: not s["connectors"][n - 1]["locked"], timeout=3, what="unlocked")
    # Stopped already: a second RemoteStop is refused.
    assert call(csms, "RemoteStopTransaction", {"transactionId": txid})["status"] == "Rejected"
    ch.ok("plug_out", connector=n)
    wait_sn(csms, n, "Available", m)


# --- scenario 32: UnlockConnector --------------------------------------------------

@BOTH
def test_32_unlock_connector(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    assert call(csms, "UnlockConnector", {"connectorId": n})["status"] == "Unlocked"
    assert call(csms, "UnlockConnector", {"connectorId": 7})["status"] == "NotSupported"
    txid = start(ch, csms, n)
    m = csms.mark()
    assert call(csms, "UnlockConnector", {"connectorId": n})["status"] == "Unlocked"
    stop = wait_stop(csms, m, txid)
    assert stop.payload["reason"] == "UnlockCommand"
    # The stop went out first: the Unlocked answer came after it was queued.
    c = ch.connector(n)
    assert not c["locked"] and not c["relay"] and c["transaction"] is None
    wait_sn(csms, n, "Finishing", m)


def test_32_lock_jam_unlock_failed(csms, charger_factory):
    ch = boot(charger_factory, csms, 1)
    txid = start(ch, csms, 1)
    ch.ok("inject", connector=1, fault="lock_jam", on=True)
    m = csms.mark()
    assert call(csms, "UnlockConnector", {"connectorId": 1})["status"] == "UnlockFailed"
    assert wait_stop(csms, m, txid).payload["reason"] == "UnlockCommand"
    assert ch.connector(1)["locked"]
    ch.ok("inject", connector=1, fault="lock_jam", on=False)
    assert call(csms, "UnlockConnector", {"connectorId": 1})["status"] == "Unlocked"
    assert not ch.connector(1)["locked"]


# --- scenario 33: ChangeAvailability, persisted ------------------------------------

@BOTH
def test_33_change_availability_survives_reboot(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    m = csms.mark()
    assert (
        call(csms, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})["status"]
        == "Accepted"
    )
    for cid in range(n + 1):
        wait_sn(csms, cid, "Unavailable", m)
    # Nothing starts while Unavailable.
    ch.ok("plug_in", connector=n)
    ch.ok("swipe", idTag="TAG1")
    assert (
        call(csms, "RemoteStartTransaction", {"idTag": "R", "connectorId": n})["status"]
        == "Rejected"
    )
    no_call(csms, "StartTransaction", m, wait=0.5)
    assert ch.connector(n)["status"] == "Unavailable" and not ch.connector(n)["relay"]
    # Same state again: Accepted.
    assert (
        call(csms, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})["status"]
        == "Accepted"
    )
    assert (
        call(csms, "ChangeAvailability", {"connectorId": n + 1, "type": "Inoperative"})["status"]
        == "Rejected"
    )
    m = csms.mark()
    ch.restart()
    csms.wait_for("BootNotification", after=m, timeout=15)
    for cid in range(n + 1):
        assert wait_sn(csms, cid, None, m).payload["status"] == "Unavailable", cid
    assert ch.state()["status0"] == "Unavailable"
    m = csms.mark()
    assert (
        call(csms, "ChangeAvailability", {"connectorId": 0, "type": "Operative"})["status"]
        == "Accepted"
    )
    for cid in range(n + 1):
        # the EV plugged in before the restart is still there
        wait_sn(csms, cid, "Preparing" if cid == n else "Available", m)


def test_33_one_connector_inoperative(csms, charger_factory):
    ch = boot(charger_factory, csms, 2)
    m = csms.mark()
    assert (
        call(csms, "ChangeAvailability", {"connectorId": 2, "type": "Inoperative"})["status"]
        == "Accepted"
    )
    wait_sn(csms, 2, "Unavailable", m)
    time.sleep(0.3)
    assert sns(csms, 0, m) == [] and sns(csms, 1, m) == []
    # A card goes to the operative connector.
    start(ch, csms, 1, "TAG1")
    m = csms.mark()
    ch.restart()
    csms.wait_for("BootNotification", after=m, timeout=15)
    assert wait_sn(csms, 2, None, m).payload["status"] == "Unavailable"
    # the EV stayed plugged through the restart: Finishing after PowerLoss
    assert wait_sn(csms, 1, None, m).payload["status"] == "Finishing"
    assert wait_sn(csms, 0, None, m).payload["status"] == "Available"


# --- scenario 34: ChangeAvailability during a transaction -------------------------

@BOTH
def test_34_change_availability_scheduled(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    txid = start(ch, csms, n)
    m = csms.mark()
    r = call(csms, "ChangeAvailability", {"connectorId": n, "type": "Inoperative"})
    assert r["status"] == "Scheduled"
    assert (
        call(csms, "ChangeAvailability", {"connectorId": n, "type": "Operative"})["status"]
        == "Accepted"
    )
    assert (
        call(csms, "ChangeAvailability", {"connectorId": n, "type": "Inoperative"})["status"]
        == "Scheduled"
    )
    time.sleep(0.3)
    assert ch.connector(n)["status"] == "Charging" and ch.connector(n)["relay"]
    assert "Unavailable" not in sns(csms, n, m)
    ch.ok("swipe", idTag="TAG1")
    wait_stop(csms, m, txid)
    wait_sn(csms, n, "Unavailable", m)
    assert not ch.connector(n)["relay"]
    if n == 2:
        assert_idle(ch, 1)
    m = csms.mark()
    assert (
        call(csms, "ChangeAvailability", {"connectorId": n, "type": "Operative"})["status"]
        == "Accepted"
    )
    wait_sn(csms, n, "Finishing", m)  # the cable is still in


def test_34_charge_point_inoperative_waits_for_all(csms, charger_factory):
    ch = boot(charger_factory, csms, 2)
    txid = start(ch, csms, 2)
    m = csms.mark()
    assert (
        call(csms, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})["status"]
        == "Scheduled"
    )
    wait_sn(csms, 1, "Unavailable", m)  # the idle connector at once
    time.sleep(0.3)
    assert "Unavailable" not in sns(csms, 0, m) + sns(csms, 2, m)
    ch.ok("plug_out", connector=2)  # EV side: the transaction ends
    wait_stop(csms, m, txid)
    wait_sn(csms, 2, "Unavailable", m)
    wait_sn(csms, 0, "Unavailable", m)


@BOTH
def test_34_inoperative_while_preparing_is_scheduled(csms, charger_factory, n):
    # §4.9 has no Preparing -> Unavailable: Scheduled, applied once Available.
    ch = boot(charger_factory, csms, n)
    m = csms.mark()
    ch.ok("plug_in", connector=n)
    wait_sn(csms, n, "Preparing", m)
    r = call(csms, "ChangeAvailability", {"connectorId": n, "type": "Inoperative"})
    assert r["status"] == "Scheduled"
    time.sleep(0.3)
    assert ch.connector(n)["status"] == "Preparing"
    assert "Unavailable" not in sns(csms, n, m)
    ch.ok("plug_out", connector=n)
    wait_sn(csms, n, "Unavailable", m)
    assert sns(csms, n, m)[-2:] == ["Available", "Unavailable"]
    assert ch.connector(n)["operative"] is False
    if n == 2:
        assert_idle(ch, 1)


@BOTH
def test_34_charge_point_inoperative_waits_for_preparing(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    m = csms.mark()
    ch.ok("plug_in", connector=n)
    wait_sn(csms, n, "Preparing", m)
    r = call(csms, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})
    assert r["status"] == "Scheduled"
    if n == 2:
        wait_sn(csms, 1, "Unavailable", m)  # the idle connector at once
    time.sleep(0.3)
    assert "Unavailable" not in sns(csms, 0, m) + sns(csms, n, m)
    ch.ok("plug_out", connector=n)
    wait_sn(csms, n, "Unavailable", m)
    wait_sn(csms, 0, "Unavailable", m)
    assert ch.state()["status0"] == "Unavailable"


def test_34_scheduled_change_survives_power_cut(csms, charger_factory):
    ch = boot(charger_factory, csms, 1)
    txid = start(ch, csms, 1)
    assert (
        call(csms, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})["status"]
        == "Scheduled"
    )
    m = csms.mark()
    ch.power_cut()
    ch.start()
    csms.wait_for("BootNotification", after=m, timeout=15)
    assert wait_sn(csms, 1, None, m).payload["status"] == "Unavailable"
    assert wait_stop(csms, m, txid).payload["reason"] == "PowerLoss"


# --- scenarios 35-36: Reset during a transaction -----------------------------------

@BOTH
def test_35_soft_reset_in_transaction(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    txids = [start(ch, csms, cid, "TAG%d" % cid) for cid in range(1, n + 1)]
    boot_n = ch.state()["boot"]
    m = csms.mark()
    assert call(csms, "Reset", {"type": "Soft"})["status"] == "Accepted"
    stops = [wait_stop(csms, m, t) for t in txids]
    b = csms.wait_for("BootNotification", after=m, timeout=15)
    for s in stops:
        assert s.payload["reason"] == "SoftReset"
        assert s.t < b.t  # graceful: the stop went out before the restart
    # The EVs are still plugged in: Preparing (a card starts a new session).
    for cid in range(n + 1):
        wait_sn(csms, cid, "Preparing" if cid else "Available", csms.messages.index(b))
    st = ch.wait_state(lambda s: s["registration"] == "Accepted", timeout=10)
    assert st["boot"] == boot_n + 1
    time.sleep(0.5)
    assert len(csms.calls("StopTransaction", after=m)) == n
    assert csms.calls("StartTransaction", after=m) == []


@BOTH
def test_36_hard_reset_in_transaction(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    txids = [start(ch, csms, cid, "TAG%d" % cid) for cid in range(1, n + 1)]
    m = csms.mark()
    assert call(csms, "Reset", {"type": "Hard"})["status"] == "Accepted"
    b = csms.wait_for("BootNotification", after=m, timeout=15)
    for cid in range(n + 1):
        wait_sn(csms, cid, None, csms.messages.index(b))
    for t in txids:
        assert wait_stop(csms, m, t).payload["reason"] == "HardReset"
    time.sleep(1.0)
    # Exactly once each, and no StartTransaction sent again.
    stops = csms.calls("StopTransaction", after=m)
    assert sorted(s.payload["transactionId"] for s in stops) == sorted(txids)
    assert csms.calls("StartTransaction", after=m) == []


def test_36_hard_reset_with_link_cut_delivers_after_boot(csms, charger_factory):
    # The uplink drops right after the Reset answer: the HardReset stop is
    # kept in flash and delivered after the next BootNotification, once.
    ch = boot(charger_factory, csms, 1)
    txid = start(ch, csms, 1)
    m = csms.mark()
    assert call(csms, "Reset", {"type": "Hard"})["status"] == "Accepted"
    ch.op("network", up=False)  # may already be restarting
    csms.wait_for("BootNotification", after=m, timeout=15)
    stop = wait_stop(csms, m, txid)
    assert stop.payload["reason"] == "HardReset"
    conf(csms, "StopTransaction", m)
    time.sleep(0.5)  # the charger records the delivery
    # A restart once the stop is delivered sends nothing of it again.
    m2 = csms.mark()
    ch.restart()
    csms.wait_for("StatusNotification", after=m2, timeout=15)
    time.sleep(0.5)
    assert csms.calls("StopTransaction", after=m2) == []
    assert len(csms.calls("StopTransaction", direction="out", after=m)) == 1
    assert csms.calls("StartTransaction", after=m) == []


# --- scenarios 37-38 on two connectors ---------------------------------------------

def test_37_number_of_connectors_two(csms, charger_factory):
    boot(charger_factory, csms, 2)
    r = call(csms, "GetConfiguration", {"key": ["NumberOfConnectors"]})
    assert r["configurationKey"] == [{"key": "NumberOfConnectors", "readonly": True, "value": "2"}]
    assert (
        call(csms, "ChangeConfiguration", {"key": "NumberOfConnectors", "value": "1"})["status"]
        == "Rejected"
    )


# --- scenario 39: ClearCache, DataTransfer ----------------------------------------

def test_39_clear_cache_then_authorize(csms, charger_factory):
    ch = boot(charger_factory, csms, 1, keys={"LocalPreAuthorize": True})
    start(ch, csms, 1, "TAG1")  # Authorize: the answer goes into the cache
    m = csms.mark()
    ch.ok("swipe", idTag="TAG1")
    wait_stop(csms, m)
    ch.ok("plug_out", connector=1)
    wait_sn(csms, 1, "Available", m)
    # Cached and Accepted: starts without Authorize (LocalPreAuthorize).
    m = csms.mark()
    start(ch, csms, 1, "TAG1", authorize=False)
    no_call(csms, "Authorize", m)
    ch.ok("swipe", idTag="TAG1")
    wait_stop(csms, m)
    ch.ok("plug_out", connector=1)
    wait_sn(csms, 1, "Available", m)
    assert call(csms, "ClearCache", {})["status"] == "Accepted"
    m = csms.mark()
    start(ch, csms, 1, "TAG1")  # Authorize again
    assert len(csms.calls("Authorize", after=m)) == 1


def test_39_clear_cache_rejected_without_cache(csms, charger_factory):
    boot(charger_factory, csms, 1, keys={"AuthorizationCacheEnabled": False})
    assert call(csms, "ClearCache", {})["status"] == "Rejected"


def test_39_data_transfer_unknown_vendor(csms, charger):
    r = call(
        csms, "DataTransfer", {"vendorId": "com.example.nobody", "messageId": "x", "data": "y"}
    )
    assert r == {"status": "UnknownVendorId"}


# --- the remaining stop reasons: PowerLoss, EmergencyStop ---------------------------

@BOTH
def test_power_loss_stop_after_reboot(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    txid = start(ch, csms, n)
    m = csms.mark()
    ch.power_cut()
    ch.start()
    b = csms.wait_for("BootNotification", after=m, timeout=15)
    stop = wait_stop(csms, m, txid)
    assert stop.payload["reason"] == "PowerLoss" and stop.t > b.t
    assert stop.payload["idTag"] == "TAG1"
    time.sleep(0.5)
    assert len(csms.calls("StopTransaction", after=m)) == 1
    assert csms.calls("StartTransaction", after=m) == []
    # The EV stayed plugged through the cut: Finishing, as a real one would be.
    assert wait_sn(csms, n, None, m).payload["status"] == "Finishing"
    c = ch.connector(n)
    assert c["status"] == "Finishing" and c["transaction"] is None and not c["relay"], c
    for cid in range(1, n):
        assert_idle(ch, cid)
    m = csms.mark()
    ch.ok("plug_out", connector=n)
    wait_sn(csms, n, "Available", m)


@BOTH
def test_power_cut_with_an_ev_plugged_and_no_transaction(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    m = csms.mark()
    ch.ok("plug_in", connector=n)
    wait_sn(csms, n, "Preparing", m)
    m = csms.mark()
    ch.power_cut()
    ch.start()
    csms.wait_for("BootNotification", after=m, timeout=15)
    assert wait_sn(csms, n, None, m).payload["status"] == "Preparing"
    for cid in range(1, n):
        assert wait_sn(csms, cid, None, m).payload["status"] == "Available"
    assert ch.connector(n)["status"] == "Preparing"
    ch.ok("swipe", idTag="TAG1")  # the plugged EV starts at once
    st = csms.wait_for("StartTransaction", after=m, timeout=10)
    assert st.payload["connectorId"] == n
    wait_sn(csms, n, "Charging", m)


@BOTH
def test_free_charging_resumes_after_a_power_cut(csms, charger_factory, n):
    # FreeCharging: nobody shows a card, so a car still plugged in when the
    # power comes back charges again in a new transaction after the
    # PowerLoss stop (a car plugged in at boot starts one too).
    ch = boot(charger_factory, csms, n, keys={"FreeCharging": True,
                                             "FreeChargingIdTag": "FREE"})
    m = csms.mark()
    ch.ok("plug_in", connector=n)
    ch.ok("ev_state", connector=n, state="C")
    first = csms.wait_for("StartTransaction", after=m, timeout=10)
    tx = csms.wait_for("StartTransaction", direction="out", after=m,
                       pred=lambda x: x.id == first.id).payload["transactionId"]
    # The answer recorded (a cut before it is issue 12's duplicate StartTransaction).
    ch.wait_state(lambda s: (s["connectors"][n - 1]["transaction"] or {}).get("id") == tx,
                  what="transaction id known")
    m = csms.mark()
    ch.power_cut()
    ch.start()
    assert wait_stop(csms, m, tx, timeout=20).payload["reason"] == "PowerLoss"
    again = csms.wait_for("StartTransaction", after=m, timeout=15)
    assert again.payload["connectorId"] == n and again.payload["idTag"] == "FREE"
    wait_sn(csms, n, "Charging", m, timeout=15)


@BOTH
def test_emergency_stop(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    txids = [start(ch, csms, cid, "TAG%d" % cid) for cid in range(1, n + 1)]
    m = csms.mark()
    ch.ok("emergency_stop")
    for cid in range(1, n + 1):
        assert not ch.connector(cid)["relay"]
    for t in txids:
        assert wait_stop(csms, m, t).payload["reason"] == "EmergencyStop"
    for cid in range(1, n + 1):
        wait_sn(csms, cid, "Faulted", m, error="OtherError")
    assert (
        call(csms, "RemoteStartTransaction", {"idTag": "R", "connectorId": 1})["status"]
        == "Rejected"
    )
    ch.ok("emergency_stop", on=False)
    for cid in range(1, n + 1):
        wait_sn(csms, cid, "Finishing", m, error="NoError")  # cables still in
