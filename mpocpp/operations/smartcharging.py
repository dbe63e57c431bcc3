# SmartCharging profile: SetChargingProfile, ClearChargingProfile and
# GetCompositeSchedule; the installed profiles kept in flash (E3.37); the
# composite limit applied to each connector through Connector.limit_a and
# re-evaluated when a schedule period changes. Loaded on the first
# smart-charging message, or at boot when profiles are stored. The schedule
# maths lives in chargingprofiles.py.
import time
import json
from micropython import const
from mpocpp.util import clock
from mpocpp.util import log
from mpocpp.util import fsutil
from mpocpp.protocol.rpc import Reply

_TAG = "smart"
_FILE = "/chprofiles"
_TICK_MS = const(1000)  # how often the supervisor's tick looks at the clock
_RECHECK_S = const(60)  # re-evaluate at least this often (a stepped clock)
_PCV = "PropertyConstraintViolation"
_ACCEPTED = {"status": "Accepted"}
_REJECTED = {"status": "Rejected"}


class Smart:
    def __init__(self, cp):
        from mpocpp.model import chargingprofiles
        self.cp = cp
        self.chp = chargingprofiles
        lim = cp.board.limits
        n = len(cp.connectors) - 1
        self.set = chargingprofiles.ProfileSet(n, lim.get("nominalVolts", 230),
                                               lim.get("phases", 3), cp.max_amps())
        self.rels = [None] * (n + 1)  # Relative schedule starts, reused
        self._due = 0  # unix s: next evaluation
        self._at = 0  # unix s: last evaluation
        self._tick = time.ticks_ms()

    # --- flash ---
    def _path(self):
        return self.cp.cfg.dir + _FILE

    def load(self):
        # TxProfiles are not stored: no transaction outlives a reboot.
        data = fsutil.read(self._path())
        if not data:
            return
        try:
            recs = json.loads(data)
            if not isinstance(recs, list):
                raise ValueError("not a list")
        except ValueError as e:
            log.error(_TAG, "stored profiles unreadable, ignored: %s" % e)
            return
        room = self.cp.cfg.get("MaxChargingProfilesInstalled")
        for r in recs:
            if len(self.set.items) >= room:
                log.warn(_TAG, "more stored profiles than MaxChargingProfilesInstalled")
                break
            try:
                p = self.chp.from_rec(r)
            except (ValueError, TypeError, IndexError):
                log.warn(_TAG, "damaged profile record skipped")
                continue
            if p.purpose != self.chp.TX:
                self.set.items.append(p)
        log.info(_TAG, "%d charging profiles loaded" % len(self.set.items))

    def save(self):
        recs = [q.rec() for q in self.set.items if q.purpose != self.chp.TX]
        try:
            if recs:
                fsutil.write_atomic(self._path(), json.dumps(recs).encode())
            else:
                fsutil.remove(self._path())  # next boot need not load this module
        except OSError as e:
            log.error(_TAG, "profiles not saved: %r" % (e,))

    # --- evaluation ---
    def _fill_rels(self, t0):
        # Each connector's Relative start: its transaction's start, else t0
        # (GetCompositeSchedule: as if one started now; None: not running).
        # Returns how many connectors have a transaction.
        r = self.rels
        r[0] = t0
        k = 0
        for c in self.cp.connectors[1:]:
            tx = c.tx
            if tx is not None:
                r[c.id] = tx.start
                k += 1
            else:
                r[c.id] = t0
        return k

    def apply(self):
        # Set every connector's limit_a to the composite limit now.
        t = clock.now()
        s = self.set
        s.next = self.chp.FOREVER
        active = self._fill_rels(None)
        for c in self.cp.connectors[1:]:
            share = active if c.tx is not None else active + 1
            a, ph = s.limit(c.id, t, self.rels[c.id], share)
            if a is not None:
                a = int(a * 10 + 1e-6) / 10  # 0.1 A steps, never above the limit
                if a == int(a):
                    a = int(a)
            if a != c.limit_a:
                log.info(_TAG, "connector %d: %s" % (c.id, "no limit" if a is None else "limit %s A" % a))
                c.limit_a = a
                c.update()
        nx = s.next
        self._due = nx if nx < t + _RECHECK_S else t + _RECHECK_S
        self._at = t

    def tick(self, now_ms):
        # From the supervisor: once a second, look whether a period changed.
        if time.ticks_diff(now_ms, self._tick) < _TICK_MS:
            return
        self._tick = now_ms
        t = clock.now()
        if t >= self._due or t < self._at:
            self.apply()

    def tx_stopped(self, conn):
        # A TxProfile ends with its transaction (§3.13.1).
        if self.set.clear(None, conn.id, self.chp.TX, None):
            log.info(_TAG, "connector %d: TxProfile removed at transaction end" % conn.id)
        self.apply()

    def check(self, cid, d):
        # Parse a profile against the configured limits: Profile, or
        # ValueError(reason) for Rejected.
        cfg = self.cp.cfg
        return self.chp.parse(cid, d, clock.now(), cfg.get("ChargeProfileMaxStackLevel"),
                              cfg.get("ChargingScheduleMaxPeriods"),
                              cfg.get("ChargingScheduleAllowedChargingRateUnit"))

    def room_for(self, p):
        return self.set.would_hold(p) <= self.cp.cfg.get("MaxChargingProfilesInstalled")


