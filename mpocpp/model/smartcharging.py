# Smart charging state (OCPP 1.6 §3.13): the installed charging profiles,
# kept in flash (E3.37), and the composite limit applied to each connector
# through Connector.limit_a, re-evaluated when a schedule period changes (the
# supervisor's tick). Made on the first smart-charging message, a RemoteStart
# with a profile, or at boot when profiles are stored. The schedule maths is
# in chargingprofiles.py, a message's profile read by profileparse.py; the
# CSMS's calls in operations/smartcharging.py.
import time
import json
from micropython import const
from mpocpp.util import clock
from mpocpp.util import log
from mpocpp.util import fsutil
from mpocpp.util import modules

_TAG = "smart"
_PARSE = "mpocpp.model.profileparse"  # a profile from a message, for the moment
FILE = "/chprofiles"
_FILE = FILE
_TICK_MS = const(1000)  # how often the supervisor's tick looks at the clock
_RECHECK_S = const(60)  # re-evaluate at least this often (a stepped clock)


class SmartCharging:
    def __init__(self, cfg, connectors, volts, phases, max_amps):
        from mpocpp.model import chargingprofiles
        self._cfg = cfg
        self._cons = connectors  # index 0 = the charge point
        self.chp = chargingprofiles
        n = len(connectors) - 1
        self.set = chargingprofiles.ProfileSet(n, volts, phases, max_amps)
        self.rels = [None] * (n + 1)  # Relative schedule starts, reused
        self._due = 0  # unix s: next evaluation
        self._at = 0  # unix s: last evaluation
        self._tick = time.ticks_ms()

    # --- flash ---
    def _path(self):
        return self._cfg.dir + _FILE

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
            log.error(_TAG, "stored profiles unreadable, ignored: %s", e)
            return
        room = self._cfg.get("MaxChargingProfilesInstalled")
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
        log.info(_TAG, "%d charging profiles loaded", len(self.set.items))

    def save(self):
        recs = [q.rec() for q in self.set.items if q.purpose != self.chp.TX]
        try:
            if recs:
                fsutil.write_atomic(self._path(), json.dumps(recs).encode())
            else:
                fsutil.remove(self._path())  # next boot need not load this module
        except OSError as e:
            log.error(_TAG, "profiles not saved: %r", e)

    # --- evaluation ---
    def fill_rels(self, t0):
        # Each connector's Relative start: its transaction's start, else t0
        # (GetCompositeSchedule: as if one started now; None: not running).
        # Returns how many connectors have a transaction.
        r = self.rels
        r[0] = t0
        k = 0
        for c in self._cons[1:]:
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
        active = self.fill_rels(None)
        for c in self._cons[1:]:
            share = active if c.tx is not None else active + 1
            a, ph = s.limit(c.id, t, self.rels[c.id], share)
            if a is not None:
                a = int(a * 10 + 1e-6) / 10  # 0.1 A steps, never above the limit
                if a == int(a):
                    a = int(a)
            if a != c.limit_a:
                log.info(
                    _TAG, "connector %d: %s", c.id, "no limit" if a is None else "limit %s A" % a
                )
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
            log.info(_TAG, "connector %d: TxProfile removed at transaction end", conn.id)
        self.apply()

    def check(self, cid, d):
        # Parse a profile against the configured limits: Profile, or
        # ValueError(reason) for Rejected.
        cfg = self._cfg
        try:
            return modules.load(_PARSE).parse(
                cid, d, clock.now(), cfg.get("ChargeProfileMaxStackLevel"),
                cfg.get("ChargingScheduleMaxPeriods"),
                cfg.get("ChargingScheduleAllowedChargingRateUnit"))
        finally:
            modules.release(_PARSE)

    def room_for(self, p):
        return self.set.would_hold(p) <= self._cfg.get("MaxChargingProfilesInstalled")

    def tx_started(self, conn):
        # A transaction started: a RemoteStartTransaction's TxProfile becomes
        # this transaction's (§5.16.2), and Relative schedules start now.
        rp = conn.remote_profile
        conn.remote_profile = None
        tx = conn.tx
        if rp is not None and tx is not None and rp.id_tag.upper() == tx.id_tag.upper():
            try:
                p = self.check(conn.id, rp.profile)
                p.txid = None
                if self.room_for(p):
                    self.set.install(p)
                    log.info(_TAG, "connector %d: TxProfile %d from RemoteStart applied",
                             conn.id, p.id)
                else:
                    log.warn(_TAG, "no room for the RemoteStart TxProfile")
            except ValueError as e:
                log.warn(_TAG, "RemoteStart TxProfile dropped: %s", e)
        self.apply()

    def remote_profile_ok(self, profile, cid):
        # RemoteStartTransaction: would this TxProfile be accepted?
        try:
            p = self.check(cid or 1, profile)
        except ValueError as e:
            log.info(_TAG, "RemoteStart profile refused: %s", e)
            return False
        return p.purpose == self.chp.TX and self.room_for(p)

    def save_if_stored(self, purpose, changed):
        # Only ChargePointMax and TxDefault profiles live in flash: a TxProfile
        # change (often, during load management) costs no flash write.
        tx = self.chp.TX
        if purpose != tx:
            self.save()
            return
        for q in changed:
            if q.purpose != tx:
                self.save()
                return
