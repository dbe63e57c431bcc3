# A charging profile as a message carries it (SetChargingProfile,
# RemoteStartTransaction) -> chargingprofiles.Profile, checked against the
# configured limits. Loaded for the message and let go after
# (smartcharging.py): the profiles in flash are records, not JSON.
from array import array

from mpocpp.model import chargingprofiles as chp


def parse(cid, d, now, max_stack, max_periods, units="Current,Power"):
    # An OCPP csChargingProfiles / chargingProfile object -> Profile.
    # Raises ValueError(reason) for everything that answers Rejected. `now`
    # fills in the startSchedule of an Absolute profile that has none (it
    # starts when received). `units` is ChargingScheduleAllowedChargingRateUnit.
    from mpocpp.util import timeparse
    try:
        purpose = chp.PURPOSES.index(d["chargingProfilePurpose"])
        kind = chp.KINDS.index(d["chargingProfileKind"])
    except (ValueError, KeyError):
        raise ValueError("unknown purpose or kind")
    stack = d.get("stackLevel")
    if type(stack) is not int or stack < 0 or stack > max_stack:
        raise ValueError("stackLevel %r outside 0..%d" % (stack, max_stack))
    pid = d.get("chargingProfileId")
    if type(pid) is not int:
        raise ValueError("chargingProfileId missing")
    s = d.get("chargingSchedule")
    if not isinstance(s, dict):
        raise ValueError("chargingSchedule missing")
    unit = s.get("chargingRateUnit")
    if unit == "A":
        unit_w = False
        if "Current" not in units:
            raise ValueError("unit A not allowed")
    elif unit == "W":
        unit_w = True
        if "Power" not in units:
            raise ValueError("unit W not allowed")
    else:
        raise ValueError("chargingRateUnit %r" % (unit,))
    ps = s.get("chargingSchedulePeriod")
    if not isinstance(ps, list) or not ps:
        raise ValueError("no chargingSchedulePeriod")
    if len(ps) > max_periods:
        raise ValueError("%d periods, at most %d" % (len(ps), max_periods))
    periods = array("i", bytearray(12 * len(ps)))  # 3 x int32 per period
    last = -1
    i = 0
    for q in ps:
        sp = q.get("startPeriod") if isinstance(q, dict) else None
        lim = q.get("limit") if isinstance(q, dict) else None
        ph = q.get("numberPhases", 3) if isinstance(q, dict) else None
        if type(sp) is not int or sp < 0 or (i == 0 and sp != 0) or sp <= last:
            raise ValueError("startPeriod must start at 0 and ascend")
        if type(lim) not in (int, float) or not 0 <= lim < 200000000:
            raise ValueError("bad limit %r" % (lim,))
        if type(ph) is not int or not 1 <= ph <= 3:
            raise ValueError("numberPhases %r" % (ph,))
        periods[i] = sp
        periods[i + 1] = int(lim * 10 + 0.5)
        periods[i + 2] = ph
        last = sp
        i += 3
    dur = s.get("duration")
    if dur is not None and (type(dur) is not int or dur < 0):
        raise ValueError("bad duration")
    start = timeparse.optional(s, "startSchedule")
    recur = 0
    if kind == chp.RECURRING:
        if start is None:
            raise ValueError("Recurring without startSchedule")
        try:
            recur = chp.RECURRENCY.index(d.get("recurrencyKind"))
        except ValueError:
            raise ValueError("Recurring without recurrencyKind")
    elif kind == chp.ABSOLUTE and start is None:
        start = now  # no start given: from receipt
    vf = timeparse.optional(d, "validFrom")
    vt = timeparse.optional(d, "validTo")
    if vf is not None and vt is not None and vt <= vf:
        raise ValueError("validTo not after validFrom")
    txid = d.get("transactionId") if purpose == chp.TX else None
    return chp.Profile(pid, cid, stack, purpose, kind, recur, vf, vt, start, dur, unit_w,
                       periods, txid)
