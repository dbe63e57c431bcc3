# Charging sessions (Core profile) as the charger sees them between
# sessions: the supervisor's timers, and the door to their work
# (model/sessionflow.py: card swipes, plug events, the start and stop of
# transactions, remote start and stop, PowerLoss recovery, the cable lock,
# reservations and availability), which is loaded by each event (a plug, a
# card, an answer, a remote start, a reservation) and released once unused
# for the setting idleReleaseMs, even while a transaction runs; what
# ondemand.py made for the sessions (MeterValues, smart charging) goes once
# every connector has stayed idle that long. So an idle charger's heap holds
# none of their code, and a transaction's only what it uses at each sample
# (the authorization store comes and goes with each use: authorization.py).
import time
from micropython import const
from mpocpp.util import clock
from mpocpp.util import log
from mpocpp.util import modules

_TAG = "session"
_FLOW = "mpocpp.model.sessionflow"
_AVAILABILITY = "mpocpp.model.availability"
_TRANSACTION = "mpocpp.model.transaction"
_TIMEPARSE = "mpocpp.util.timeparse"
# What the flow imports and nothing else at idle: released with it.
_FLOW_PARTS = (_FLOW, "mpocpp.model.reservations", _AVAILABILITY, _TRANSACTION)
_RELEASE_MS = const(30000)  # idleReleaseMs's default


class Assigner:
    # The queue's on_transaction_id: a StartTransaction was answered, so the
    # running transaction learns its id (in RAM and in its file). Here, not
    # in transaction.py, which is loaded with the session's work only.
    def __init__(self, connectors, flash_dir):
        self._cons = connectors
        self._dir = flash_dir

    def __call__(self, placeholder, txid):
        for c in self._cons:
            tx = c.tx
            if tx is not None and tx.id == placeholder:
                tx.id = txid
                from mpocpp.model import transaction  # loaded with the flow
                transaction.save(self._dir, tx)


