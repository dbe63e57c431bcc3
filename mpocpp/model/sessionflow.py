# The work of charging sessions (Core profile), loaded by model/sessions.py
# while a session is under way and released when every connector is idle:
# card swipes, plug events, the start and stop of transactions
# (StartTransaction / StopTransaction through the persistent queue), remote
# start and stop, ConnectionTimeOut's end, PowerLoss recovery and the cable
# lock.
import asyncio
import time
from mpocpp.util import clock
from mpocpp.util import log
from mpocpp.util import modules
from mpocpp.model import transaction
from mpocpp.model.transaction import Transaction
from mpocpp.model.connector import Fault, Pending, Holder, RemoteProfile
from mpocpp.model.authorization import same_tag

_TAG = "session"
_RESERVATIONS = "mpocpp.model.reservations"  # loaded while a connector is reserved
_AVAILABILITY = "mpocpp.model.availability"  # loaded while a change is Scheduled
_ACCEPTED = "Accepted"
# Stop reasons after which the cable stays locked: DeAuthorized (until the
# card is shown), EVDisconnected (UnlockConnectorOnEVSideDisconnect decides),
# UnlockCommand (the handler unlocks and reports the result).
_KEEP_LOCK = ("DeAuthorized", "EVDisconnected", "UnlockCommand")
_ESTOP = "emergency stop"


