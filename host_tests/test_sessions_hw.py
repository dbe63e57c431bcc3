"""Safety rules, faults and the hardware-facing keys end to end (issue 4):
relay and pilot rules, raise_error / clear_error, simulated hardware defects
(welded or stuck contactor, jammed lock, missing diode), MinimumStatusDuration,
LightIntensity, and the vendor keys FreeCharging (scenario 62) and
LockCablePermanently (scenario 63); one connector and two."""
import time

from test_sessions import (BOTH, transitions_checked,  # noqa: F401 (autouse)
                           boot, wait_sn, sns, start, wait_stop, assert_idle, no_call)


def call(csms, action, payload):
    return csms.call("CP1", action, payload)


def key(csms, name):
    r = call(csms, "GetConfiguration", {"key": [name]})
    return r["configurationKey"][0]


def change(csms, name, value):
    return call(csms, "ChangeConfiguration", {"key": name, "value": value})["status"]


# --- relay and pilot ---------------------------------------------------------------

@BOTH
def test_relay_follows_the_ev_at_once(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    start(ch, csms, n)
    m = csms.mark()
    # The bench's ev_state is handled synchronously: the relay is open by
    # the time the reply comes back.
    ch.ok("ev_state", connector=n, state="B")
    c = ch.connector(n)
    assert not c["relay"] and c["amps"] == [0.0, 0.0, 0.0], c
    assert c["offered_amps"] > 0  # still offered: the EV only paused
    wait_sn(csms, n, "SuspendedEV", m)
    ch.ok("ev_state", connector=n, state="C")
    assert ch.connector(n)["relay"]
    wait_sn(csms, n, "Charging", m)
    ch.ok("ev_state", connector=n, state="D")  # with ventilation: still charging
    assert ch.connector(n)["relay"]
    ch.ok("plug_out", connector=n)
    assert not ch.connector(n)["relay"]
    if n == 2:
        assert_idle(ch, 1)


@BOTH
def test_offered_current_within_board_limit(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    for cid in range(1, n + 1):
        ch.ok("load", connector=cid, amps=[40, 40, 40])  # the EV would take more
        start(ch, csms, cid, "TAG%d" % cid)
    for cid in range(1, n + 1):
        c = ch.connector(cid)
        assert c["offered_amps"] <= 32.0, c  # the unix board's 32 A
        assert abs(c["duty"] - 32 / 0.6) < 0.1, c
        assert max(c["amps"]) <= 32.0, c


def test_idle_connector_offers_nothing(csms, charger_factory):
    ch = boot(charger_factory, csms, 1)
    ch.ok("plug_in", connector=1)
    time.sleep(0.3)
    c = ch.connector(1)
    assert c["duty"] == 100.0 and c["offered_amps"] == 0 and not c["relay"] and c["pilot"] == "B"


# --- faults from raise_error --------------------------------------------------------

@BOTH
def test_fault_during_transaction_stops_energy_and_recovers(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    txid = start(ch, csms, n)
    m = csms.mark()
    ch.ok("raise_error", connector=n, code="GroundFailure", info="RCD tripped")
    c = ch.connector(n)
    assert not c["relay"] and c["offered_amps"] == 0 and c["duty"] in (0.0, 100.0), c
    f = wait_sn(csms, n, "Faulted", m)
    assert f.payload["errorCode"] == "GroundFailure" and f.payload.get("info") == "RCD tripped"
    ch.wait_state(lambda s: s["led"] == "faulted", timeout=2, what="LED faulted")
    if n == 2:
        assert_idle(ch, 1)
    ch.ok("clear_error", connector=n)
    wait_sn(csms, n, "Charging", m, error="NoError")
    c = ch.wait_state(lambda s: s["connectors"][n - 1]["relay"], timeout=3)["connectors"][n - 1]
    assert c["transaction"]["id"] == txid
    no_call(csms, "StopTransaction", m)


def test_fault_when_idle_blocks_start(csms, charger_factory):
    ch = boot(charger_factory, csms, 1)
    m = csms.mark()
    ch.ok("raise_error", connector=1, code="HighTemperature")
    wait_sn(csms, 1, "Faulted", m, error="HighTemperature")
    ch.ok("plug_in", connector=1)
    ch.ok("swipe", idTag="TAG1")
    no_call(csms, "StartTransaction", m, wait=0.8)
    assert ch.connector(1)["status"] == "Faulted"
    ch.ok("clear_error", connector=1)
    wait_sn(csms, 1, "Preparing", m, error="NoError")  # the cable is in
    ch.ok("swipe", idTag="TAG1")
    csms.wait_for("StartTransaction", after=m)


# --- hardware defects found by the drivers ---------------------------------------------

@BOTH
def test_welded_relay_is_power_switch_failure(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    txid = start(ch, csms, n)
    ch.ok("inject", connector=n, fault="weld")
    m = csms.mark()
    ch.ok("swipe", idTag="TAG1")
    wait_stop(csms, m, txid)
    f = wait_sn(csms, n, "Faulted", m, timeout=5)
    assert f.payload["errorCode"] == "PowerSwitchFailure"
    c = ch.connector(n)
    assert c["offered_amps"] == 0 and not c["relay"]
    # A new session is refused while the fault stands.
    assert (
        call(csms, "RemoteStartTransaction", {"idTag": "R", "connectorId": n})["status"]
        == "Rejected"
    )
    # Repaired, then the fault is acknowledged.
    ch.ok("inject", connector=n, fault="weld", on=False)
    ch.ok("clear_error", connector=n)
    wait_sn(csms, n, "Finishing", m, error="NoError")
    time.sleep(0.4)
    assert ch.connector(n)["status"] == "Finishing"  # not detected again
    if n == 2:
        assert_idle(ch, 1)


def test_stuck_open_relay_faults(csms, charger_factory):
    ch = boot(charger_factory, csms, 1)
    ch.ok("inject", connector=1, fault="stuck_open")
    m = csms.mark()
    ch.ok("plug_in", connector=1)
    ch.ok("swipe", idTag="TAG1")
    csms.wait_for("StartTransaction", after=m)
    wait_sn(csms, 1, "Faulted", m, error="PowerSwitchFailure", timeout=5)
    assert not ch.connector(1)["relay"]
    ch.ok("inject", connector=1, fault="stuck_open", on=False)
    ch.ok("clear_error", connector=1)
    wait_sn(csms, 1, "Charging", m, error="NoError")
    ch.wait_state(lambda s: s["connectors"][0]["relay"] and max(s["connectors"][0]["amps"]) > 0,
                  timeout=3, what="energy again")


def test_lock_jam_at_start_is_connector_lock_failure(csms, charger_factory):
    ch = boot(charger_factory, csms, 1)
    ch.ok("inject", connector=1, fault="lock_jam")
    m = csms.mark()
    ch.ok("plug_in", connector=1)
    ch.ok("swipe", idTag="TAG1")
    wait_sn(csms, 1, "Faulted", m, error="ConnectorLockFailure", timeout=5)
    c = ch.connector(1)
    assert not c["relay"] and c["offered_amps"] == 0 and not c["locked"]


@BOTH
def test_missing_diode_stops_energy(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    txid = start(ch, csms, n)
    m = csms.mark()
    ch.ok("inject", connector=n, fault="diode")
    w = wait_sn(csms, n, "SuspendedEV", m, error="EVCommunicationError", timeout=5)
    c = ch.connector(n)
    assert not c["relay"] and c["offered_amps"] == 0, c
    time.sleep(0.5)  # no offer comes back while the EV is still plugged
    c = ch.connector(n)
    assert not c["relay"] and c["offered_amps"] == 0, c
    assert "Charging" not in sns(csms, n, csms.messages.index(w))
    ch.ok("inject", connector=n, fault="diode", on=False)
    ch.ok("plug_out", connector=n)
    assert wait_stop(csms, m, txid).payload["reason"] == "EVDisconnected"
    wait_sn(csms, n, "Available", m, error="NoError")


# --- MinimumStatusDuration ---------------------------------------------------------------

def test_minimum_status_duration(csms, charger_factory):
    ch = boot(charger_factory, csms, 1, keys={"MinimumStatusDuration": 2})
    m = csms.mark()
    # A status that does not last 2 s is never reported.
    ch.ok("plug_in", connector=1)
    time.sleep(0.4)
    ch.ok("plug_out", connector=1)
    time.sleep(2.5)
    assert sns(csms, 1, m) == []
    # One that lasts is reported once it has held 2 s.
    t0 = time.time()
    ch.ok("plug_in", connector=1)
    p = wait_sn(csms, 1, "Preparing", m, timeout=6)
    assert p.t - t0 >= 1.9
    assert change(csms, "MinimumStatusDuration", "0") == "Accepted"
    k = csms.mark()
    ch.ok("plug_out", connector=1)
    wait_sn(csms, 1, "Available", k, timeout=2)  # reported at once again


# --- LightIntensity ------------------------------------------------------------------------

def test_light_intensity_applies_to_led(csms, charger_factory):
    ch = boot(charger_factory, csms, 1)
    st = ch.wait_state(lambda s: s["led"] == "available", timeout=3)
    assert st["led_intensity"] == 100 and st["led_rgb"] == [0, 255, 0]
    assert change(csms, "LightIntensity", "30") == "Accepted"
    st = ch.state()
    assert st["led_intensity"] == 30 and st["led_rgb"] == [0, 76, 0]
    assert change(csms, "LightIntensity", "101") == "Rejected"
    assert ch.state()["led_intensity"] == 30
    m = csms.mark()
    ch.restart()
    csms.wait_for("StatusNotification", after=m, timeout=15)
    st = ch.wait_state(lambda s: s["led"] == "available", timeout=5)
    assert st["led_intensity"] == 30 and st["led_rgb"] == [0, 76, 0]


# --- scenario 62: FreeCharging ---------------------------------------------------------------

@BOTH
def test_62_free_charging(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n, keys={"FreeCharging": True})
    m = csms.mark()
    ch.ok("plug_in", connector=n)
    st = csms.wait_for("StartTransaction", after=m)
    assert st.payload["idTag"] == "FFFFFFFF" and st.payload["connectorId"] == n
    wait_sn(csms, n, "Charging", m)
    no_call(csms, "Authorize", m)
    assert change(csms, "FreeChargingIdTag", "X" * 21) == "Rejected"
    assert change(csms, "FreeChargingIdTag", "") == "Rejected"
    assert key(csms, "FreeChargingIdTag")["value"] == "FFFFFFFF"
    r = call(csms, "ReserveNow", {"connectorId": 1, "expiryDate": "2099-01-01T00:00:00Z",
                                  "idTag": "R1", "reservationId": 5})
    assert r["status"] == "Rejected"
    ch.ok("plug_out", connector=n)
    assert wait_stop(csms, m).payload["reason"] == "EVDisconnected"
    if n == 2:
        assert_idle(ch, 1)


def test_62_free_charging_offline_and_own_tag(csms, charger_factory):
    ch = boot(charger_factory, csms, 1)
    assert change(csms, "FreeChargingIdTag", "FREE0001") == "Accepted"
    m = csms.mark()
    ch.ok("plug_in", connector=1)
    wait_sn(csms, 1, "Preparing", m)
    # Turning FreeCharging on starts the plugged EV.
    assert change(csms, "FreeCharging", "true") == "Accepted"
    st = csms.wait_for("StartTransaction", after=m)
    assert st.payload["idTag"] == "FREE0001"
    ch.ok("plug_out", connector=1)
    wait_stop(csms, m)
    # Offline: it still starts, and the StartTransaction follows at the reconnect.
    ch.ok("network", up=False)
    csms.wait_disconnected("CP1", timeout=5)
    ch.ok("plug_in", connector=1)
    c = ch.wait_state(lambda s: s["connectors"][0]["relay"], timeout=3,
                      what="charging offline")["connectors"][0]
    assert c["transaction"]["idTag"] == "FREE0001"
    m = csms.mark()
    ch.ok("network", up=True)
    st = csms.wait_for("StartTransaction", after=m, timeout=10)
    assert st.payload["idTag"] == "FREE0001"
    no_call(csms, "Authorize", m)


# --- scenario 63: LockCablePermanently --------------------------------------------------------

@BOTH
def test_63_lock_cable_permanently(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    assert key(csms, "UnlockConnectorOnEVSideDisconnect") == \
        {"key": "UnlockConnectorOnEVSideDisconnect", "readonly": False, "value": "true"}
    assert change(csms, "LockCablePermanently", "true") == "Accepted"
    assert key(csms, "UnlockConnectorOnEVSideDisconnect") == \
        {"key": "UnlockConnectorOnEVSideDisconnect", "readonly": True, "value": "false"}
    assert change(csms, "UnlockConnectorOnEVSideDisconnect", "true") == "Rejected"
    # A plugged cable is locked at once, and stays locked through a whole session.
    ch.ok("plug_in", connector=n)
    ch.wait_state(lambda s: s["connectors"][n - 1]["locked"], timeout=3, what="locked on plug")
    txid = start_plugged(ch, csms, n)
    m = csms.mark()
    ch.ok("swipe", idTag="TAG1")
    wait_stop(csms, m, txid)
    ch.ok("plug_out", connector=n)
    wait_sn(csms, n, "Available", m)
    time.sleep(0.4)
    assert ch.connector(n)["locked"]
    # Back to false: the old value and access return, and the cable is freed.
    assert change(csms, "LockCablePermanently", "false") == "Accepted"
    assert key(csms, "UnlockConnectorOnEVSideDisconnect") == \
        {"key": "UnlockConnectorOnEVSideDisconnect", "readonly": False, "value": "true"}
    ch.wait_state(lambda s: not s["connectors"][n - 1]["locked"], timeout=3, what="unlocked")


def test_63_old_value_false_comes_back(csms, charger_factory):
    boot(charger_factory, csms, 1)
    assert change(csms, "UnlockConnectorOnEVSideDisconnect", "false") == "Accepted"
    assert change(csms, "LockCablePermanently", "true") == "Accepted"
    assert key(csms, "UnlockConnectorOnEVSideDisconnect")["readonly"] is True
    assert change(csms, "LockCablePermanently", "false") == "Accepted"
    assert key(csms, "UnlockConnectorOnEVSideDisconnect") == \
        {"key": "UnlockConnectorOnEVSideDisconnect", "readonly": False, "value": "false"}
    assert change(csms, "UnlockConnectorOnEVSideDisconnect", "true") == "Accepted"


def start_plugged(ch, csms, cid, tag="TAG1"):
    m = csms.mark()
    ch.ok("swipe", idTag=tag)
    st = csms.wait_for("StartTransaction", after=m)
    wait_sn(csms, cid, "Charging", m)
    return csms.wait_for("StartTransaction", direction="out", after=m,
                         pred=lambda x: x.id == st.id).payload["transactionId"]
