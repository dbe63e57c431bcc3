# The charge point: owns the configuration, the RPC layer, the link and the
# connectors, and maps each OCPP action to its handler. Handlers live in one
# module per feature profile and are imported on their first message, so the
# bytecode of rarely used profiles never occupies the heap until needed.
import os
import time
import asyncio
from micropython import const
from mpocpp.util import log
from mpocpp.util import clock
from mpocpp.util import fsutil
from mpocpp.protocol.rpc import Rpc, Offline, CallError, CallTimeout, Reply, NOT_SUPPORTED

_TAG = "cp"

# action -> handler module (feature profile). Handler functions carry the
# OCPP action name, e.g. core.ChangeConfiguration(cp, payload).
_HANDLERS = {
    "CancelReservation": "reservation",
    "ChangeAvailability": "core",
    "ChangeConfiguration": "core",
    "ClearCache": "core",
    "ClearChargingProfile": "smartcharging",
    "DataTransfer": "core",
    "GetCompositeSchedule": "smartcharging",
    "GetConfiguration": "core",
    "GetDiagnostics": "firmware",
    "GetLocalListVersion": "localauth",
    "RemoteStartTransaction": "core",
    "RemoteStopTransaction": "core",
    "ReserveNow": "reservation",
    "Reset": "core",
    "SendLocalList": "localauth",
    "SetChargingProfile": "smartcharging",
    "TriggerMessage": "remotetrigger",
    "UnlockConnector": "core",
    "UpdateFirmware": "firmware",
}

_SN_MAX = const(16)
# The supervisor polls the pilot (and runs the timers) this often: the relay
# must open within 100 ms of the EV leaving C/D even without a pilot interrupt.
_SUPERVISOR_MS = const(50)  # RAM outbox of StatusNotifications (collapsed beyond)


def _import(name):
    # mpocpp.operations.<name> (a fromlist makes __import__ return the module).
    return __import__("mpocpp.operations." + name, None, None, ("_",))


