# Charging sessions (Core profile): card swipes, plug events, StartTransaction
# and StopTransaction through the persistent queue, remote start and stop,
# the timeouts, availability changes and resets.
import asyncio
import time
import json
from micropython import const
from mpocpp.util import clock
from mpocpp.util import log
from mpocpp.util import fsutil
from mpocpp.model.connector import (Transaction, AVAILABLE, PREPARING, FINISHING, UNAVAILABLE,
                       NO_ERROR)

_TAG = "session"
_ACCEPTED = "Accepted"
_SOFT_RESET_DRAIN_MS = const(10000)
# Stop reasons after which the cable stays locked: DeAuthorized (until the
# card is shown), EVDisconnected (UnlockConnectorOnEVSideDisconnect decides),
# UnlockCommand (the handler unlocks and reports the result).
_KEEP_LOCK = ("DeAuthorized", "EVDisconnected", "UnlockCommand")
_ESTOP = "emergency stop"


def same_tag(a, b):
    return a is not None and b is not None and a.upper() == b.upper()


class Sessions:
    def __init__(self, cp):
        self.cp = cp
        self._busy = False  # a swipe is being authorized
        self.resetting = None

    # --- helpers ---
    async def _authorize(self, id_tag):
        # auth (and through it the authorization store) is loaded on the
        # first card or remote start, not at boot.
        from mpocpp.model import authorization as auth
        return await auth.authorize(self.cp, id_tag)

    def connectors(self):
        return self.cp.connectors[1:]

    def energy(self, conn):
        m = self.cp.meter
        return m.reported_wh(conn.id) if m is not None else 0

    def _avail_path(self):
        return self.cp.cfg.dir + "/availability"

    def load_availability(self):
        data = fsutil.read(self._avail_path())
        if not data:
            return
        try:
            flags = json.loads(data)
        except ValueError:
            return
        for c in self.cp.connectors:
            if c.id < len(flags):
                c.operative = bool(flags[c.id])

    def save_availability(self):
        # What the CSMS asked for, including scheduled changes: survives a reboot.
        flags = []
        for c in self.cp.connectors:
            flags.append(1 if (c.operative if c.scheduled is None else c.scheduled) else 0)
        fsutil.write_atomic(self._avail_path(), json.dumps(flags).encode())

    # --- configuration keys that act on the hardware ---
    def on_config(self, name):
        # Called by ChargePoint.on_config_change after a key changed.
        if name == "LightIntensity":
            self._apply_light()
        elif name == "LockCablePermanently":
            lock = self.cp.cfg.get(name)
            for c in self.connectors():
                if lock and c.plugged:
                    self._lock_cable(c, True)
                elif not lock and c.tx is None and c.keep_locked_for is None:
                    self._unlock(c)
        elif name == "FreeCharging":
            for c in self.connectors():
                self.on_event(c)  # a plugged EV may start now

    def _apply_light(self):
        led = self.cp.board.led
        if led is not None and hasattr(led, "intensity"):
            led.intensity(self.cp.cfg.get("LightIntensity"))

    # --- boot ---
    def recover(self):
        # A transaction still on flash was running when the power went:
        # StopTransaction(PowerLoss) with the last known energy register.
        self._apply_light()
        self.load_availability()
        for c in self.connectors():
            tx = c.load_tx()
            if tx is None:
                continue
            log.warn(_TAG, "connector %d: transaction %s interrupted by power loss" % (c.id, tx.id))
            c.tx = tx
            self._stop(c, "PowerLoss", None, boot=True)

    # --- events ---
    def on_event(self, conn):
        # The pilot changed (plug, unplug, EV pause/resume) or a fault came or went.
        p = conn.pilot
        cfg = self.cp.cfg
        if conn.tx is not None and p == "A":
            # EV side disconnected: StopTransactionOnEVSideDisconnect is always true.
            tx = conn.tx
            conn.ev_disconnected = True
            self._stop(conn, "EVDisconnected", None)
            conn.ev_disconnected = False
            if cfg.get("UnlockConnectorOnEVSideDisconnect"):  # reads false under LockCablePermanently
                self._unlock(conn)
            elif not cfg.get("LockCablePermanently"):
                conn.keep_locked_for = (tx.id_tag, tx.parent)  # until the card is shown again
        elif conn.tx is None and conn.plugged and not conn.finishing:
            if cfg.get("LockCablePermanently"):
                self._lock_cable(conn, True)
            if conn.pending is not None and not conn.ev_error:
                tag, parent, _, _ = conn.pending
                self._start(conn, tag, parent)
            elif cfg.get("FreeCharging") and self._startable(conn):
                self._start(conn, cfg.get("FreeChargingIdTag"), None)
        elif p == "A" and conn.keep_locked_for is None and conn.tx is None:
            if self._has_lock(conn) and conn.hw.lock.locked and not cfg.get("LockCablePermanently"):
                self._unlock(conn)
        conn.update()

    def _startable(self, c):
        # Free for a new session (a pending authorization aside).
        return c.tx is None and c.fault is None and c.operative and c.keep_locked_for is None \
            and not c.ev_error

    def swipe(self, id_tag):
        if self._busy:
            log.info(_TAG, "card ignored: still authorizing the previous one")
            return
        self._busy = True
        asyncio.create_task(self._swipe(id_tag))

    async def _swipe(self, id_tag):
        try:
            await self._swipe_inner(id_tag)
        except Exception as e:
            log.exc(_TAG, "swipe", e)
        finally:
            self._busy = False

    async def _swipe_inner(self, id_tag):
        cons = self.connectors()
        # 1. The same card stops its own transaction (no Authorize, OCPP §3.4)
        # or frees the cable it left locked.
        for c in cons:
            if c.tx is not None and same_tag(c.tx.id_tag, id_tag):
                self._stop(c, "Local", id_tag)
                return
            k = c.keep_locked_for
            if k is not None and same_tag(k[0], id_tag):
                self._release(c)
                return
        running = [c for c in cons if c.tx is not None]
        locked = [c for c in cons if c.keep_locked_for is not None]
        free = [c for c in cons if self._startable(c) and c.pending is None]
        info = None
        # 2. Another card of the same group (parentIdTag) may stop it, or free the cable.
        if running or locked:
            info = await self._authorize(id_tag)
            parent = info.get("parentIdTag")
            if parent is not None and info.get("status") == _ACCEPTED:
                for c in running:
                    if c.tx is not None and same_tag(parent, c.tx.parent):
                        self._stop(c, "Local", id_tag)
                        return
                for c in locked:
                    if same_tag(parent, c.keep_locked_for[1]):
                        self._release(c)
                        return
            if not free:
                log.info(_TAG, "card %s cannot stop the running transaction" % id_tag)
                return
        # 3. Start a session on a free connector.
        plugged = [c for c in free if c.plugged]
        cands = plugged or free  # reservations are checked once the parent is known
        if not cands:
            log.info(_TAG, "no connector free for %s" % id_tag)
            return
        if info is None:
            info = await self._authorize(id_tag)
        if info.get("status") != _ACCEPTED:
            log.info(_TAG, "card %s refused: %s" % (id_tag, info.get("status")))
            self.cp.signal_refused()
            return
        parent = info.get("parentIdTag")
        cands = [c for c in cands if self._reservation_ok(c, id_tag, parent)] or \
            [c for c in cands if c.reservation is None]
        if not cands:
            log.info(_TAG, "connector reserved for another card")
            return
        c = cands[0]
        if c.plugged:
            self._start(c, id_tag, parent)
        else:
            deadline = time.ticks_add(time.ticks_ms(), self.cp.cfg.get("ConnectionTimeOut") * 1000)
            pend = (id_tag, parent, deadline, False)
            for c in cands:  # the first connector plugged wins
                c.pending = pend
                c.update()

    def _release(self, c):
        # The card of a DeAuthorized (or EV-side ended) session takes its cable.
        c.keep_locked_for = None
        if not self.cp.cfg.get("LockCablePermanently"):
            self._unlock(c)
        c.update()

    def _reservation_ok(self, c, id_tag, parent):
        r = c.reservation
        if r is None:
            return True
        return same_tag(r[1], id_tag) or (parent is not None and same_tag(r[2], parent))

    # --- start / stop ---
    def _start(self, conn, id_tag, parent):
        cp = self.cp
        q = cp.queue
        for c in self.connectors():
            if c.pending is not None and c.pending[0] == id_tag:
                c.pending = None
        if q is not None and not q.can_start_transaction():
            log.error(_TAG, "message queue full: new transaction refused")
            cp.signal_refused()
            conn.update()
            return False
        res = conn.reservation
        conn.reservation = None
        meter_start = self.energy(conn)
        now = clock.now()
        txid = q.new_placeholder() if q is not None else -1
        conn.tx = Transaction(conn.id, txid, id_tag, parent, meter_start, now,
                              res[0] if res else None)
        conn.finishing = False
        conn.tx_since = time.ticks_ms()
        conn.save_tx()
        p = {"connectorId": conn.id, "idTag": id_tag, "meterStart": meter_start,
             "timestamp": clock.iso(now)}
        if res:
            p["reservationId"] = res[0]
        cp.push_txn("StartTransaction", p, txid)
        cp.tx_started(conn)
        log.info(_TAG, "connector %d: transaction started for %s" % (conn.id, id_tag))
        self._lock_cable(conn)
        conn.update()
        return True

    def _stop(self, conn, reason, id_tag, boot=False):
        cp = self.cp
        tx = conn.tx
        if tx is None:
            return False
        p = {"transactionId": tx.id, "meterStop": max(self.energy(conn), tx.meter_start),
             "timestamp": clock.iso()}
        if id_tag is not None:
            p["idTag"] = id_tag
        elif reason != "Local":
            p["idTag"] = tx.id_tag
        if reason != "Local":
            p["reason"] = reason
        data = cp.tx_data(conn, p) if not boot else cp.tx_data_recovered(conn, p)
        if data:
            p["transactionData"] = data
        cp.push_txn("StopTransaction", p)
        conn.drop_tx_file()
        conn.tx = None
        conn.finishing = conn.plugged
        cp.tx_stopped(conn)
        log.info(_TAG, "connector %d: transaction stopped (%s)" % (conn.id, reason))
        self._apply_scheduled(conn)
        if reason == "DeAuthorized":
            conn.keep_locked_for = (tx.id_tag, tx.parent)  # until that card or its group
        elif reason not in _KEEP_LOCK and not boot and not cp.cfg.get("LockCablePermanently"):
            self._unlock(conn)  # a normal end unlocks the cable (OCPP §4.10)
        if conn.ev_disconnected:
            conn.set_status(FINISHING, NO_ERROR, "EV side disconnected")
        conn.update()
        return True

    def _apply_scheduled(self, conn):
        # A ChangeAvailability answered Scheduled takes effect at the Tx end;
        # connector 0's once no transaction is left.
        cons = self.cp.connectors
        for c in (conn, cons[0]):
            if c.scheduled is None:
                continue
            if c.id == 0 and any(x.tx is not None for x in cons[1:]):
                continue
            c.operative = c.scheduled
            c.scheduled = None
            c.update()

    def stop(self, conn, reason, id_tag=None):
        return self._stop(conn, reason, id_tag)

    def stop_all(self, reason):
        # Every running transaction ends with `reason` (Reboot before a
        # firmware install, Other, EmergencyStop...); returns how many.
        n = 0
        for c in self.connectors():
            if self._stop(c, reason, None):
                n += 1
        return n

    def emergency_stop(self, on):
        # The emergency stop button: energy off and transactions ended at
        # once; the connectors stay Faulted until it is released.
        if on:
            self.stop_all("EmergencyStop")
        for c in self.connectors():
            if on and c.fault is None:
                c.fault = ("OtherError", _ESTOP)
            elif not on and c.fault is not None and c.fault[1] == _ESTOP:
                c.fault = None
            c.update()

    def _has_lock(self, conn):
        return conn.hw is not None and conn.hw.lock is not None

    def _lock_cable(self, conn, if_unlocked=False):
        if self._has_lock(conn) and not (if_unlocked and conn.hw.lock.locked):
            asyncio.create_task(self._lock(conn))

    async def _lock(self, conn):
        if not await conn.hw.lock.lock():
            log.error(_TAG, "connector %d: cable lock failed" % conn.id)
            conn.fault = ("ConnectorLockFailure", "cable lock")
            conn.update()

    def _unlock(self, conn):
        if self._has_lock(conn):
            asyncio.create_task(conn.hw.lock.unlock())

    def on_start_answer(self, conn, info):
        # StartTransaction.conf idTagInfo not Accepted (checklist §2 Core).
        if info.get("status") == _ACCEPTED or conn.tx is None:
            return
        log.warn(_TAG, "connector %d: StartTransaction answered %s" % (conn.id, info.get("status")))
        if self.cp.cfg.get("StopTransactionOnInvalidId"):
            self._stop(conn, "DeAuthorized", None)
        else:
            conn.tx.invalid = True
            conn.save_tx()
            conn.update()

    # --- remote control ---
    def remote_start(self, id_tag, cid, profile):
        cp = self.cp
        n = len(cp.connectors) - 1
        if cid is not None and (cid < 1 or cid > n):
            return "Rejected"
        if profile is not None and (profile.get("chargingProfilePurpose") != "TxProfile" or
                                    not cp.module("smartcharging").remote_profile_ok(cp, profile, cid)):
            return "Rejected"
        cons = self.connectors() if cid is None else [cp.connectors[cid]]
        ok = [c for c in cons if self._startable(c) and c.pending is None
              and c.status != FINISHING and self._reservation_ok(c, id_tag, None)]
        if cid is None:
            ok = [c for c in ok if c.plugged] or ok
        if not ok:
            return "Rejected"
        c = ok[0]
        c.remote_profile = None if profile is None else (id_tag, profile)
        asyncio.create_task(self._remote_start(c, id_tag))
        return _ACCEPTED

    async def _remote_start(self, conn, id_tag):
        parent = None
        if self.cp.cfg.get("AuthorizeRemoteTxRequests"):
            info = await self._authorize(id_tag)
            if info.get("status") != _ACCEPTED:
                log.info(_TAG, "remote start for %s refused: %s" % (id_tag, info.get("status")))
                return
            parent = info.get("parentIdTag")
        if conn.tx is not None:
            return
        if conn.plugged:
            self._start(conn, id_tag, parent)
        else:
            timeout = self.cp.cfg.get("AuthorisationTimeout")
            conn.pending = (id_tag, parent, time.ticks_add(time.ticks_ms(), timeout * 1000), True)
            conn.update()

    def find_tx(self, txid):
        q = self.cp.queue
        for c in self.connectors():
            if c.tx is not None:
                real = q.resolve(c.tx.id) if q is not None else c.tx.id
                if real == txid or c.tx.id == txid:
                    return c
        return None

    # --- availability ---
    def change_availability(self, cid, operative):
        cp = self.cp
        targets = cp.connectors if cid == 0 else [cp.connectors[cid]]
        busy = any(c.tx is not None for c in cp.connectors[1:])
        scheduled = False
        for c in targets:
            if not operative and (c.tx is not None or (c.id == 0 and busy)):
                # Inoperative waits for the transaction(s) to end.
                if c.operative:
                    c.scheduled = False
                    scheduled = True
                continue
            c.scheduled = None
            if c.operative != operative:
                c.operative = operative
                if not operative:
                    c.pending = None
        self.save_availability()
        for c in targets:
            c.update()
        return "Scheduled" if scheduled else _ACCEPTED

    # --- reset ---
    def reset(self, hard):
        reason = "HardReset" if hard else "SoftReset"
        for c in self.connectors():
            if c.tx is not None:
                self._stop(c, reason, None)
        self.resetting = reason
        asyncio.create_task(self._reset(hard))

    async def _reset(self, hard):
        cp = self.cp
        if not hard:
            # Graceful: give the queued StopTransaction a chance to go out.
            t0 = time.ticks_ms()
            while cp.queue is not None and cp.queue.pending_txn() and \
                    time.ticks_diff(time.ticks_ms(), t0) < _SOFT_RESET_DRAIN_MS:
                await asyncio.sleep_ms(100)
        else:
            await asyncio.sleep_ms(200)  # let the Reset.conf leave
        if cp.meter is not None:
            cp.meter.save()
        if cp.link.ws is not None:
            try:
                await cp.link.ws.close(1000, 500)
            except Exception:
                pass
        cp.board.reset(hard)

    # --- timers (supervisor, ~10 Hz) ---
    def tick(self, now_ms):
        cfg = self.cp.cfg
        for c in self.connectors():
            changed = c.poll()
            p = c.pending
            if p is not None and time.ticks_diff(now_ms, p[2]) >= 0:
                log.info(_TAG, "connector %d: no plug in time, authorization dropped" % c.id)
                c.pending = None
                c.remote_profile = None
                changed = True
            if c.tx is None and c.pending is None and c.plugged and not c.finishing \
                    and c.plug_since is not None and not cfg.get("FreeCharging"):
                if time.ticks_diff(now_ms, c.plug_since) >= cfg.get("ConnectionTimeOut") * 1000:
                    log.info(_TAG, "connector %d: ConnectionTimeOut without authorization" % c.id)
                    c.finishing = True
                    changed = True
            r = c.reservation
            if r is not None and r[3] is not None and clock.now() >= r[3]:
                log.info(_TAG, "connector %d: reservation %d expired" % (c.id, r[0]))
                c.reservation = None
                changed = True
            if changed:
                self.on_event(c)
            else:
                c.update()
        for c in self.cp.connectors:
            c.report_due(now_ms)
