"""Behaviours an independent CSMS test suite checks, each verified end to end
against the bench CSMS: StopTransaction always carries `reason` (Local
included), the parentIdTag of StartTransaction.conf makes the transaction's
group, and the clock keeps the sub-seconds of the CSMS's currentTime.
(SupportedFeatureProfiles: test_profiles.py; numberPhases in composite
schedules: test_smartcharging.py.)"""
import datetime
import time

import pytest

from test_sessions import boot, conf, no_call, start, wait_sn, wait_stop
from test_smartcharging import composite, limits, set_profile


def test_stop_transaction_always_has_reason(csms, charger_factory):
    ch = boot(charger_factory, csms)
    m0 = csms.mark()
    # The same card: Local, sent (the spec lets it be omitted; validators
    # and central systems expect it).
    txid = start(ch, csms, 1, "TAG1")
    m = csms.mark()
    ch.ok("swipe", idTag="TAG1")
    stop = wait_stop(csms, m, txid)
    assert stop.payload["reason"] == "Local"
    ch.ok("plug_out", connector=1)
    wait_sn(csms, 1, "Available", m)
    # RemoteStopTransaction: Remote.
    txid = start(ch, csms, 1, "TAG1")
    m = csms.mark()
    assert csms.call("CP1", "RemoteStopTransaction", {"transactionId": txid}) == \
        {"status": "Accepted"}
    assert wait_stop(csms, m, txid).payload["reason"] == "Remote"
    ch.ok("plug_out", connector=1)
    wait_sn(csms, 1, "Available", m)
    # Unplugged by the EV side: EVDisconnected.
    txid = start(ch, csms, 1, "TAG1")
    m = csms.mark()
    ch.ok("plug_out", connector=1)
    assert wait_stop(csms, m, txid).payload["reason"] == "EVDisconnected"
    stops = csms.calls("StopTransaction", after=m0)
    assert len(stops) == 3 and all("reason" in s.payload for s in stops)


def test_parent_id_tag_from_start_transaction_conf(csms, charger_factory):
    # Authorize gives TAG1 no parentIdTag; the StartTransaction.conf does:
    # GROUP1 becomes the transaction's group, and TAG2 of GROUP1 stops it
    # while TAG3 of another group does not.
    groups = {"TAG2": "GROUP1", "TAG3": "GROUP2"}

    def authorize(tag):
        p = groups.get(tag)
        return {"status": "Accepted", "parentIdTag": p} if p else "Accepted"

    def start_conf(cp_id, payload):
        res = csms.default_reply("StartTransaction", cp_id, payload)
        res["idTagInfo"] = {"status": "Accepted", "parentIdTag": "GROUP1"}
        return res

    csms.authorize = authorize
    csms.set_handler("StartTransaction", start_conf)
    ch = boot(charger_factory, csms)
    m = csms.mark()
    txid = start(ch, csms, 1, "TAG1")
    assert "parentIdTag" not in conf(csms, "Authorize", m).payload["idTagInfo"]
    m = csms.mark()
    ch.ok("swipe", idTag="TAG3")
    conf(csms, "Authorize", m)
    no_call(csms, "StopTransaction", m, wait=1.0)
    assert ch.connector(1)["status"] == "Charging"
    m = csms.mark()
    ch.ok("swipe", idTag="TAG2")
    stop = wait_stop(csms, m, txid)
    assert stop.payload["idTag"] == "TAG2" and stop.payload["reason"] == "Local"
    wait_sn(csms, 1, "Finishing", m)


class _CsmsTime:
    """The CSMS's clock: the host's, shifted so that the first currentTime
    it gives (a BootNotification's or a Heartbeat's) is 999 ms past a whole
    second. A charger that dropped the milliseconds would run almost a
    second late."""

    def __init__(self):
        self.shift = None

    def __call__(self):
        t = time.time()
        if self.shift is None:
            self.shift = int(t) + 0.999 - t
        return t + self.shift


@pytest.mark.parametrize("source", ["BootNotification", "Heartbeat"])
def test_clock_keeps_sub_seconds(csms, charger_factory, source):
    # A schedule starting "now" by the CSMS's clock (whole seconds, as the
    # CSMS sends them) covers the whole composite schedule: no one-second
    # period at the hardware limit before it. The clock is set from the
    # BootNotification.conf, or later from a Heartbeat.conf.
    m = 0
    if source == "BootNotification":
        csms.clock = _CsmsTime()
        boot(charger_factory, csms)
    else:
        boot(charger_factory, csms)
        csms.clock = _CsmsTime()
        m = csms.mark()
        assert csms.call("CP1", "TriggerMessage", {"requestedMessage": "Heartbeat"}) == \
            {"status": "Accepted"}
        csms.wait_for("Heartbeat", after=m)
    assert conf(csms, source, m).payload["currentTime"].endswith(".999Z")
    # Ask in the middle of a CSMS second: the few milliseconds the answer
    # took to arrive do not matter then.
    while not 0.3 <= csms.clock() % 1 < 0.6:
        time.sleep(0.01)
    now = int(csms.clock())
    begins = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    prof = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {"chargingRateUnit": "A",
                                 "startSchedule": begins.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10}]}}
    assert set_profile(csms, 0, prof) == "Accepted"
    res = composite(csms, 1, 60)
    assert limits(res) == [(0, 10)], res
    begin = datetime.datetime.fromisoformat(res["scheduleStart"].replace("Z", "+00:00"))
    assert begin.timestamp() >= now
