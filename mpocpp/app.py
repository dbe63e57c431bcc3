# The composition root: a board calls run(board, provisioning). Charger
# builds every object with the collaborators it needs, makes the handlers of
# the central system's CALLs when they arrive (operations/), and runs the
# tasks: the link (with the sender while connected), the 1 Hz meter and the
# supervisor.
#
# Board contract (boards/<name>/board.py, docs/architecture.md): .name,
# .clock (.time() .set(s) .trusted), .flash_dir, .queue_dev (a raw block
# device or None), .net (open_connection), .connector_hw(i) (ConnectorHw or
# None), .led (or None), .limits, .reset(hard), .feed().
import asyncio
import gc
import time
from micropython import const
from mpocpp.util import clock
from mpocpp.util import fsutil
from mpocpp.util import log

_TAG = "app"
# The supervisor polls the pilot and runs the timers this often: the relay
# must open within 100 ms of the EV leaving C/D even without a pilot interrupt.
_SUPERVISOR_MS = const(50)
_SOFT_RESET_DRAIN_MS = const(10000)
_CHPROFILES = "/chprofiles"  # model/smartcharging.FILE: stored profiles


class _Setting:
    # A bound configuration getter (no closure), for the queue.
    def __init__(self, cfg, name):
        self.cfg = cfg
        self.name = name

    def __call__(self):
        return self.cfg.get(self.name)


