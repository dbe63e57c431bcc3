# Smart-charging schedule maths (OCPP 1.6 §3.13, errata E3.7, E3.8, E3.34,
# E3.43, E3.44): a charging profile's validity, its schedule start
# (Absolute / Relative / Recurring), the limit it imposes at an instant, and
# the composite of the purposes. Pure: no configuration, clock or charge
# point here, so the host tests drive it with plain numbers; smartcharging.py
# feeds it. Limits come out in A per phase. A profile from a message is
# read by profileparse.py.
from array import array
from micropython import const

CP_MAX = const(0)  # ChargePointMaxProfile
TX_DEFAULT = const(1)  # TxDefaultProfile
TX = const(2)  # TxProfile
PURPOSES = ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")

ABSOLUTE = const(0)
RECURRING = const(1)
_RELATIVE = const(2)
KINDS = ("Absolute", "Recurring", "Relative")
RECURRENCY = ("Daily", "Weekly")
_PERIOD = (86400, 604800)  # seconds of one Daily / Weekly recurrence

# 2100-01-01: "no change ahead" (unix times are big ints on 32-bit ports anyway)
FOREVER = 4102444800
_MAX_STEPS = const(96)  # composite periods reported at most

# Each schedule period is three ints in Profile.periods: startPeriod (s),
# limit x 10 (the 0.1 step of the spec, so no float objects per period),
# numberPhases.
_P_START = const(0)
_P_LIMIT = const(1)
_P_PHASES = const(2)


class Profile:
    def __init__(self, pid, cid, stack, purpose, kind, recur, valid_from, valid_to,
                 start, duration, unit_w, periods, txid=None):
        self.id = pid
        self.cid = cid  # connectorId it was set on (0 = the charge point)
        self.stack = stack
        self.purpose = purpose  # CP_MAX / TX_DEFAULT / TX
        self.kind = kind  # ABSOLUTE / RECURRING / _RELATIVE
        self.recur = recur  # 0 Daily, 1 Weekly (Recurring only)
        self.valid_from = valid_from  # unix s or None
        self.valid_to = valid_to
        self.start = start  # startSchedule, unix s or None
        self.duration = duration  # s or None (open)
        self.unit_w = unit_w  # True: limits in W, else A
        self.periods = periods  # array('i'): start, limit x 10, phases, ...
        self.txid = txid  # TxProfile: the transactionId given, if any

    def rec(self):
        # A JSON-friendly list for the flash file.
        return [self.id, self.cid, self.stack, self.purpose, self.kind, self.recur,
                self.valid_from, self.valid_to, self.start, self.duration,
                1 if self.unit_w else 0, list(self.periods), self.txid]


def from_rec(r):
    # The inverse of Profile.rec(); ValueError/TypeError on a damaged record.
    if not isinstance(r, list) or len(r) != 13 or not isinstance(r[11], list):
        raise ValueError("bad profile record")
    p = Profile(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                bool(r[10]), array("i", r[11]), r[12])
    if len(p.periods) % 3 or not p.periods or p.purpose not in (0, 1, 2) \
            or p.kind not in (0, 1, 2) or p.recur not in (0, 1) \
            or (p.kind != _RELATIVE and type(p.start) is not int):
        raise ValueError("bad profile record")
    return p


def at(p, t, rel, volts):
    # The limit profile `p` imposes at unix time t, as (amps or None when it
    # does not apply now, numberPhases, next): `next` is the first time
    # after t at which that answer may change. `rel` is the start of a
    # Relative schedule (the transaction start), None = not running.
    nxt = FOREVER
    vf = p.valid_from
    if vf is not None and t < vf:
        return None, 0, vf
    vt = p.valid_to
    if vt is not None:
        if t >= vt:
            return None, 0, FOREVER
        nxt = vt
    kind = p.kind
    dur = p.duration
    if kind == _RELATIVE:
        s = rel
        if s is None:
            return None, 0, nxt
    else:
        s = p.start
    if t < s:
        return None, 0, s if s < nxt else nxt
    if kind == RECURRING:
        per = _PERIOD[p.recur]
        s += (t - s) // per * per
        # E3.43/E3.44: a schedule longer than the recurrence is cut there;
        # without a duration it lasts until the next recurrence.
        if dur is None or dur > per:
            dur = per
        if s + per < nxt:
            nxt = s + per
    off = t - s
    if dur is not None:
        if off >= dur:
            return None, 0, nxt  # over: the lower stack level (E3.43)
        if s + dur < nxt:
            nxt = s + dur
    ps = p.periods
    n = len(ps)
    i = 0
    while i + 3 < n and ps[i + 3] <= off:
        i += 3
    if i + 3 < n and s + ps[i + 3] < nxt:
        nxt = s + ps[i + 3]
    ph = ps[i + _P_PHASES]
    lim = ps[i + _P_LIMIT] / 10
    if p.unit_w:
        # W is the total over the phases (§7.12, E3.34: numberPhases as given).
        lim = lim / (volts * ph)
    return lim, ph, nxt