def get(cp):
    s = cp.smart
    if s is None:
        s = cp.smart = Smart(cp)
        s.load()
    return s


def boot(cp):
    # Stored profiles exist: load them and apply before the first session.
    get(cp).apply()


def tx_started(cp, conn):
    # A transaction started: a RemoteStartTransaction's TxProfile becomes
    # this transaction's (§5.16.2), and Relative schedules start now.
    s = get(cp)
    rp = conn.remote_profile
    conn.remote_profile = None
    tx = conn.tx
    if rp is not None and tx is not None and rp[0].upper() == tx.id_tag.upper():
        try:
            p = s.check(conn.id, rp[1])
            p.txid = None
            if s.room_for(p):
                s.set.install(p)
                log.info(_TAG, "connector %d: TxProfile %d from RemoteStart applied" % (conn.id, p.id))
            else:
                log.warn(_TAG, "no room for the RemoteStart TxProfile")
        except ValueError as e:
            log.warn(_TAG, "RemoteStart TxProfile dropped: %s" % e)
    s.apply()


def remote_profile_ok(cp, profile, cid):
    # RemoteStartTransaction: would this TxProfile be accepted?
    s = get(cp)
    try:
        p = s.check(cid or 1, profile)
    except ValueError as e:
        log.info(_TAG, "RemoteStart profile refused: %s" % e)
        return False
    return p.purpose == s.chp.TX and s.room_for(p)


def _rejected(why):
    log.info(_TAG, "SetChargingProfile rejected: " + why)
    return _REJECTED


def _save_if_stored(s, purpose, changed):
    # Only ChargePointMax and TxDefault profiles live in flash: a TxProfile
    # change (often, during load management) costs no flash write.
    tx = s.chp.TX
    if purpose != tx:
        s.save()
        return
    for q in changed:
        if q.purpose != tx:
            s.save()
            return


# --- handlers ---
def SetChargingProfile(cp, req):
    cid = req["connectorId"]
    if cid < 0 or cid >= len(cp.connectors):
        raise Reply(_PCV, "connectorId %d out of range" % cid)  # E3.39
    s = get(cp)
    chp = s.chp
    try:
        p = s.check(cid, req["csChargingProfiles"])
    except ValueError as e:
        return _rejected(str(e))
    if p.purpose == chp.CP_MAX and cid != 0:
        return _rejected("ChargePointMaxProfile only on connector 0")
    if p.purpose == chp.TX:
        if cid == 0:
            return _rejected("TxProfile needs a connector")
        conn = cp.connectors[cid]
        if conn.tx is None:
            return _rejected("no transaction on connector %d" % cid)
        if p.txid is not None and cp.sessions.find_tx(p.txid) is not conn:
            return _rejected("transaction %d is not running on connector %d" % (p.txid, cid))
    if not s.room_for(p):
        return _rejected("MaxChargingProfilesInstalled reached")
    gone = s.set.install(p)
    log.info(_TAG, "profile %d (%s, stack %d) set on connector %d" % (
        p.id, chp.PURPOSES[p.purpose], p.stack, cid))
    _save_if_stored(s, p.purpose, gone)
    s.apply()
    return _ACCEPTED


def ClearChargingProfile(cp, req):
    s = get(cp)
    chp = s.chp
    purpose = req.get("chargingProfilePurpose")
    removed = s.set.clear(req.get("id"), req.get("connectorId"),
                          None if purpose is None else chp.PURPOSES.index(purpose),
                          req.get("stackLevel"))
    if not removed:
        return {"status": "Unknown"}
    log.info(_TAG, "%d charging profiles cleared" % len(removed))
    _save_if_stored(s, chp.TX, removed)
    s.apply()
    return _ACCEPTED


def GetCompositeSchedule(cp, req):
    cid = req["connectorId"]
    dur = req["duration"]
    unit = req.get("chargingRateUnit") or "A"
    if unit != "A" and unit != "W":
        raise Reply(_PCV, "chargingRateUnit must be A or W")  # E3.24
    if cid < 0 or cid >= len(cp.connectors) or dur < 0:
        return _REJECTED
    s = get(cp)
    t0 = clock.now()
    active = s._fill_rels(t0)
    share = active if cid == 0 or cp.connectors[cid].tx is not None else active + 1
    periods = s.set.composite(cid, t0, dur, s.rels, share, unit == "W")
    # E3.57: no startSchedule; scheduleStart says when it begins.
    return {"status": "Accepted", "connectorId": cid, "scheduleStart": clock.iso(t0),
            "chargingSchedule": {"duration": dur, "chargingRateUnit": unit,
                                 "chargingSchedulePeriod": periods}}