def make_queue(board, cfg, on_transaction_id, wake):
    # The persistent message queue: transaction messages in one store, the
    # lower-priority rest in a smaller one, in the board's fixed budget.
    from mpocpp.queue.messages import MessageQueue
    # Provisioning may give a smaller budget ("queueBytes" setting, e.g. to
    # test a full queue); never more than the board has.
    total = board.limits.get("queueBytes", 65536)
    want = cfg.settings.get("queueBytes")
    if type(want) is int and 0 < want < total:
        total = want
    dev = board.queue_dev
    if dev is not None:
        from mpocpp.queue.ring import RingStore
        blocks = dev.ioctl(4, 0)
        blocks = min(blocks, max(4, total // (dev.ioctl(5, 0) or 4096)))
        other = max(2, blocks // 4)
        stores = (RingStore(dev, 0, blocks - other), RingStore(dev, blocks - other, other))
    else:
        from mpocpp.queue.lfs import LfsStore
        base = cfg.dir + "/queue"
        fsutil.makedirs(base)
        other = total // 4
        stores = (LfsStore(base + "/txn", total - other), LfsStore(base + "/other", other))
    q = MessageQueue(stores, _Setting(cfg, "TransactionMessageAttempts"),
                     _Setting(cfg, "TransactionMessageRetryInterval"),
                     on_transaction_id=on_transaction_id, wake=wake)
    q.mount()
    log.info(_TAG, "message queue: %d queued", len(q))
    return q


class Charger:
    def __init__(self, board, provisioning=None, overrides=None, firmware_version=None,
                 firmware_state=None):
        from mpocpp.model.config import Config
        from mpocpp.protocol.rpc import Rpc, MessageIds
        from mpocpp.protocol.registration import Registration
        from mpocpp.protocol.link import Link
        from mpocpp.queue.outbox import Outbox
        from mpocpp.queue.sender import Sender
        from mpocpp.model.connector import Connector
        from mpocpp.model.reservations import Reservations
        from mpocpp.model.availability import Availability
        from mpocpp.model.authorization import Authorization
        from mpocpp.model.sessions import Sessions
        from mpocpp.operations import Dispatcher
        from mpocpp.transfer.jobs import Jobs
        self.board = board
        self.firmware_state = firmware_state  # "pending" / "failed": an update booted
        clock.init(board.clock)
        cfg = self.cfg = Config(board.flash_dir, board.limits)
        cfg.load(provisioning)
        if clock.restore(cfg.dir + "/lasttime"):
            log.warn(_TAG, "no real-time clock: starting from the last known time %s",
                     clock.iso())
        if overrides:
            for k, v in overrides.items():
                if v is not None:
                    cfg.settings[k] = v
        if log.sink is None:  # recent lines in flash, for GetDiagnostics
            log.sink = log.FlashRing(cfg.dir + "/syslog", clock.stamp)
        self.wake = asyncio.Event()  # the sender's: something to send
        self.ids = MessageIds(cfg.dir + "/bootcount")
        self.rpc = Rpc(Dispatcher(self.make), self.ids)
        reg = self.registration = Registration(cfg, self.rpc, board.clock.trusted,
                                               firmware_version)
        self.outbox = Outbox(reg, self.wake)
        self.queue = make_queue(board, cfg, self.on_transaction_id, self.wake)
        self.sender = Sender(cfg, self.rpc, reg, self.outbox, self.queue, self.wake,
                             self.on_registered, self.on_delivered)
        self.link = Link(cfg, board.net, self.rpc, reg, self.sender.run, self.outbox.offline)
        n = cfg.get("NumberOfConnectors")
        hw = [board.connector_hw(i) if i else None for i in range(n + 1)]
        self.meter = self._make_meter(hw)
        lim = board.limits
        amps = lim.get("maxCurrentA", 32)
        self.connectors = [Connector(i, hw[i], cfg, self.meter, amps, self.outbox.status_changed)
                           for i in range(n + 1)]
        self.reservations = Reservations(self.connectors)
        self.availability = Availability(cfg.dir, self.connectors)
        self.authorization = Authorization(cfg, reg, self.sender.call_now,
                                           self.local_list_conflict)
        self.sessions = Sessions(cfg, self.connectors, self.queue, self.authorization,
                                 self.reservations, self.availability, self.meter, self,
                                 self.refused)
        self.jobs = Jobs(self.sender, self.outbox)
        self.metervalues = None  # metering.metervalues.MeterValues, made on first need
        self.smart = None  # model.smartcharging.SmartCharging, made on first need
        if self.meter is not None:
            self.meter.load()
            self._clock_aligned()  # else metering is imported on first need
        gc.collect()

    def _make_meter(self, hw):
        drivers = {}
        for i in range(1, len(hw)):
            if hw[i] is not None and hw[i].meter is not None:
                drivers[i] = hw[i].meter
        if not drivers:
            return None
        from mpocpp.metering.meter import Meter
        lim = self.board.limits
        return Meter(drivers, self.cfg.dir, phases=lim.get("phases", 3),
                     nominal_volts=lim.get("nominalVolts", 230), on_tick=self.on_meter_tick)

    # --- the handlers of the central system's CALLs (operations/) ---
    def make(self, name, mod):
        cfg = self.cfg
        cons = self.connectors
        if name == "core":
            return mod.Core(cfg, cons, self.sessions, self.availability, self.authorization,
                            self.registration, self.link, self.use_smart, self.configured,
                            self.reset)
        if name == "remotetrigger":
            return mod.RemoteTrigger(cons, self.registration, self.sender, self.outbox,
                                     self.meter_values, self.jobs)
        if name == "localauth":
            return mod.LocalAuthListManagement(cfg, self.authorization)
        if name == "reservation":
            return mod.Reservation(cfg, cons, self.reservations)
        if name == "smartcharging":
            return mod.SmartCharging(cons, self.sessions, self.use_smart())
        if name == "firmware":
            return mod.FirmwareManagement(cfg, cons, self.jobs, self.board.net,
                                          self.board.name, self.restart)
        if name == "diagnostics":
            return mod.Diagnostics(cfg, self.jobs, self.board.net, self.state_lines,
                                   log.sink.files)
        return None

    # --- features made on first need ---
    def use_metervalues(self):
        # MeterValues schedules and transactionData, made on first need (a
        # transaction, a triggered MeterValues, ClockAlignedDataInterval > 0):
        # until then nothing is due and its code stays out of the heap.
        m = self.metervalues
        if m is None and self.meter is not None:
            from mpocpp.metering.metervalues import MeterValues
            m = self.metervalues = MeterValues(self.cfg, self.meter, self.connectors, self.queue)
        return m

    def _clock_aligned(self):
        if self.metervalues is None and self.cfg.get("ClockAlignedDataInterval"):
            self.use_metervalues()

    def use_smart(self):
        s = self.smart
        if s is None:
            from mpocpp.model.smartcharging import SmartCharging
            lim = self.board.limits
            s = self.smart = SmartCharging(self.cfg, self.connectors, lim.get("nominalVolts", 230),
                                           lim.get("phases", 3), lim.get("maxCurrentA", 32))
            s.load()
        return s

    # --- events ---
    def on_meter_tick(self, now_ms):
        m = self.metervalues
        if m is not None:
            m.tick(now_ms)

    def meter_values(self, cid):
        # TriggerMessage(MeterValues): the latest values, or None without a meter.
        m = self.use_metervalues()
        return m.trigger(cid) if m is not None else None

    def tx_started(self, conn):
        m = self.use_metervalues()
        if m is not None:
            m.tx_started(conn)
        if self.smart is not None or conn.remote_profile is not None:
            self.use_smart().tx_started(conn)

    def tx_stopped(self, conn):
        if self.metervalues is not None:
            self.metervalues.tx_stopped(conn)
        s = self.smart
        if s is not None:
            if s.set.clear(None, conn.id, s.chp.TX, None):
                log.info(_TAG, "connector %d: TxProfile removed at transaction end", conn.id)
            s.apply()

    def tx_data(self, conn):
        m = self.use_metervalues()
        return m.tx_data(conn) if m is not None else None

    def on_transaction_id(self, placeholder, txid):
        self.sessions.on_transaction_id(placeholder, txid)

    def on_registered(self):
        # The first Accepted BootNotification since power-up.
        self.outbox.boot([c.status_payload() for c in self.connectors])
        if self.firmware_state:
            from mpocpp.operations import firmware
            firmware.booted(self.cfg.dir, self.outbox)  # Installed / InstallationFailed
            self.firmware_state = None

    def on_delivered(self, action, payload, res):
        # A queued transaction message was answered.
        info = res.get("idTagInfo")
        auth = self.authorization
        if action == "StartTransaction":
            auth.remember(payload["idTag"], info)
            cid = payload["connectorId"]
            if 0 < cid < len(self.connectors):
                conn = self.connectors[cid]
                if conn.tx is not None and \
                        self.queue.resolve(conn.tx.id) == res.get("transactionId"):
                    self.sessions.on_start_answer(conn, info)
        elif action == "StopTransaction" and info and payload.get("idTag"):
            auth.remember(payload["idTag"], info)

    def local_list_conflict(self):
        p = self.connectors[0].status_payload()
        p["errorCode"] = "LocalListConflict"
        self.outbox.add_status(p)

    def refused(self):
        led = self.board.led
        if led is not None:
            led.flash("faulted")

    def configured(self, name):
        # A key changed through ChangeConfiguration: its effects elsewhere.
        self.wake.set()  # intervals are read again at once
        self.sessions.on_config(name)
        if name == "ClockAlignedDataInterval":
            self._clock_aligned()
        elif name == "LightIntensity" and self.board.led is not None:
            self.board.led.intensity(self.cfg.get(name))

    # --- reset ---
    def reset(self, hard):
        # Reset.req (and a soft reset after a firmware install): transactions
        # end with SoftReset / HardReset, then the board restarts.
        self.sessions.stop_all("HardReset" if hard else "SoftReset")
        asyncio.create_task(self._reset(hard))

    def restart(self):
        # Boot the firmware just installed: the transactions ended before.
        asyncio.create_task(self._reset(False))

    async def _reset(self, hard):
        if not hard:
            # Graceful: give the queued StopTransactions a chance to go out.
            t0 = time.ticks_ms()
            while self.queue.pending_txn() and \
                    time.ticks_diff(time.ticks_ms(), t0) < _SOFT_RESET_DRAIN_MS:
                await asyncio.sleep_ms(100)
        else:
            await asyncio.sleep_ms(200)  # let the Reset.conf leave
        if self.meter is not None:
            self.meter.save()
        await self.link.close()
        if log.sink is not None:
            log.sink.flush()
        self.board.reset(hard)

    # --- state for diagnostics ---
    def state_lines(self):
        return ["firmware=%s" % (self.registration.payload().get("firmwareVersion")),
                "boot=%d" % self.ids.boot_count,
                "heap_free=%d" % gc.mem_free(), "heap_alloc=%d" % gc.mem_alloc(),
                "connection=%s" % self.link.state,
                "registration=%s" % self.registration.status,
                "queued=%d" % len(self.queue)] + \
            ["connector%d=%s %s" % (c.id, c.status, c.error_code) for c in self.connectors]

    # --- tasks ---
    def led_state(self):
        from mpocpp.model.connector import LED
        cons = self.connectors
        c = cons[1] if len(cons) > 1 else cons[0]
        for x in cons[1:]:
            if x.status in ("Charging", "Faulted"):
                c = x
        st = LED.get(c.status, "available")
        if st == "available" and not self.link.online:
            return "offline"
        return st

    async def supervisor(self):
        board = self.board
        while True:
            try:
                now = time.ticks_ms()
                self.sessions.tick(now)
                self.reservations.tick(clock.now())
                if self.smart is not None:
                    self.smart.tick(now)  # schedule periods change with time
                led = board.led
                if led is not None:
                    led.show(self.led_state())
                    led.tick(_SUPERVISOR_MS)
                board.feed()  # the watchdog: a stuck loop resets the board
            except Exception as e:
                log.exc(_TAG, "supervisor", e)
            await asyncio.sleep_ms(_SUPERVISOR_MS)

    async def run(self, extra_tasks=()):
        for t in extra_tasks:
            asyncio.create_task(t)
        log.info(_TAG, "charge point %s starting (boot %d, heap free %d)",
                 self.cfg.settings.get("chargeBoxId"), self.ids.boot_count, gc.mem_free())
        self.sessions.recover()
        led = self.board.led
        if led is not None:
            led.intensity(self.cfg.get("LightIntensity"))
        if fsutil.exists(self.cfg.dir + _CHPROFILES):
            self.use_smart().apply()  # stored profiles (E3.37)
        asyncio.create_task(self.supervisor())
        if self.meter is not None:
            asyncio.create_task(self.meter.run())
        await self.link.run()


def build(board, provisioning=None, overrides=None, firmware_version=None, firmware_state=None):
    return Charger(board, provisioning, overrides, firmware_version, firmware_state)


def run(board, provisioning=None, overrides=None, firmware_version=None, firmware_state=None):
    ch = build(board, provisioning, overrides, firmware_version, firmware_state)
    asyncio.run(ch.run())