class ProfileSet:
    # The installed profiles of one charge point and their composite.
    # volts: the nominal line voltage for W <-> A; phases: what the hardware
    # switches; hw_amps: its per-connector current limit.
    def __init__(self, connectors, volts=230, phases=3, hw_amps=32):
        self.items = []
        self.n = connectors
        self.volts = volts
        self.phases = phases
        self.hw_amps = hw_amps
        self.next = FOREVER  # set by every evaluation: the earliest change ahead

    def __len__(self):
        return len(self.items)

    def install(self, p):
        # Replace by chargingProfileId, or by (stackLevel, purpose, connector)
        # (§3.13.2, §5.16.3); returns the replaced profiles.
        keep = []
        gone = []
        for q in self.items:
            if q.id == p.id or (q.stack == p.stack and q.purpose == p.purpose and q.cid == p.cid):
                gone.append(q)
            else:
                keep.append(q)
        keep.append(p)
        self.items = keep
        return gone

    def would_hold(self, p):
        # How many profiles there would be after install(p).
        n = 1
        for q in self.items:
            if q.id != p.id and not (q.stack == p.stack and q.purpose == p.purpose
                                     and q.cid == p.cid):
                n += 1
        return n

    def clear(self, pid=None, cid=None, purpose=None, stack=None):
        # ClearChargingProfile (E3.25): an id matches only that profile;
        # otherwise every given field must match (AND); none = all.
        # Returns the removed profiles.
        out = []
        keep = []
        for q in self.items:
            if pid is not None:
                hit = q.id == pid
            else:
                hit = (cid is None or q.cid == cid) and (purpose is None or q.purpose == purpose) \
                    and (stack is None or q.stack == stack)
            (out if hit else keep).append(q)
        self.items = keep
        return out

    def _best(self, purpose, cid, t, rel, other=-1):
        # The prevailing profile of a purpose: the highest stackLevel that
        # applies at t; at the same level connector `cid` beats `other`
        # (a TxDefaultProfile on N overrides the one on 0 for N).
        best = None
        bkey = -1
        bph = 0
        for q in self.items:
            if q.purpose != purpose or (q.cid != cid and q.cid != other):
                continue
            a, ph, nx = at(q, t, rel, self.volts)
            if nx < self.next:
                self.next = nx
            if a is None:
                continue
            key = q.stack * 2 + (1 if q.cid == cid else 0)
            if key > bkey:
                bkey = key
                best = a
                bph = ph
        return best, bph

    def _conn(self, cid, t, rel):
        # TxProfile, else TxDefaultProfile (on cid or on 0), for one connector.
        a, ph = self._best(TX, cid, t, rel)
        if a is None:
            a, ph = self._best(TX_DEFAULT, cid, t, rel, 0)
        return a, ph

    def limit(self, cid, t, rel, share=1):
        # The composite limit (A per phase) of connector cid >= 1 at t, or
        # None when no profile applies; with its numberPhases. `share`:
        # connectors sharing the ChargePointMaxProfile (its limit is for all
        # of them together, §3.13.3). Updates self.next.
        a, ph = self._conn(cid, t, rel)
        m, mph = self._best(CP_MAX, 0, t, rel)
        if m is not None:
            m = m / (share if share > 1 else 1)
            if a is None or m < a:
                a, ph = m, mph
        return a, ph

    def total(self, t, rels):
        # Connector 0: what the charge point as a whole may draw (A per
        # phase): each connector's limit (else the hardware's) summed, capped
        # by the ChargePointMaxProfile; None when no profile applies.
        s = 0
        ph = self.phases
        any_ = False
        for c in range(1, self.n + 1):
            a, p = self._conn(c, t, rels[c])
            if a is None or a > self.hw_amps:
                a = self.hw_amps
            else:
                any_ = True
                ph = p
            s += a
        m, mph = self._best(CP_MAX, 0, t, rels[0])
        if m is not None and m < s:
            return m, mph
        return (s, ph) if any_ else (None, ph)

    def composite(self, cid, t0, duration, rels, share=1, unit_w=False):
        # GetCompositeSchedule: the periods from t0 to t0 + duration as a
        # list of chargingSchedulePeriod dicts (startPeriod relative to t0),
        # the hardware limit where no profile applies, in A or W.
        end = t0 + duration
        out = []
        t = t0
        last = None
        last_ph = 0
        hw = self.hw_amps * (self.n if cid == 0 else 1)
        while t < end or not out:
            self.next = FOREVER
            if cid == 0:
                a, ph = self.total(t, rels)
            else:
                a, ph = self.limit(cid, t, rels[cid], share)
            if a is None or a > hw:
                a, ph = hw, self.phases
            v = a * self.volts * ph if unit_w else a
            v = int(v * 10 + 1e-6) / 10  # the spec's 0.1 step, never above the limit
            if v != last or ph != last_ph:  # same limit on other phases: a new period
                out.append({"startPeriod": t - t0, "limit": v, "numberPhases": ph})
                last = v
                last_ph = ph
                if len(out) >= _MAX_STEPS:
                    break
            nx = self.next
            if nx >= FOREVER:
                break  # nothing changes ahead: the last period lasts to the end
            t = nx if nx > t else t + 1
        return out