class ChargePoint:
    def __init__(self, board, cfg):
        self.board = board
        self.cfg = cfg
        self.rpc = Rpc(self.dispatch, self._next_id)
        from mpocpp.protocol.link import Link
        self.link = Link(self)
        self.registered_once = False  # an Accepted BootNotification since power-up
        self.queue = None  # persistent transaction message queue (msgqueue)
        self.connectors = []  # index 0 = the charge point itself
        self._sn = []  # StatusNotification payloads waiting to be sent
        self._sn_dirty = set()  # connectors that changed state while offline
        self._sn_first = False  # after boot: statuses before the queued messages
        self._triggered = []  # (action, payload) requested by TriggerMessage
        self._mods = {}
        self._id_n = 0
        self._id_prefix = self._boot_count()
        self.vendor_handlers = {}  # DataTransfer vendorId -> callable(messageId, data)
        self.meter = None  # meter.Meter once the board has metering
        self.metering = None  # metering.Metering, made on first need (use_metering)
        self._auth = None
        self.smart = None  # smartcharging.Smart: installed profiles, once loaded
        from mpocpp.model.sessions import Sessions
        self.sessions = Sessions(self)
        cfg.on_change = self.on_config_change

    # --- message ids: unique across reconnects and reboots ---
    def _boot_count(self):
        path = self.cfg.dir + "/bootcount"
        try:
            n = int(fsutil.read(path, b"0")) + 1
        except ValueError:
            n = 1
        fsutil.write_atomic(path, str(n).encode())
        self.boot_count = n
        return "%x%04x-" % (n, int.from_bytes(os.urandom(2), "big"))

    def _next_id(self):
        self._id_n += 1
        return self._id_prefix + "%x" % self._id_n

    # --- incoming CALLs ---
    def dispatch(self, action, payload):
        modname = _HANDLERS.get(action)
        mod = self._mods.get(modname) if modname else None
        if mod is None and modname:
            try:
                mod = _import(modname)
                self._mods[modname] = mod
            except ImportError:
                mod = None
        fn = getattr(mod, action, None) if mod else None
        if fn is None:
            raise Reply(NOT_SUPPORTED, action + " not supported")
        return fn(self, payload)

    def module(self, name):
        mod = self._mods.get(name)
        if mod is None:
            mod = _import(name)
            self._mods[name] = mod
        return mod

    # --- outgoing ---
    def boot_payload(self):
        p = {}
        for k, v in self.cfg.identity.items():
            if v:
                p[k] = v
        p.setdefault("chargePointVendor", "Unknown")
        p.setdefault("chargePointModel", "Unknown")
        v = getattr(self.board, "fw_version", None)  # an installed image runs (fwimage)
        if v:
            p["firmwareVersion"] = v
        return p

    async def call(self, action, payload):
        # An immediate CALL (e.g. Authorize): raises Offline when the charger
        # is not connected and accepted, CallError / CallTimeout on failure.
        if not self.link.online or self.link.registration != "Accepted":
            raise Offline()
        return await self.link.call(action, payload)

    def on_accepted(self):
        if not self.registered_once:
            self.registered_once = True
            # E3.22: after an Accepted BootNotification, the status of
            # connector 0 and of every connector, before the queued
            # transaction messages (scenario 46: Boot, SN, StopTransaction).
            self._sn = []
            self._sn_dirty = set()
            for c in self.connectors:
                self._sn.append(c.status_payload())
            self._sn_first = True
            if getattr(self.board, "fw_state", None):
                self.module("firmware").booted(self)  # Installed / InstallationFailed
        else:
            self._flush_dirty()
        self.link.kick()

    def on_reconnected(self):
        # The link is back and still registered (no new BootNotification):
        # connectors that changed while offline report their current state.
        self._flush_dirty()
        self.link.kick()

    def on_offline(self):
        # After a reconnection the queued transaction messages go first
        # (scenario 40), even if boot statuses are still waiting.
        self._sn_first = False

    def status_changed(self, conn):
        # A connector's status changed: StatusNotification now, or, while
        # offline, once as the current state after the reconnect.
        if self.link.online and self.link.registration == "Accepted":
            if len(self._sn) >= _SN_MAX:
                self._sn = [p for p in self._sn if p["connectorId"] != conn.id]
            self._sn.append(conn.status_payload())
            self.link.kick()
        else:
            self._sn_dirty.add(conn.id)

    def _flush_dirty(self):
        # Offline rules of the reference charger: what was queued before the
        # link dropped stays; a connector that changed while offline reports
        # once, its current state stamped now (the reconnection); errors that
        # came and went offline are not replayed.
        for cid in sorted(self._sn_dirty):
            if cid >= len(self.connectors):
                continue
            p = self.connectors[cid].status_payload()
            last = None
            for q in self._sn:
                if q["connectorId"] == cid:
                    last = q
            if last is not None and last["status"] == p["status"] and \
                    last["errorCode"] == p["errorCode"] and last.get("info") == p.get("info"):
                continue  # already waiting to go
            if len(self._sn) >= _SN_MAX:
                self._sn = [q for q in self._sn if q["connectorId"] != cid]
            self._sn.append(p)
        self._sn_dirty = set()

    def trigger(self, action, payload):
        self._triggered.append((action, payload))
        self.link.kick()

    async def send_triggered(self, link):
        if not self._triggered:
            return False
        action, payload = self._triggered.pop(0)
        try:
            await link.call(action, payload)
        except (CallError, CallTimeout):
            pass
        return True

    async def send_next(self, link):
        # One CALL, in priority order; False when idle. Triggered messages
        # first; after a boot the statuses of all connectors (E3.22), then
        # transaction messages (in order, before anything else queued), then
        # StatusNotifications, then the lower-priority queue.
        if self._triggered:
            return await self.send_triggered(link)
        item = None
        q = self.queue
        if q is not None:
            item = q.peek(time.ticks_ms())
        if self._sn and (self._sn_first or item is None or not q.is_txn(item[0])):
            p = self._sn[0]
            try:
                await link.call("StatusNotification", p)
            except (CallError, CallTimeout):
                pass
            if self._sn and self._sn[0] is p:
                self._sn.pop(0)
            return True
        self._sn_first = False
        if item is not None:
            await self._send_queued(link, item)
            return True
        return False

    async def _send_queued(self, link, item):
        qid, action, payload = item
        try:
            res = await link.call(action, payload)
        except (CallError, CallTimeout):
            self.queue.failed(qid, time.ticks_ms())
            return
        self.queue.delivered(qid, res)
        self.on_delivered(action, payload, res)

    def on_delivered(self, action, payload, res):
        from mpocpp.model import authorization as auth
        info = res.get("idTagInfo")
        if action == "StartTransaction":
            auth.remember(self, payload["idTag"], info)
            cid = payload["connectorId"]
            if 0 < cid < len(self.connectors):
                conn = self.connectors[cid]
                if conn.tx is not None and self.queue.resolve(conn.tx.id) == res.get("transactionId"):
                    self.sessions.on_start_answer(conn, info)
        elif action == "StopTransaction" and info and payload.get("idTag"):
            auth.remember(self, payload["idTag"], info)

    def next_due_ms(self):
        q = self.queue
        if q is not None and hasattr(q, "due_in_ms"):
            return q.due_in_ms(time.ticks_ms())
        return None

    # --- hardware and bench events ---
    def hw_event(self, conn):
        # The bench (or an interrupt) says the hardware changed: look now
        # instead of waiting for the next supervisor poll.
        conn.poll()
        self.sessions.on_event(conn)

    def swipe(self, id_tag):
        log.info(_TAG, "card presented: %s" % id_tag)
        self.sessions.swipe(id_tag)

    def raise_error(self, conn, code, info=None):
        log.warn(_TAG, "connector %d: fault %s" % (conn.id, code))
        conn.fault = (code, info)
        conn.update()

    def clear_error(self, conn):
        conn.fault = None
        conn.update()

    def signal_refused(self):
        led = self.board.led
        if led is not None and hasattr(led, "flash"):
            led.flash("faulted")

    def local_list_conflict(self):
        c0 = self.connectors[0]
        p = c0.status_payload()
        p["errorCode"] = "LocalListConflict"
        self._sn.append(p)
        self.link.kick()

    def max_amps(self):
        return self.board.limits.get("maxCurrentA", 32)

    def auth_store(self):
        if self._auth is None:
            from mpocpp.model.authstore import AuthStore
            self._auth = AuthStore(self.cfg.dir + "/auth",
                                   list_max=self.cfg.get("LocalAuthListMaxLength"))
            self._auth.mount()
        return self._auth

    # --- transactions (hooks the metering fills in) ---
    def push_txn(self, action, payload, placeholder=None, txn=True):
        q = self.queue
        if q is None:
            log.error(_TAG, "no message queue: %s lost" % action)
            return None
        qid = q.push(action, payload, txn, placeholder)
        self.link.kick()
        return qid

    def on_config_change(self, name):
        # Timers that depend on configuration pick the new value up at once;
        # keys that act on the hardware (LightIntensity, LockCablePermanently,
        # FreeCharging) are applied by the sessions.
        self.link.kick()
        self.sessions.on_config(name)
        if name == "ClockAlignedDataInterval":
            self.check_clock_aligned()

    # --- metering, imported on first need ---
    def use_metering(self):
        # metering.Metering (MeterValues schedules, transactionData), made when
        # first needed: a transaction, a triggered MeterValues, Sample.Clock
        # values. Until then nothing is due and its code stays out of the heap.
        m = self.metering
        if m is None and self.meter is not None:
            from mpocpp.metering.metering import Metering
            m = self.metering = Metering(self, self.meter)
        return m

    def check_clock_aligned(self):
        # Sample.Clock values are due without any transaction.
        if self.metering is None and self.cfg.get("ClockAlignedDataInterval"):
            self.use_metering()

    def on_transaction_id(self, placeholder, txid):
        # StartTransaction answered: the running transaction learns its id.
        for c in self.connectors[1:]:
            if c.tx is not None and c.tx.id == placeholder:
                c.tx.id = txid
                c.save_tx()

    def tx_started(self, conn):
        m = self.use_metering()
        if m is not None:
            m.tx_started(conn)
        if self.smart is not None or conn.remote_profile is not None:
            self.module("smartcharging").tx_started(self, conn)

    def tx_stopped(self, conn):
        if self.metering is not None:
            self.metering.tx_stopped(conn)
        if self.smart is not None:
            self.smart.tx_stopped(conn)

    def tx_data(self, conn, stop_payload):
        m = self.use_metering()
        return m.tx_data(conn) if m is not None else None

    def tx_data_recovered(self, conn, stop_payload):
        # After a power cut: the values kept in flash, closed by the restored register.
        return self.tx_data(conn, stop_payload)

    def meter_values_payload(self, cid, context):
        # TriggerMessage(MeterValues): the latest MeterValuesSampledData values.
        m = self.use_metering()
        return m.trigger(cid) if m is not None else None

    def bench_state(self):
        import gc
        cons = []
        for c in self.connectors[1:]:
            cons.append(c.bench_state())
        led = self.board.led
        return {"connectors": cons, "status0": self.connectors[0].status,
                "led": led.state if led else None,
                "connection": self.link.state, "registration": self.link.registration,
                "heap": {"free": gc.mem_free(), "alloc": gc.mem_alloc()},
                "boot": self.boot_count}

    # --- lifecycle ---
    async def supervisor(self):
        while True:
            try:
                now = time.ticks_ms()
                self.sessions.tick(now)
                if self.smart is not None:
                    self.smart.tick(now)  # schedule periods change with time
                led = self.board.led
                if led is not None:
                    led.show(self.led_state())
                    led.tick(_SUPERVISOR_MS)
                feed = getattr(self.board, "feed", None)
                if feed is not None:
                    feed()  # the watchdog: a stuck loop resets the board
            except Exception as e:
                log.exc(_TAG, "supervisor", e)
            await asyncio.sleep_ms(_SUPERVISOR_MS)

    def led_state(self):
        from mpocpp.model import connector
        c = self.connectors[1] if len(self.connectors) > 1 else self.connectors[0]
        for x in self.connectors[1:]:
            if x.status in ("Charging", "Faulted"):
                c = x
        st = connector._LED.get(c.status, "available")
        if st == "available" and not self.link.online:
            return "offline"
        return st

    def forget_stopped(self):
        # A power cut after a transaction's StopTransaction was queued but
        # before its file was deleted: it is over, so forget it rather than
        # let recover() stop it a second time with PowerLoss.
        q = self.queue
        if q is None:
            return
        for c in self.connectors[1:]:
            tx = c.load_tx()
            if tx is not None and q.has_stop(tx.id, tx.start):
                log.warn(_TAG, "connector %d: transaction %s was stopped before the power cut" % (
                    c.id, tx.id))
                c.drop_tx_file()

    async def run(self):
        self.forget_stopped()
        self.sessions.recover()
        for c in self.connectors:
            c.status = c.derive()
        if fsutil.exists(self.cfg.dir + "/chprofiles"):
            self.module("smartcharging").boot(self)  # stored profiles (E3.37)
        asyncio.create_task(self.supervisor())
        if self.meter is not None:
            asyncio.create_task(self.meter.run())
        await self.link.run()
