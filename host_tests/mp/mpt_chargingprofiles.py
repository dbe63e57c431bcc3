# Schedule maths of the SmartCharging profile (chargingprofiles.py), inside
# MicroPython: parsing and the Rejected rules, Absolute / Relative /
# Recurring starts, stack levels and their fall-back, purposes combined,
# ClearChargingProfile matching, W <-> A, composite schedules.
from mpocpp.model import chargingprofiles as chp
from mpocpp.model import profileparse
from mpocpp.util import clock

T0 = 1795046400  # 2026-11-19T00:00:00Z, a Thursday
MAXS = 8
MAXP = 24


def prof(pid=1, stack=0, purpose="TxDefaultProfile", kind="Absolute", periods=((0, 16),),
         unit="A", start=T0, duration=None, recur=None, vf=None, vt=None, txid=None):
    s = {"chargingRateUnit": unit, "chargingSchedulePeriod": []}
    for q in periods:
        d = {"startPeriod": q[0], "limit": q[1]}
        if len(q) > 2:
            d["numberPhases"] = q[2]
        s["chargingSchedulePeriod"].append(d)
    if start is not None:
        s["startSchedule"] = clock.iso(start)
    if duration is not None:
        s["duration"] = duration
    d = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
         "chargingProfileKind": kind, "chargingSchedule": s}
    if recur:
        d["recurrencyKind"] = recur
    if vf is not None:
        d["validFrom"] = clock.iso(vf)
    if vt is not None:
        d["validTo"] = clock.iso(vt)
    if txid is not None:
        d["transactionId"] = txid
    return d


def parse(d, cid=0, now=T0):
    return profileparse.parse(cid, d, now, MAXS, MAXP)


def rejected(d, cid=0, units="Current,Power"):
    try:
        profileparse.parse(cid, d, T0, MAXS, MAXP, units)
    except ValueError as e:
        return str(e)
    raise AssertionError("accepted: %r" % (d,))


def pset(*profiles, n=1):
    s = chp.ProfileSet(n, 230, 3, 32)
    for cid, d in profiles:
        s.install(parse(d, cid))
    return s


def test_parse_and_record_roundtrip():
    p = parse(prof(periods=((0, 16), (600, 7.3, 1)), duration=3600, vf=T0 - 5, vt=T0 + 99))
    assert p.periods[1] == 160 and p.periods[4] == 73 and p.periods[5] == 1
    assert p.periods[2] == 3  # numberPhases defaults to 3
    q = chp.from_rec(p.rec())
    assert q.rec() == p.rec()
    # Absolute without startSchedule: from receipt
    assert parse(prof(start=None), now=T0 + 42).start == T0 + 42
    for bad in ([], [1, 2], [1, 0, 0, 5, 0, 0, None, None, None, None, 0, [0, 1], None],
                [1, 0, 0, 0, 0, 0, None, None, None, None, 0, [0, 10, 3], None]):
        try:
            chp.from_rec(bad)
        except (ValueError, TypeError):
            continue
        raise AssertionError(bad)


def test_rejected_rules():
    assert "stackLevel" in rejected(prof(stack=MAXS + 1))
    assert parse(prof(stack=MAXS)).stack == MAXS
    assert "stackLevel" in rejected(prof(stack=-1))
    many = tuple((i * 60, 10) for i in range(MAXP + 1))
    assert "periods" in rejected(prof(periods=many))
    assert len(parse(prof(periods=many[:MAXP])).periods) == 3 * MAXP
    assert "startPeriod" in rejected(prof(periods=((5, 10),)))
    assert "startPeriod" in rejected(prof(periods=((0, 10), (60, 8), (60, 7))))
    assert "startPeriod" in rejected(prof(periods=((0, 10), (60, 8), (30, 7))))
    assert "startSchedule" in rejected(prof(kind="Recurring", recur="Daily", start=None))
    assert "recurrencyKind" in rejected(prof(kind="Recurring"))
    assert "numberPhases" in rejected(prof(periods=((0, 10, 4),)))
    assert "limit" in rejected(prof(periods=((0, -1),)))
    assert "unit" in rejected(prof(unit="W"), units="Current")
    assert "validTo" in rejected(prof(vf=T0, vt=T0))
    assert "purpose" in rejected(prof(purpose="Bogus"))
    d = prof()
    d["chargingSchedule"]["startSchedule"] = "yesterday"
    assert "startSchedule" in rejected(d)
    assert parse(prof(purpose="TxProfile", txid=7)).txid == 7
    assert parse(prof(txid=7)).txid is None  # only a TxProfile carries one


