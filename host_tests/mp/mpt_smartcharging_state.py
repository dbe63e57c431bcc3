# The smart-charging state (model/smartcharging.py) and its CALLs
# (operations/smartcharging.py) over the real connectors: limits applied,
# TxProfile ended with its transaction, profiles kept in flash, the
# GetCompositeSchedule answer. The schedule maths has mpt_chargingprofiles.py.
from fakes import T0, Rig, init_clock

from mpocpp.model.smartcharging import SmartCharging
from mpocpp.operations.smartcharging import SmartCharging as Handlers
from mpocpp.protocol.rpc import Reply


def _profile(pid, purpose, limit, stack=0, kind="Absolute", start="2025-12-31T00:00:00Z",
             periods=None, txid=None):
    sched = {"chargingRateUnit": "A",
             "chargingSchedulePeriod": periods or [{"startPeriod": 0, "limit": limit}]}
    if kind != "Relative":
        sched["startSchedule"] = start
    p = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
         "chargingProfileKind": kind, "chargingSchedule": sched}
    if txid is not None:
        p["transactionId"] = txid
    return p


def _rig(n=2):
    r = Rig(n=n)
    s = SmartCharging(r.cfg, r.cons, 230, 3, 32)
    s.load()
    return r, s, Handlers(r.cons, r.sessions, s)


def _set(h, cid, prof):
    return h.SetChargingProfile({"connectorId": cid, "csChargingProfiles": prof})["status"]


async def test_limits_applied_and_tx_profile_ends_with_its_transaction():
    r, s, h = _rig()
    assert _set(h, 0, _profile(1, "ChargePointMaxProfile", 20)) == "Accepted"
    assert _set(h, 1, _profile(2, "TxDefaultProfile", 16)) == "Accepted"
    assert r.con(1).limit_a == 16
    c = await r.start("T1", cid=1)
    assert r.hw[1].pilot.offered == 16
    assert _set(h, 1, _profile(3, "TxProfile", 4, stack=1, kind="Relative")) == "Accepted"
    assert c.limit_a == 4 and c.status == "SuspendedEVSE"  # below 6 A: no energy
    assert not r.hw[1].relay.closed
    assert s.set.clear(None, 1, s.chp.TX, None)  # what OnDemand.tx_stopped does
    s.apply()
    assert c.limit_a == 16 and c.status == "Charging"


def test_rejections():
    r, s, h = _rig()
    assert _set(h, 1, _profile(1, "ChargePointMaxProfile", 20)) == "Rejected"  # only on 0
    assert _set(h, 0, _profile(1, "TxProfile", 20)) == "Rejected"
    assert _set(h, 1, _profile(1, "TxProfile", 20)) == "Rejected"  # no transaction
    try:
        _set(h, 5, _profile(1, "TxDefaultProfile", 20))
    except Reply as e:
        assert e.code == "PropertyConstraintViolation"  # E3.39
    else:
        raise AssertionError("no CALLERROR")
    assert _set(h, 1, _profile(9, "TxDefaultProfile", 20, stack=9)) == "Rejected"  # > 8
    for i in range(10):  # stack levels 0-4 on each connector
        assert _set(h, 1 + i // 5, _profile(10 + i, "TxDefaultProfile", 20, stack=i % 5)) == \
            "Accepted", i
    # an 11th: over MaxChargingProfilesInstalled (10); a replacement is fine
    assert _set(h, 2, _profile(99, "TxDefaultProfile", 20, stack=7)) == "Rejected"
    assert _set(h, 2, _profile(19, "TxDefaultProfile", 8, stack=4)) == "Accepted"


def test_kept_in_flash_and_cleared():
    r, s, h = _rig()
    assert _set(h, 0, _profile(1, "ChargePointMaxProfile", 20)) == "Accepted"
    assert _set(h, 2, _profile(2, "TxDefaultProfile", 12)) == "Accepted"
    s2 = SmartCharging(r.cfg, r.cons, 230, 3, 32)
    s2.load()
    assert sorted(p.id for p in s2.set.items) == [1, 2]
    assert h.ClearChargingProfile({"id": 2})["status"] == "Accepted"
    assert h.ClearChargingProfile({"id": 2})["status"] == "Unknown"
    s3 = SmartCharging(r.cfg, r.cons, 230, 3, 32)
    s3.load()
    assert [p.id for p in s3.set.items] == [1]


def test_composite_schedule_answer():
    init_clock(T0)
    r, s, h = _rig()
    _set(h, 1, _profile(2, "TxDefaultProfile", 16, start="2026-01-01T00:00:00Z",
                        periods=[{"startPeriod": 0, "limit": 16},
                                 {"startPeriod": 600, "limit": 10}]))
    res = h.GetCompositeSchedule({"connectorId": 1, "duration": 1200})
    assert res["status"] == "Accepted" and res["scheduleStart"] == "2026-01-01T00:00:00Z"
    sched = res["chargingSchedule"]
    assert sched["duration"] == 1200 and sched["chargingRateUnit"] == "A"
    lims = [(p["startPeriod"], p["limit"]) for p in sched["chargingSchedulePeriod"]]
    assert lims == [(0, 16), (600, 10)], lims
    res = h.GetCompositeSchedule({"connectorId": 1, "duration": 600, "chargingRateUnit": "W"})
    assert res["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 16 * 230 * 3
    assert h.GetCompositeSchedule({"connectorId": 7, "duration": 60})["status"] == "Rejected"


async def test_ondemand_lets_the_state_go_when_idle_and_reads_it_for_the_next_session():
    # ondemand.py: the state goes when the connectors have been idle a while
    # (Sessions calls idle()); the next transaction reads the stored
    # profiles again, and its limit is the TxDefaultProfile's.
    import sys
    from mpocpp.ondemand import OnDemand
    r = Rig(n=1)
    od = OnDemand(r.cfg, None, r.cons, r.queue, {})
    h = Handlers(r.cons, r.sessions, od.use_smart())
    assert _set(h, 1, _profile(2, "TxDefaultProfile", 10)) == "Accepted"
    assert od.held()
    od.idle()
    assert od.smart is None and not od.held()
    assert "mpocpp.model.smartcharging" not in sys.modules
    r.con(1).limit_a = None  # (whatever the connector kept)
    c = await r.start("T1", cid=1)
    od.tx_started(c)  # (the charger's sessions call it; the rig's fake hooks do not)
    assert od.smart is not None and c.limit_a == 10 and r.hw[1].pilot.offered == 10
