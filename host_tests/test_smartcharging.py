"""SmartCharging end to end (checklist §2 SmartCharging, scenarios 14, 56-58):
SetChargingProfile, ClearChargingProfile and GetCompositeSchedule against the
simulated charger; the composite limit on the control pilot (offered amps,
duty, Current.Offered), schedule periods that change while charging, W
converted to A, a limit under 6 A suspending the EVSE, RemoteStart with a
TxProfile, and profiles surviving a restart."""
import datetime
import time

import pytest

from csms_lib import CallErrorResult

OFFERED = {"MeterValueSampleInterval": 1, "MeterValuesSampledData": "Current.Offered"}


def iso(seconds_from_now=0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def profile(pid=1, stack=0, purpose="TxDefaultProfile", kind="Absolute", periods=((0, 10),),
            unit="A", start=-60, duration=None, recur=None, txid=None):
    sched = {"chargingRateUnit": unit, "chargingSchedulePeriod": []}
    for q in periods:
        d = {"startPeriod": q[0], "limit": q[1]}
        if len(q) > 2:
            d["numberPhases"] = q[2]
        sched["chargingSchedulePeriod"].append(d)
    if start is not None:
        sched["startSchedule"] = iso(start)
    if duration is not None:
        sched["duration"] = duration
    p = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
         "chargingProfileKind": kind, "chargingSchedule": sched}
    if recur:
        p["recurrencyKind"] = recur
    if txid is not None:
        p["transactionId"] = txid
    return p


def set_profile(csms, cid, prof, **kw):
    return csms.call("CP1", "SetChargingProfile", {"connectorId": cid, "csChargingProfiles": prof},
                     **kw)["status"]


def clear(csms, **fields):
    return csms.call("CP1", "ClearChargingProfile", fields)["status"]


def composite(csms, cid=1, duration=3600, unit="A"):
    return csms.call("CP1", "GetCompositeSchedule",
                     {"connectorId": cid, "duration": duration, "chargingRateUnit": unit})


def limits(res):
    return [
        (q["startPeriod"], q["limit"]) for q in res["chargingSchedule"]["chargingSchedulePeriod"]
    ]


def boot(factory, csms, keys=None):
    ch = factory(config={"keys": keys or {}})
    csms.wait_for("StatusNotification", timeout=15, pred=lambda m: m.payload["connectorId"] == 1)
    return ch


def start_tx(ch, csms, tag="TAG1"):
    """load, plug in, swipe: the transactionId once StartTransaction is answered."""
    m = csms.mark()
    ch.ok("load", connector=1, amps=[6, 6, 6], volts=[230, 230, 230])
    ch.ok("plug_in", connector=1)
    ch.ok("swipe", idTag=tag)
    st = csms.wait_for("StartTransaction", after=m, timeout=10)
    return csms.wait_for("StartTransaction", direction="out", after=m,
                         pred=lambda x: x.id == st.id).payload["transactionId"]


def wait_offered(ch, amps, timeout=10):
    """The simulated EV reads `amps` from the pilot duty (rounded down by the PWM)."""
    return ch.wait_state(lambda s: abs(s["connectors"][0]["offered_amps"] - amps) < 0.15,
                         timeout=timeout, what="offered %s A" % amps)["connectors"][0]


def offered_mv(csms, after):
    """Current.Offered of the next periodic MeterValues."""
    m = csms.wait_for("MeterValues", after=after, timeout=10)
    return float(m.payload["meterValue"][0]["sampledValue"][0]["value"])


# --- scenario 56 ------------------------------------------------------------