def test_absolute_periods_and_duration():
    p = parse(prof(periods=((0, 16), (600, 10), (1200, 6.5)), duration=1800, start=T0 + 100))
    assert chp.at(p, T0, None, 230) == (None, 0, T0 + 100)  # not started yet
    assert chp.at(p, T0 + 100, None, 230) == (16, 3, T0 + 700)
    assert chp.at(p, T0 + 699, None, 230) == (16, 3, T0 + 700)
    assert chp.at(p, T0 + 700, None, 230) == (10, 3, T0 + 1300)
    assert chp.at(p, T0 + 1300, None, 230) == (6.5, 3, T0 + 1900)  # until duration
    assert chp.at(p, T0 + 1900, None, 230)[0] is None  # over
    open_ = parse(prof(periods=((0, 16), (600, 10))))
    assert chp.at(open_, T0 + 10 ** 6, None, 230) == (10, 3, chp.FOREVER)  # last period holds


def test_relative_follows_transaction_start():
    p = parse(prof(kind="Relative", start=None, periods=((0, 6), (120, 20)), duration=600))
    assert chp.at(p, T0, None, 230)[0] is None  # no transaction
    assert chp.at(p, T0 + 50, T0, 230) == (6, 3, T0 + 120)
    assert chp.at(p, T0 + 130, T0, 230) == (20, 3, T0 + 600)
    assert chp.at(p, T0 + 600, T0, 230)[0] is None


def test_recurring_daily_spec_example_in_watts():
    # OCPP 1.6 §3.13.7: 11 kW, 6 kW from 08:00 to 20:00, every day.
    p = parse(prof(kind="Recurring", recur="Daily", unit="W", duration=86400,
                   start=T0 - 3 * 86400,
                   periods=((0, 11000, 3), (28800, 6000, 3), (72000, 11000, 3))))
    a, ph, nx = chp.at(p, T0 + 9 * 3600, None, 230)  # 09:00
    assert ph == 3 and abs(a - 6000 / 690) < 1e-6 and nx == T0 + 20 * 3600
    a, ph, nx = chp.at(p, T0 + 21 * 3600, None, 230)
    assert abs(a - 11000 / 690) < 1e-6 and nx == T0 + 86400  # next recurrence
    a, _, _ = chp.at(p, T0 + 86400 + 8 * 3600, None, 230)  # tomorrow 08:00
    assert abs(a - 6000 / 690) < 1e-6
    assert chp.at(p, T0 - 4 * 86400, None, 230)[0] is None  # before startSchedule
    # one phase: all of the power on it
    q = parse(prof(unit="W", periods=((0, 2300, 1),)))
    assert chp.at(q, T0, None, 230)[0] == 10


def test_recurring_weekly_and_cut_at_recurrence():
    p = parse(prof(kind="Recurring", recur="Weekly", start=T0, duration=3600,
                   periods=((0, 8),)))
    assert chp.at(p, T0 + 7 * 86400 + 60, None, 230)[0] == 8
    a, _, nx = chp.at(p, T0 + 2 * 86400, None, 230)
    assert a is None and nx == T0 + 7 * 86400
    # E3.44: periods beyond the recurrence are never executed
    q = parse(prof(kind="Recurring", recur="Daily", start=T0, duration=200000,
                   periods=((0, 8), (90000, 20))))
    assert chp.at(q, T0 + 86400 + 3600 * 2, None, 230)[0] == 8