class Sessions:
    # hooks: .tx_started(conn), .tx_stopped(conn), .tx_data(conn) -> list|None,
    # .held() -> bool, .idle() (metering and smart charging, made when first
    # needed: ondemand.py; idle(): every connector idle for idleReleaseMs);
    # led: the board's status LED (a refused card flashes it), or None.
    def __init__(self, cfg, connectors, queue, authorization, meter, hooks, led):
        self._cfg = cfg
        self.connectors = connectors  # index 0 = the charge point
        self._queue = queue
        self._auth = authorization
        self._meter = meter
        self._hooks = hooks
        self._led = led
        self._flow = None  # sessionflow.SessionFlow while loaded
        self._used_ms = None  # the tick that saw the flow's last use (None: not yet)
        self._idle_ms = None  # ticks since every connector is idle, hooks held
        self._missed = False  # a hardware event found no heap for the flow

    def _use(self):
        f = self._flow
        if f is None:
            f = self._flow = modules.load(_FLOW).SessionFlow(
                self._cfg, self.connectors, self._queue, self._auth, self._meter, self._hooks,
                self._led)
        self._used_ms = None  # the next tick stamps this use
        return f

    @staticmethod
    def _idle(c):
        # Nothing under way on the connector: no EV, no transaction, no
        # authorization waiting for a plug, no cable held for a card, no
        # reservation.
        return c.tx is None and c.pending is None and c.locked_for is None \
            and c.remote_profile is None and c.reservation is None and not c.plugged

    def find_tx(self, txid):
        # The connector running transaction txid (its id or its placeholder).
        q = self._queue
        for c in self.connectors[1:]:
            if c.tx is not None and (c.tx.id == txid or q.resolve(c.tx.id) == txid):
                return c
        return None

    def transaction_id(self, conn):
        # The transactionId the central system knows (or the placeholder).
        return self._queue.resolve(conn.tx.id)

    def delivered(self, action, payload, res):
        # A queued transaction message was answered: the idTagInfo updates
        # the cache; a StartTransaction's answers the transaction.
        info = res.get("idTagInfo")
        if action == "StartTransaction":
            self._auth.remember(payload["idTag"], info)
            cid = payload["connectorId"]
            if 0 < cid < len(self.connectors):
                conn = self.connectors[cid]
                if conn.tx is not None and \
                        self._queue.resolve(conn.tx.id) == res.get("transactionId"):
                    self._use().on_start_answer(conn, info)
        elif action == "StopTransaction" and info and payload.get("idTag"):
            self._auth.remember(payload["idTag"], info)

    # --- what the session's work does (sessionflow.py) ---
    def on_config(self, name):
        # Configuration keys that act on the hardware or start a session.
        if name == "LockCablePermanently" or name == "FreeCharging":
            self._use().on_config(name)

    def recover(self):
        # After a restart: the pilots read (an EV still plugged in comes back
        # Preparing, or Finishing after its transaction's PowerLoss stop), a
        # transaction left on flash ended, ChangeAvailability's flags read.
        from mpocpp.model.availability import Availability
        from mpocpp.model import transaction
        Availability(self._cfg.dir, self.connectors).load()
        work = False
        for c in self.connectors[1:]:
            c.poll()
            if c.plugged or transaction.exists(self._cfg.dir, c.id):
                work = True
        if work:
            self._use().recover()
        elif self._flow is None:
            modules.release(_AVAILABILITY)
            modules.release(_TRANSACTION)
        for c in self.connectors:
            c.status = c.derive()

    def _event(self, conn):
        # The flow handles a hardware change. When it cannot be loaded (no
        # heap), the connector still drives its outputs from what it reads
        # (the relay opens for an EV gone) and the next tick hands every
        # connector to the flow again: the change is not lost.
        try:
            f = self._use()
        except MemoryError:
            self._missed = True
            conn.update()
            raise
        f.on_event(conn)

    def hw_event(self, conn):
        # The hardware changed (bench, interrupt): look now rather than at
        # the next supervisor poll.
        conn.poll()
        self._event(conn)

    def swipe(self, id_tag):
        self._use().swipe(id_tag)

    def stop(self, conn, reason, id_tag=None):
        return conn.tx is not None and self._use().stop(conn, reason, id_tag)

    def stop_all(self, reason):
        # Every running transaction ends with `reason` (Reboot before a
        # firmware install, HardReset, EmergencyStop...); returns how many.
        for c in self.connectors[1:]:
            if c.tx is not None:
                return self._use().stop_all(reason)
        return 0

    def emergency_stop(self, on):
        self._use().emergency_stop(on)

    def unlock(self, conn):
        # UnlockConnector: a coroutine -> True when the lock reports it open.
        return self._use().unlock(conn)

    def on_start_answer(self, conn, info):
        self._use().on_start_answer(conn, info)

    def remote_start(self, id_tag, cid, profile=None):
        return self._use().remote_start(id_tag, cid, profile)

    # --- timers (supervisor) ---
    def tick(self, now_ms):
        cfg = self._cfg
        f = self._flow
        idle = f is None or not f.busy
        missed = self._missed
        self._missed = False
        for c in self.connectors[1:]:
            changed = c.poll() or missed
            p = c.pending
            if p is not None and time.ticks_diff(now_ms, p.deadline_ms) >= 0:
                log.info(_TAG, "connector %d: no plug in time, authorization dropped", c.id)
                c.pending = None
                c.remote_profile = None
                changed = True
            if c.reservation is not None:
                # A reserved connector stays Reserved with a cable in;
                # ConnectionTimeOut counts from the reservation's end.
                if c.plug_since is not None:
                    c.plug_since = now_ms
            elif c.tx is None and c.pending is None and c.plugged and not c.finishing \
                    and c.plug_since is not None and not cfg.get("FreeCharging"):
                if time.ticks_diff(now_ms, c.plug_since) >= cfg.get("ConnectionTimeOut") * 1000:
                    log.info(_TAG, "connector %d: ConnectionTimeOut without authorization", c.id)
                    c.finishing = True
                    changed = True
            if changed:
                self._event(c)
            else:
                c.update()
            if idle and not self._idle(c):
                idle = False
        for c in self.connectors:
            if c.reservation is not None:  # (connector 0's too)
                idle = False
                self._use().expire_reservations(clock.now())
                break
        for c in self.connectors:
            c.report_due(now_ms)
        wait = self._cfg.settings.get("idleReleaseMs", _RELEASE_MS)
        f = self._flow  # (loaded by this tick, perhaps)
        if self._used_ms is None:
            self._used_ms = now_ms
        elif f is not None and not f.busy and time.ticks_diff(now_ms, self._used_ms) >= wait:
            # The flow keeps nothing between events (the connectors and the
            # transaction records do): it goes once unused that long, with
            # a transaction running or not, and the next event loads it.
            self._flow = None
            for name in _FLOW_PARTS:
                modules.release(name)
            modules.release(_TIMEPARSE)  # IdTagInfo's, profiles' dates
        if self._hooks.held():
            if not idle:
                self._idle_ms = None
            elif self._idle_ms is None:
                self._idle_ms = now_ms
            elif time.ticks_diff(now_ms, self._idle_ms) >= wait:
                self._idle_ms = None
                self._hooks.idle()