def test_tx_default_on_connector_0_limits_offer_and_composite(csms, charger_factory):
    ch = boot(charger_factory, csms, OFFERED)
    assert set_profile(csms, 0, profile(pid=5, periods=((0, 10),))) == "Accepted"
    res = composite(csms, 1, 3600, "A")
    assert res["status"] == "Accepted" and res["connectorId"] == 1
    assert "scheduleStart" in res
    sched = res["chargingSchedule"]
    assert "startSchedule" not in sched  # E3.57
    assert sched["duration"] == 3600 and sched["chargingRateUnit"] == "A"
    assert limits(res) == [(0, 10)]
    assert limits(composite(csms, 1, 60, "W")) == [(0, 6900)]  # 10 A x 230 V x 3
    assert limits(composite(csms, 0, 60)) == [(0, 10)]  # the whole charger: one connector

    start_tx(ch, csms)
    wait_offered(ch, 10)
    ch.wait_state(
        lambda s: s["connectors"][0]["relay"] and s["connectors"][0]["status"] == "Charging",
        what="charging",
    )
    m = csms.mark()
    offered_mv(csms, m)
    assert offered_mv(csms, csms.mark()) == 10.0

    # E3.8: a new TxDefaultProfile applies to the running transaction
    assert set_profile(csms, 0, profile(pid=6, periods=((0, 8),))) == "Accepted"  # replaces 5
    wait_offered(ch, 8)
    assert clear(csms, id=5) == "Unknown"
    # removed: the transaction goes on without a limit
    assert clear(csms, id=6) == "Accepted"
    wait_offered(ch, 32)


def test_composite_request_errors(csms, charger):
    # Scenario 14 (E3.24): an unknown unit is a PropertyConstraintViolation
    with pytest.raises(CallErrorResult) as e:
        csms.call("CP1", "GetCompositeSchedule",
                  {"connectorId": 1, "duration": 60, "chargingRateUnit": "X"},
                  validate_outgoing=False)
    assert e.value.code == "PropertyConstraintViolation"
    assert composite(csms, 2)["status"] == "Rejected"  # unknown connector
    # no unit: A; nothing installed: the hardware limit
    res = csms.call("CP1", "GetCompositeSchedule", {"connectorId": 1, "duration": 120})
    assert res["chargingSchedule"]["chargingRateUnit"] == "A" and limits(res) == [(0, 32)]


# --- scenario 57 ------------------------------------------------------------

def test_tx_profile_rules_and_clear(csms, charger_factory):
    ch = boot(charger_factory, csms)
    txp = profile(pid=20, stack=1, purpose="TxProfile", periods=((0, 12),))
    assert set_profile(csms, 1, txp) == "Rejected"  # no transaction
    assert set_profile(csms, 0, profile(pid=1, periods=((0, 10),))) == "Accepted"
    txid = start_tx(ch, csms)
    wait_offered(ch, 10)
    assert set_profile(csms, 1, dict(txp, transactionId=txid + 100)) == "Rejected"
    assert set_profile(csms, 0, dict(txp, transactionId=txid)) == "Rejected"  # connector 0
    assert set_profile(csms, 1, dict(txp, transactionId=txid)) == "Accepted"
    wait_offered(ch, 12)  # overrides the TxDefaultProfile, even though higher
    assert limits(composite(csms, 1, 600)) == [(0, 12)]

    m = csms.mark()
    ch.ok("swipe", idTag="TAG1")
    csms.wait_for("StopTransaction", after=m, timeout=10)
    assert clear(csms, id=20) == "Unknown"  # gone with its transaction
    assert limits(composite(csms, 1, 600)) == [(0, 10)]

    assert set_profile(csms, 1, profile(pid=2, stack=2, periods=((0, 16),))) == "Accepted"
    assert set_profile(csms, 0, profile(pid=3, purpose="ChargePointMaxProfile",
                                        periods=((0, 20),))) == "Accepted"
    assert clear(csms, connectorId=1, chargingProfilePurpose="ChargePointMaxProfile") == "Unknown"
    assert clear(csms, connectorId=1, stackLevel=2) == "Accepted"  # pid 2
    assert clear(csms, id=2) == "Unknown"
    assert clear(csms) == "Accepted"  # all that is left: 1 and 3
    assert clear(csms) == "Unknown"
    assert limits(composite(csms, 1, 600)) == [(0, 32)]