def test_valid_from_to():
    p = parse(prof(vf=T0 + 100, vt=T0 + 200, start=T0 - 1000))
    assert chp.at(p, T0, None, 230) == (None, 0, T0 + 100)
    assert chp.at(p, T0 + 150, None, 230) == (16, 3, T0 + 200)
    assert chp.at(p, T0 + 200, None, 230)[0] is None


def test_highest_stack_wins_then_falls_back():
    s = pset((0, prof(pid=1, stack=0, periods=((0, 16),))),
             (0, prof(pid=2, stack=3, periods=((0, 8),), duration=600)))
    assert s.limit(1, T0 + 10, None) == (8, 3)
    assert s.next == T0 + 600
    assert s.limit(1, T0 + 600, None) == (16, 3)  # the lower stack after the duration
    s.install(parse(prof(pid=3, stack=5, periods=((0, 20),), start=T0 + 100)))
    assert s.limit(1, T0 + 10, None) == (8, 3)  # 5 not started yet
    assert s.limit(1, T0 + 100, None) == (20, 3)  # higher, even though less strict


def test_purposes_combined():
    s = pset((0, prof(pid=1, purpose="ChargePointMaxProfile", periods=((0, 20),))),
             (0, prof(pid=2, periods=((0, 16),))),
             (1, prof(pid=3, purpose="TxProfile", periods=((0, 25),))), n=2)
    assert s.limit(1, T0, None) == (20, 3)  # TxProfile 25, capped by the max
    assert s.limit(2, T0, None) == (16, 3)  # TxDefault on 0 for all connectors
    assert s.limit(2, T0, None, share=2) == (10, 3)  # the max shared by two
    # a TxDefault on connector 2 replaces the one on 0 there (same stack)
    s.install(parse(prof(pid=4, periods=((0, 12),)), 2))
    assert s.limit(2, T0, None) == (12, 3) and s.limit(1, T0, None) == (20, 3)
    assert len(s) == 4
    # a higher stack on 0 still wins over a lower one on 2
    s.install(parse(prof(pid=5, stack=1, periods=((0, 14),))))
    assert s.limit(2, T0, None) == (14, 3)
    # no profile at all for connector 3 of a 3-connector set
    assert chp.ProfileSet(3).limit(3, T0, None) == (None, 0)


def test_install_replaces_by_id_or_stack_purpose_connector():
    s = pset((0, prof(pid=1, stack=0)), (0, prof(pid=2, stack=1)))
    gone = s.install(parse(prof(pid=1, stack=4)))
    assert [q.id for q in gone] == [1] and len(s) == 2
    gone = s.install(parse(prof(pid=9, stack=1)))  # same stack + purpose on 0
    assert [q.id for q in gone] == [2] and sorted(q.id for q in s.items) == [1, 9]
    assert s.install(parse(prof(pid=10, stack=1), 1)) == []  # other connector: stacked
    assert s.would_hold(parse(prof(pid=11, stack=7))) == 4
    assert s.would_hold(parse(prof(pid=10, stack=1), 1)) == 3


def test_clear_matching():
    s = pset((0, prof(pid=1, stack=0)), (1, prof(pid=2, stack=1)),
             (0, prof(pid=3, stack=1, purpose="ChargePointMaxProfile")),
             (1, prof(pid=4, stack=2, purpose="TxProfile")))
    assert s.clear(pid=99) == []
    # id given: only that one, whatever else is given
    assert [q.id for q in s.clear(pid=2, cid=0, purpose=chp.CP_MAX)] == [2]
    assert s.clear(cid=1, purpose=chp.TX_DEFAULT) == []  # AND: nothing matches both
    assert [q.id for q in s.clear(stack=1, purpose=chp.CP_MAX)] == [3]
    assert [q.id for q in s.clear(cid=1)] == [4]
    assert [q.id for q in s.clear()] == [1] and len(s) == 0