class SessionFlow:
    # hooks: .tx_started(conn), .tx_stopped(conn), .tx_data(conn) -> list|None
    # (metering and smart charging, made when first needed: ondemand.py);
    # led: the board's status LED (a refused card flashes it), or None.
    def __init__(self, cfg, connectors, queue, authorization, meter, hooks, led):
        self._cfg = cfg
        self._dir = cfg.dir
        self.connectors = connectors  # index 0 = the charge point
        self._queue = queue
        self._auth = authorization
        self._meter = meter
        self._hooks = hooks
        self._led = led
        # Swipes and remote starts still waiting for an Authorize: the flow
        # is kept while any runs (sessions.py).
        self.busy = 0
        self._swiping = False  # a swipe is being authorized

    # --- helpers ---
    def _cons(self):
        return self.connectors[1:]

    def energy(self, conn):
        m = self._meter
        return m.reported_wh(conn.id) if m is not None else 0

    def _startable(self, c):
        # Free for a new session (a pending authorization aside).
        return c.tx is None and c.fault is None and c.operative and c.locked_for is None \
            and not c.ev_error

    def _refused(self):
        if self._led is not None:
            self._led.flash("faulted")

    # --- configuration keys that act on the hardware ---
    def on_config(self, name):
        if name == "LockCablePermanently":
            lock = self._cfg.get(name)
            for c in self._cons():
                if lock and c.plugged:
                    self._lock_cable(c, True)
                elif not lock and c.tx is None and c.locked_for is None:
                    self._unlock(c)
        elif name == "FreeCharging":
            for c in self._cons():
                self.on_event(c)  # a plugged EV may start now

    def _reservations(self):
        # The reservation rules (model/reservations.py: no state of their
        # own), loaded only while a connector (0 included) is reserved: None
        # when none is, and every identity may use every connector.
        for c in self.connectors:
            if c.reservation is not None:
                return modules.load(_RESERVATIONS).Reservations(self.connectors)
        return None

    def _settle(self, conn):
        # A ChangeAvailability answered Scheduled (model/availability.py,
        # loaded only then) takes effect once conn is no longer busy.
        if conn.scheduled is not None or self.connectors[0].scheduled is not None:
            modules.load(_AVAILABILITY).Availability(self._dir, self.connectors).settle(conn)

    def expire_reservations(self, now):
        # (unix s now) the supervisor's, while a connector is reserved.
        res = self._reservations()
        if res is not None:
            res.tick(now)

    # --- boot ---
    def recover(self):
        # After a restart (sessions.py read the pilots): a StopTransaction
        # that was queued before the power went ends its transaction for
        # good; a transaction still on flash was running when the power went:
        # StopTransaction(PowerLoss) with the last known energy register.
        q = self._queue
        for c in self._cons():
            tx = transaction.load(self._dir, c.id)
            if tx is None:
                continue
            if q.has_stop(tx.id, tx.start):
                log.warn(_TAG, "connector %d: transaction %s was stopped before the power cut",
                         c.id, tx.id)
                transaction.drop(self._dir, c.id)
                continue
            if tx.id <= -2 and not q.has_start(tx.id):
                # Cut between writing the transaction down and queuing its
                # StartTransaction: it never began for the central system
                # (nor for the relay, closed after the Start is queued).
                log.warn(_TAG, "connector %d: transaction %s never queued: dropped",
                         c.id, tx.id)
                transaction.drop(self._dir, c.id)
                continue
            log.warn(_TAG, "connector %d: transaction %s interrupted by power loss", c.id, tx.id)
            c.tx = tx
            self._stop(c, "PowerLoss", None, True)
        # A car plugged in at boot is seen as if plugged now (the poll in
        # sessions.py took the edge): LockCablePermanently locks,
        # FreeCharging charges it again (no card to show, so not Finishing
        # after a PowerLoss stop).
        free = self._cfg.get("FreeCharging")
        for c in self._cons():
            if c.plugged:
                if free and c.tx is None:
                    c.finishing = False
                self.on_event(c)

    # --- events ---
    def on_event(self, conn):
        # The pilot changed (plug, unplug, EV pause/resume) or a fault came or went.
        p = conn.pilot
        cfg = self._cfg
        if conn.tx is not None and p == "A":
            # EV side disconnected: StopTransactionOnEVSideDisconnect is always true.
            tx = conn.tx
            conn.ev_disconnected = True
            self._stop(conn, "EVDisconnected", None)
            conn.ev_disconnected = False
            # (UnlockConnectorOnEVSideDisconnect reads false under LockCablePermanently)
            if cfg.get("UnlockConnectorOnEVSideDisconnect"):
                self._unlock(conn)
            elif not cfg.get("LockCablePermanently"):
                conn.locked_for = Holder(tx.id_tag, tx.parent)  # until the card is shown again
        elif conn.tx is None and conn.plugged and not conn.finishing:
            if cfg.get("LockCablePermanently"):
                self._lock_cable(conn, True)
            pend = conn.pending
            if pend is not None and not conn.ev_error:
                self._start(conn, pend.id_tag, pend.parent)
            elif cfg.get("FreeCharging") and self._startable(conn):
                self._start(conn, cfg.get("FreeChargingIdTag"), None)
        elif p == "A" and conn.locked_for is None and conn.tx is None:
            if conn.has_lock and conn.hw.lock.locked and not cfg.get("LockCablePermanently"):
                self._unlock(conn)
        conn.update()
        self._settle(conn)  # a Scheduled Inoperative once no longer Preparing

    def swipe(self, id_tag):
        log.info(_TAG, "card presented: %s", id_tag)
        if self._swiping:
            log.info(_TAG, "card ignored: still authorizing the previous one")
            return
        self._swiping = True
        self.busy += 1
        asyncio.create_task(self._swipe(id_tag))

    async def _swipe(self, id_tag):
        try:
            await self._swipe_inner(id_tag)
        except Exception as e:
            log.exc(_TAG, "swipe", e)
        finally:
            self._swiping = False
            self.busy -= 1

    async def _swipe_inner(self, id_tag):
        cons = self._cons()
        # 1. The same card stops its own transaction (no Authorize, OCPP §3.4)
        # or frees the cable it left locked.
        for c in cons:
            if c.tx is not None and same_tag(c.tx.id_tag, id_tag):
                self._stop(c, "Local", id_tag)
                return
            k = c.locked_for
            if k is not None and same_tag(k.id_tag, id_tag):
                self._release(c)
                return
        running = [c for c in cons if c.tx is not None]
        locked = [c for c in cons if c.locked_for is not None]
        free = [c for c in cons if self._startable(c) and c.pending is None]
        info = None
        # 2. Another card of the same group (parentIdTag) may stop it, or free the cable.
        if running or locked:
            info = await self._auth.authorize(id_tag)
            parent = info.get("parentIdTag")
            if parent is not None and info.get("status") == _ACCEPTED:
                for c in running:
                    if c.tx is not None and same_tag(parent, c.tx.parent):
                        self._stop(c, "Local", id_tag)
                        return
                for c in locked:
                    if same_tag(parent, c.locked_for.parent):
                        self._release(c)
                        return
            if not free:
                log.info(_TAG, "card %s cannot stop the running transaction", id_tag)
                return
        # 3. Start a session on a free connector.
        plugged = [c for c in free if c.plugged]
        cands = plugged or free  # reservations are checked once the parent is known
        if not cands:
            log.info(_TAG, "no connector free for %s", id_tag)
            return
        if info is None:
            info = await self._auth.authorize(id_tag)
        if info.get("status") != _ACCEPTED:
            log.info(_TAG, "card %s refused: %s", id_tag, info.get("status"))
            self._refused()
            return
        parent = info.get("parentIdTag")
        res = self._reservations()
        if res is not None:
            cands = [c for c in cands if res.matches(c, id_tag, parent)]
        if not cands:
            log.info(_TAG, "connector reserved for another card")
            return
        c = cands[0]
        if c.plugged:
            self._start(c, id_tag, parent)
        else:
            deadline = time.ticks_add(time.ticks_ms(), self._cfg.get("ConnectionTimeOut") * 1000)
            pend = Pending(id_tag, parent, deadline, False)
            for c in cands:  # the first connector plugged wins
                c.pending = pend
                c.update()

    def _release(self, c):
        # The card of a DeAuthorized (or EV-side ended) session takes its cable.
        c.locked_for = None
        if not self._cfg.get("LockCablePermanently"):
            self._unlock(c)
        c.update()

    # --- start / stop ---
    def _start(self, conn, id_tag, parent):
        q = self._queue
        for c in self._cons():
            if c.pending is not None and c.pending.id_tag == id_tag:
                c.pending = None
        if not q.can_start_transaction():
            log.error(_TAG, "message queue full: new transaction refused")
            self._refused()
            conn.update()
            return False
        res = self._reservations()
        rid = None if res is None else res.take(conn, id_tag, parent)
        meter_start = self.energy(conn)
        now = clock.now()
        txid = q.new_placeholder()
        conn.tx = Transaction(conn.id, txid, id_tag, parent, meter_start, now, rid)
        conn.finishing = False
        conn.tx_since = time.ticks_ms()
        transaction.save(self._dir, conn.tx)
        p = {"connectorId": conn.id, "idTag": id_tag, "meterStart": meter_start,
             "timestamp": clock.iso(now)}
        if rid is not None:
            p["reservationId"] = rid
        q.push("StartTransaction", p, True, txid)
        self._hooks.tx_started(conn)
        log.info(_TAG, "connector %d: transaction started for %s", conn.id, id_tag)
        self._lock_cable(conn)
        conn.update()
        return True

    def _stop(self, conn, reason, id_tag, boot=False):
        tx = conn.tx
        if tx is None:
            return False
        p = {"transactionId": tx.id, "meterStop": max(self.energy(conn), tx.meter_start),
             "timestamp": clock.iso(), "reason": reason}
        # The idTag that stopped it, else the starting one (always sent).
        p["idTag"] = id_tag if id_tag is not None else tx.id_tag
        data = self._hooks.tx_data(conn)
        if data:
            p["transactionData"] = data
        self._queue.push("StopTransaction", p)
        transaction.drop(self._dir, conn.id)
        conn.tx = None
        conn.finishing = conn.plugged
        self._hooks.tx_stopped(conn)
        log.info(_TAG, "connector %d: transaction stopped (%s)", conn.id, reason)
        if reason == "DeAuthorized":
            conn.locked_for = Holder(tx.id_tag, tx.parent)  # until that card or its group
        elif reason not in _KEEP_LOCK and not boot and not self._cfg.get("LockCablePermanently"):
            self._unlock(conn)  # a normal end unlocks the cable (OCPP §4.10)
        if conn.ev_disconnected:
            conn.set_status("Finishing", "NoError", "EV side disconnected")
        conn.update()
        self._settle(conn)  # (after Finishing: F -> H, never B -> H)
        return True

    def stop(self, conn, reason, id_tag=None):
        return self._stop(conn, reason, id_tag)

    def stop_all(self, reason):
        # Every running transaction ends with `reason` (Reboot before a
        # firmware install, HardReset, EmergencyStop...); returns how many.
        n = 0
        for c in self._cons():
            if self._stop(c, reason, None):
                n += 1
        return n

    def emergency_stop(self, on):
        # The emergency stop button: energy off and transactions ended at
        # once; the connectors stay Faulted until it is released.
        if on:
            self.stop_all("EmergencyStop")
        for c in self._cons():
            if on and c.fault is None:
                c.fault = Fault("OtherError", _ESTOP)
            elif not on and c.fault is not None and c.fault.info == _ESTOP:
                c.fault = None
            c.update()

    def _lock_cable(self, conn, if_unlocked=False):
        if conn.has_lock and not (if_unlocked and conn.hw.lock.locked):
            asyncio.create_task(self._lock(conn))

    async def _lock(self, conn):
        if not await conn.hw.lock.lock():
            log.error(_TAG, "connector %d: cable lock failed", conn.id)
            conn.fault = Fault("ConnectorLockFailure", "cable lock")
            conn.update()

    def _unlock(self, conn):
        if conn.has_lock:
            asyncio.create_task(conn.hw.lock.unlock())

    async def unlock(self, conn):
        # UnlockConnector: a running transaction ends (UnlockCommand), then the
        # cable is released. -> True when the lock reports it open.
        if conn.tx is not None:
            self._stop(conn, "UnlockCommand", None)
        conn.locked_for = None
        ok = await conn.hw.lock.unlock()
        conn.update()
        return ok

    def on_start_answer(self, conn, info):
        # StartTransaction.conf idTagInfo (checklist §2 Core).
        tx = conn.tx
        if tx is None:
            return
        if info.get("status") == _ACCEPTED:
            p = info.get("parentIdTag")
            if p:
                tx.parent = p  # the group that may stop it (§3.10, §4.8)
                transaction.save(self._dir, tx)
            return
        log.warn(_TAG, "connector %d: StartTransaction answered %s", conn.id, info.get("status"))
        if self._cfg.get("StopTransactionOnInvalidId"):
            self._stop(conn, "DeAuthorized", None)
        else:
            tx.invalid = True
            transaction.save(self._dir, tx)
            conn.update()

    # --- remote control ---
    def remote_start(self, id_tag, cid, profile=None):
        # RemoteStartTransaction after its checks -> Accepted / Rejected.
        # profile: a validated TxProfile to apply when the transaction starts.
        # A connector reserved with a parentIdTag for another idTag is not
        # refused here: the group is known only once the parent is resolved
        # (_remote_start, §5.13), which the handler must not wait for.
        cons = self._cons() if cid is None else [self.connectors[cid]]
        res = self._reservations()
        ok = [c for c in cons if self._startable(c) and c.pending is None
              and c.status != "Finishing" and (res is None or res.may_match(c, id_tag))]
        if cid is None:
            if res is not None:
                ok = [c for c in ok if res.matches(c, id_tag, None)] or ok
            ok = [c for c in ok if c.plugged] or ok
        if not ok:
            return "Rejected"
        c = ok[0]
        c.remote_profile = None if profile is None else RemoteProfile(id_tag, profile)
        self.busy += 1
        asyncio.create_task(self._remote_start(c, id_tag))
        return _ACCEPTED

    async def _remote_start(self, conn, id_tag):
        try:
            await self._remote_start_inner(conn, id_tag)
        finally:
            self.busy -= 1

    async def _remote_start_inner(self, conn, id_tag):
        parent = None
        auth = self._auth
        asked = False
        if self._cfg.get("AuthorizeRemoteTxRequests"):
            info = await auth.authorize(id_tag)
            if info.get("status") != _ACCEPTED:
                log.info(_TAG, "remote start for %s refused: %s", id_tag, info.get("status"))
                conn.remote_profile = None
                return
            parent = info.get("parentIdTag")
            asked = True
        res = self._reservations()
        if res is not None and not res.matches(conn, id_tag, parent) and not asked:
            # Reserved for a group (§5.13): the parent from the local list or
            # the cache, else from an Authorize.
            parent = auth.parent_of(id_tag)
            if parent is None:
                info = await auth.authorize(id_tag)
                if info.get("status") == _ACCEPTED:
                    parent = info.get("parentIdTag")
        res = self._reservations()  # (a reservation may have come meanwhile)
        if res is not None and not res.matches(conn, id_tag, parent):
            log.info(_TAG, "remote start for %s refused: connector %d reserved for another",
                     id_tag, conn.id)
            conn.remote_profile = None
            return
        if conn.tx is not None:
            return
        if conn.plugged:
            self._start(conn, id_tag, parent)
        else:
            timeout = self._cfg.get("AuthorisationTimeout")
            conn.pending = Pending(id_tag, parent, time.ticks_add(time.ticks_ms(), timeout * 1000),
                                   True)
            conn.update()