def test_profiles_survive_restart(csms, charger_factory):
    ch = boot(charger_factory, csms)
    assert set_profile(csms, 0, profile(pid=1, periods=((0, 16),))) == "Accepted"
    assert set_profile(csms, 0, profile(pid=2, purpose="ChargePointMaxProfile",
                                        periods=((0, 9),))) == "Accepted"
    m = csms.mark()
    ch.restart()
    csms.wait_for("StatusNotification", after=m, timeout=15,
                  pred=lambda x: x.payload["connectorId"] == 1)
    ch.wait_log("2 charging profiles loaded", timeout=10)
    assert limits(composite(csms, 1, 60)) == [(0, 9)]
    start_tx(ch, csms)
    wait_offered(ch, 9)
    assert clear(csms) == "Accepted"
    wait_offered(ch, 32)
    # nothing stored any more: the next boot does not even load the module
    n = len(ch.log_text())
    m = csms.mark()
    ch.restart()
    csms.wait_for("StatusNotification", after=m, timeout=15,
                  pred=lambda x: x.payload["connectorId"] == 1)
    assert "charge point CP1 starting (boot 3" in ch.log_text()[n:]
    assert "smart:" not in ch.log_text()[n:]


# --- scenario 58 ------------------------------------------------------------

def test_rejections_and_connector_out_of_range(csms, charger):
    assert set_profile(csms, 0, profile(stack=9)) == "Rejected"  # ChargeProfileMaxStackLevel 8
    assert set_profile(csms, 0, profile(stack=8)) == "Accepted"
    many = tuple((i * 60, 10) for i in range(25))
    assert set_profile(csms, 0, profile(pid=2, periods=many)) == "Rejected"  # max 24 periods
    assert set_profile(csms, 0, profile(pid=2, periods=((0, 10), (0, 8)))) == "Rejected"
    assert set_profile(csms, 0, profile(pid=2, periods=((60, 10),))) == "Rejected"
    assert set_profile(csms, 0, profile(pid=2, kind="Recurring", recur="Daily",
                                        start=None)) == "Rejected"
    assert set_profile(csms, 1, profile(pid=2, purpose="ChargePointMaxProfile")) == "Rejected"
    with pytest.raises(CallErrorResult) as e:
        set_profile(csms, 9, profile(pid=2))
    assert e.value.code == "PropertyConstraintViolation"  # E3.39
    with pytest.raises(CallErrorResult) as e:  # E3.38: a bad enum
        set_profile(csms, 0, profile(pid=2, unit="X"), validate_outgoing=False)
    assert e.value.code == "PropertyConstraintViolation"
    # MaxChargingProfilesInstalled 10: the 11th is refused, a replacement is not
    for i in range(9):
        assert (
            set_profile(
                csms,
                0,
                profile(
                    pid=100 + i,
                    stack=i % 8,
                    purpose=("TxDefaultProfile", "ChargePointMaxProfile")[i // 8],
                    periods=((0, 20),),
                ),
            )
            == "Accepted"
        )
    assert set_profile(csms, 1, profile(pid=200, stack=3)) == "Rejected"
    assert set_profile(csms, 1, profile(pid=108, stack=3)) == "Accepted"


def test_remote_start_with_tx_profile(csms, charger_factory):
    ch = boot(charger_factory, csms)
    bad = profile(pid=30, purpose="TxDefaultProfile", kind="Relative", start=None)
    assert (
        csms.call(
            "CP1",
            "RemoteStartTransaction",
            {"idTag": "REMOTE", "connectorId": 1, "chargingProfile": bad},
        )["status"]
        == "Rejected"
    )
    bad = profile(pid=30, stack=9, purpose="TxProfile", kind="Relative", start=None)
    assert (
        csms.call(
            "CP1",
            "RemoteStartTransaction",
            {"idTag": "REMOTE", "connectorId": 1, "chargingProfile": bad},
        )["status"]
        == "Rejected"
    )
    txp = profile(pid=30, stack=2, purpose="TxProfile", kind="Relative", start=None,
                  periods=((0, 14),))
    m = csms.mark()
    assert (
        csms.call(
            "CP1",
            "RemoteStartTransaction",
            {"idTag": "REMOTE", "connectorId": 1, "chargingProfile": txp},
        )["status"]
        == "Accepted"
    )
    ch.ok("load", connector=1, amps=[6, 6, 6], volts=[230, 230, 230])
    ch.ok("plug_in", connector=1)
    st = csms.wait_for("StartTransaction", after=m, timeout=10)
    txid = csms.wait_for("StartTransaction", direction="out", after=m,
                         pred=lambda x: x.id == st.id).payload["transactionId"]
    wait_offered(ch, 14)
    assert limits(composite(csms, 1, 60)) == [(0, 14)]
    # E3.42: the same stackLevel with this transactionId replaces it
    assert set_profile(csms, 1, profile(pid=31, stack=2, purpose="TxProfile",
                                        periods=((0, 11),), txid=txid)) == "Accepted"
    wait_offered(ch, 11)
    assert clear(csms, id=30) == "Unknown"


# --- the limit on the pilot ---------------------------------------------------

def test_period_change_follows_time(csms, charger_factory):
    ch = boot(charger_factory, csms, OFFERED)
    # Relative: from the transaction start, 16 A for 4 s, then 8 A, then
    # after 8 s the schedule is over and a lower stack level's 20 A holds.
    assert set_profile(csms, 0, profile(pid=1, stack=0, periods=((0, 20),))) == "Accepted"
    assert set_profile(csms, 0, profile(pid=2, stack=1, kind="Relative", start=None,
                                        periods=((0, 16), (4, 8)), duration=8)) == "Accepted"
    t = time.time()
    start_tx(ch, csms)
    wait_offered(ch, 16, timeout=3)
    wait_offered(ch, 8, timeout=8)
    m = csms.mark()
    assert time.time() - t > 2.5  # 4 s after a start stamped in whole seconds
    assert offered_mv(csms, m) in (16.0, 8.0)
    assert offered_mv(csms, csms.mark()) == 8.0
    wait_offered(ch, 20, timeout=10)


def test_composite_keeps_number_phases(csms, charger_factory):
    # Interop: adjacent periods with the same limit but another numberPhases
    # are two periods of the composite schedule, not one.
    boot(charger_factory, csms)
    assert set_profile(csms, 0, profile(pid=1, start=0, periods=(
        (0, 16, 3), (600, 16, 1), (1200, 16, 1), (1800, 16, 3)))) == "Accepted"
    res = composite(csms, 1, 2400)
    got = [(q["limit"], q.get("numberPhases", 3))
           for q in res["chargingSchedule"]["chargingSchedulePeriod"]]
    assert got == [(16, 3), (16, 1), (16, 3)], res
    starts = [q["startPeriod"] for q in res["chargingSchedule"]["chargingSchedulePeriod"]]
    assert 590 < starts[1] <= 600 and starts[2] - starts[1] == 1200, starts


def test_watts_converted_and_composite_in_watts(csms, charger_factory):
    ch = boot(charger_factory, csms)
    # 4140 W over 3 phases at 230 V = 6 A per phase; 2300 W on 1 phase = 10 A
    assert set_profile(csms, 0, profile(pid=1, unit="W", periods=((0, 4140),))) == "Accepted"
    assert limits(composite(csms, 1, 60)) == [(0, 6)]
    assert limits(composite(csms, 1, 60, "W")) == [(0, 4140)]
    start_tx(ch, csms)
    wait_offered(ch, 6)
    assert set_profile(csms, 1, profile(pid=2, stack=1, unit="W",
                                        periods=((0, 2300, 1),))) == "Accepted"
    wait_offered(ch, 10)
    res = composite(csms, 1, 60, "W")
    assert limits(res) == [(0, 2300)]
    assert res["chargingSchedule"]["chargingSchedulePeriod"][0]["numberPhases"] == 1


def test_limit_below_6A_suspends_evse(csms, charger_factory):
    ch = boot(charger_factory, csms)
    assert set_profile(csms, 0, profile(pid=1, periods=((0, 16),))) == "Accepted"
    start_tx(ch, csms)
    wait_offered(ch, 16)
    m = csms.mark()
    assert set_profile(csms, 0, profile(pid=2, stack=1, periods=((0, 5.9),))) == "Accepted"
    csms.wait_for("StatusNotification", after=m, timeout=5,
                  pred=lambda x: x.payload["status"] == "SuspendedEVSE")
    c = ch.wait_state(lambda s: not s["connectors"][0]["relay"], what="relay open")["connectors"][
        0
    ]
    assert c["duty"] == 100.0 and c["offered_amps"] == 0 and c["status"] == "SuspendedEVSE"
    m = csms.mark()
    assert clear(csms, stackLevel=1) == "Accepted"
    csms.wait_for("StatusNotification", after=m, timeout=5,
                  pred=lambda x: x.payload["status"] == "Charging")
    wait_offered(ch, 16)
    ch.wait_state(lambda s: s["connectors"][0]["relay"], what="relay closed")