def test_total_for_connector_zero():
    s = pset((0, prof(pid=1, periods=((0, 10),))), n=2)
    assert s.total(T0, [None, None, None]) == (20, 3)  # 10 + 10
    s.install(parse(prof(pid=2, purpose="ChargePointMaxProfile", periods=((0, 16),))))
    assert s.total(T0, [None, None, None]) == (16, 3)
    assert chp.ProfileSet(2).total(T0, [None, None, None]) == (None, 3)


def test_composite_periods_units_and_hardware():
    s = pset((0, prof(pid=1, periods=((0, 16), (600, 10)), duration=1200, start=T0 - 300)),
             (0, prof(pid=2, purpose="ChargePointMaxProfile", periods=((0, 12),),
                      start=T0 + 500, duration=60)))
    out = s.composite(1, T0, 3600, [T0, T0])
    assert out == [{"startPeriod": 0, "limit": 16, "numberPhases": 3},
                   {"startPeriod": 300, "limit": 10, "numberPhases": 3},
                   {"startPeriod": 900, "limit": 32, "numberPhases": 3}], out
    s.install(parse(prof(pid=2, purpose="ChargePointMaxProfile", periods=((0, 12),),
                         start=T0 + 100, duration=60)))
    out = s.composite(1, T0, 3600, [T0, T0])
    assert [(q["startPeriod"], q["limit"]) for q in out] == \
        [(0, 16), (100, 12), (160, 16), (300, 10), (900, 32)], out
    w = s.composite(1, T0, 200, [T0, T0], unit_w=True)
    assert [(q["startPeriod"], q["limit"]) for q in w] == [(0, 11040), (100, 8280), (160, 11040)]
    # nothing installed: the hardware limit over the whole duration
    assert chp.ProfileSet(1).composite(1, T0, 60, [T0, T0]) == \
        [{"startPeriod": 0, "limit": 32, "numberPhases": 3}]


def test_composite_of_a_huge_duration_ends():
    # Found by the fuzzer: a duration past FOREVER (2100) stepped one second
    # at a time from there: the charger hung in GetCompositeSchedule.
    s = pset((0, prof(pid=1, periods=((0, 16), (600, 10)), duration=1200, start=T0)))
    for dur in (10 ** 35, 2 ** 63, chp.FOREVER):
        out = s.composite(1, T0, dur, [T0, T0])
        assert [(q["startPeriod"], q["limit"]) for q in out] == [(0, 16), (600, 10), (1200, 32)]
        assert chp.ProfileSet(1).composite(1, T0, dur, [T0, T0]) == \
            [{"startPeriod": 0, "limit": 32, "numberPhases": 3}]
    # Relative: from the transaction start (or, without one, from now)
    r = pset((1, prof(pid=5, kind="Relative", start=None, periods=((0, 6), (60, 20)))))
    assert [(q["startPeriod"], q["limit"]) for q in r.composite(1, T0, 600, [T0, T0 - 30])] \
        == [(0, 6), (30, 20)]
    # the 0.1 step, never above the limit
    r = pset((0, prof(pid=6, unit="W", periods=((0, 11000),))))
    assert r.composite(1, T0, 60, [T0, T0])[0]["limit"] == 15.9


def test_composite_keeps_number_phases():
    # The same limit on another number of phases is another period.
    s = pset((0, prof(pid=1, periods=((0, 16), (60, 16, 1), (120, 16, 1), (180, 16)),
                      start=T0)))
    out = s.composite(1, T0, 240, [T0, T0])
    assert out == [{"startPeriod": 0, "limit": 16, "numberPhases": 3},
                   {"startPeriod": 60, "limit": 16, "numberPhases": 1},
                   {"startPeriod": 180, "limit": 16, "numberPhases": 3}], out


def test_composite_bounded_steps():
    # A daily profile with 24 periods over a long duration stops at the cap.
    s = pset((0, prof(kind="Recurring", recur="Daily", start=T0,
                      periods=tuple((i * 3600, 6 + i % 2) for i in range(24)))))
    out = s.composite(1, T0, 30 * 86400, [T0, T0])
    assert len(out) == 96 and out[1]["startPeriod"] == 3600
