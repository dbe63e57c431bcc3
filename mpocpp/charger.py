# The running charge point: the tasks (the link with the sender while
# connected, the 1 Hz meter, the supervisor), the handlers of the central
# system's CALLs made when they arrive (operations/), and the few events
# that cross features (a key changed, a reset). Built by app.py.
import asyncio
import gc
import time
from micropython import const
from mpocpp.util import clock
from mpocpp.util import log
from mpocpp.util import modules

_TAG = "app"
_HANDLERS = "mpocpp.handlers"
_EVENTS = "mpocpp.model.securityevents"
# The supervisor polls the pilot and runs the timers this often: the relay
# must open within 100 ms of the EV leaving C/D even without a pilot interrupt.
_SUPERVISOR_MS = const(50)
_SOFT_RESET_DRAIN_MS = const(10000)
# Running out of heap: every MemoryError is logged and followed by a
# collection; this many within the window means the heap stays fragmented,
# and the charger restarts cleanly rather than failing forever.
_OOM_LIMIT = const(5)
_OOM_WINDOW_MS = const(120000)
_RESERVE = const(2048)  # bytes set aside for a restart out of heap
# A collection after this many bytes allocated, not only when the heap is
# full: objects that live long (lazily loaded modules, the qstr pool's next
# block, TLS contexts) then fill the low holes instead of landing among
# garbage, which keeps one large free block (docs/benchmarks.md).
_GC_EVERY = const(8192)
_REASON = "/resetreason"  # why the firmware restarted itself: read at boot by app.py
# InvalidMessages goes to the security log at most this often (flash wear);
# the next entry counts the ones in between.
_INVALID_MS = const(600000)
# The certificate renewal check's longest period: ticks_diff's range is half
# the tick counter's (2**30 ms on most ports).
_RENEW_MAX_S = const(432000)


class Charger:
    def __init__(self, board, provisioning=None, overrides=None, firmware_version=None,
                 firmware_state=None):
        # The wiring (app.py) is imported for the boot only.
        app = modules.load("mpocpp.app")
        try:
            p = app.wire(board, provisioning, overrides, firmware_version, self.make,
                         self.on_registered, self._clock_set, self.invalid_message,
                         self.security_event)
        finally:
            modules.release("mpocpp.app")
        self.board = board
        self.cfg = p.cfg
        self.ids = p.ids  # rpc.MessageIds (its boot_count)
        self.registration = p.registration
        self.outbox = p.outbox
        self.queue = p.queue
        self.sender = p.sender
        self.link = p.link
        self.rpc = p.rpc
        self.meter = p.meter
        self.connectors = p.connectors
        self.authorization = p.authorization
        self.sessions = p.sessions
        self.ondemand = p.ondemand
        self._wake = p.wake
        self._firmware_state = firmware_state  # "pending" / "failed": an update booted
        self._jobs = None  # transfer.jobs.Jobs, made by use_jobs()
        self._oom_n = 0
        self._oom_t0 = 0
        self._restarting = False
        self._tamper = False  # the enclosure seen open
        self._pause_t = 0  # ticks of the last pause() that did the work
        self._renew_t = None  # ticks of the last certificate renewal check
        self._limited = {}  # event kind -> [count since its last entry, entry ticks]
        # Kept free for a restart out of heap: with it back, the reason file
        # and the StopTransactions can still be written to flash.
        self._reserve = bytearray(_RESERVE)
        log.oom = self.out_of_memory
        self.security_event("StartupOfTheDevice", "boot %d" % self.ids.boot_count)
        if p.reset_reason == b"MemoryExhaustion":
            self.security_event("MemoryExhaustion", "restarted after repeated MemoryError")
        gc.collect()
        gc.threshold(_GC_EVERY)

    def security_event(self, kind, tech_info=None, send=False):
        # A security event (model/securityevents.py: the security log, and
        # SecurityEventNotification for the critical ones). They are rare: the
        # module and the log's ring are made for each and let go after it.
        m = modules.load(_EVENTS)
        try:
            m.SecurityEvents(self.queue, m.ring(self.cfg.dir)).emit(kind, tech_info, send)
        finally:
            modules.release(_EVENTS)

    def security_log(self):
        # The security log's files, oldest first (GetLog SecurityLog).
        m = modules.load(_EVENTS)
        try:
            return m.ring(self.cfg.dir).files()
        finally:
            modules.release(_EVENTS)

    def out_of_memory(self, tag):
        # A MemoryError was logged (log.exc): collect, and when they keep
        # coming, restart cleanly: the transactions end with reason Reboot,
        # the queue and the configuration are in flash.
        gc.collect()
        now = time.ticks_ms()
        if not self._oom_n or time.ticks_diff(now, self._oom_t0) > _OOM_WINDOW_MS:
            self._oom_n = 0
            self._oom_t0 = now
        self._oom_n += 1
        log.warn(_TAG, "out of memory in %s (%d in %d s), %d bytes free", tag, self._oom_n,
                 time.ticks_diff(now, self._oom_t0) // 1000, gc.mem_free())
        if self._oom_n >= _OOM_LIMIT and not self._restarting:
            self.restart_for("MemoryExhaustion")

    def restart_for(self, reason):
        # A clean restart the firmware decides on: the reason is kept in
        # flash for the next boot. Nothing here may stop the reset: out of
        # heap, a step that fails is skipped (a transaction not stopped now is
        # stopped with PowerLoss at the next boot).
        self._restarting = True
        self._reserve = None
        gc.collect()
        try:
            log.error(_TAG, "restarting: %s", reason)
            try:
                self.security_event("ResetOrReboot", reason)
            except Exception:  # out of heap: the reset goes on
                pass
            from mpocpp.util import fsutil
            try:
                fsutil.write_atomic(self.cfg.dir + _REASON, reason.encode())
            except (OSError, MemoryError):
                pass
            try:
                self.sessions.stop_all("Reboot")
            except Exception as e:
                log.exc(_TAG, "stopping transactions", e)
        finally:
            try:
                asyncio.create_task(self._reset(True))
            except MemoryError:
                self.board.reset(True)

    def on_registered(self):
        # The first Accepted BootNotification since power-up: every
        # connector's status (E3.22); after an update, Installed or
        # InstallationFailed.
        self.outbox.boot([c.status_payload() for c in self.connectors])
        self._renew()
        if self._firmware_state:
            self._firmware_state = None
            from mpocpp.operations import firmware
            if firmware.booted(self.cfg.dir, self.outbox, self.use_jobs()) == "Installed":
                self.security_event("FirmwareUpdated",
                                    self.registration.payload().get("firmwareVersion"))

    def _renew(self):
        # A03: the client certificate renewed a month before it expires;
        # checked at registration and then every certRenewCheckS.
        self._renew_t = time.ticks_ms()
        if self.cfg.get("SecurityProfile") >= 3:
            asyncio.create_task(self.sign_certificate(True))

    def use_jobs(self):
        # The file transfers' state (transfer/jobs.py: their statuses and
        # tasks), made by the first transfer, status trigger or update
        # report, and kept from then on: most chargers never load it.
        j = self._jobs
        if j is None:
            from mpocpp.transfer.jobs import Jobs
            j = self._jobs = Jobs(self.sender, self.outbox)
        return j

    # --- the handlers of the central system's CALLs (operations/) ---
    def make(self, name, mod):
        # operations.Dispatcher: the handler object of module `name`, built
        # by handlers.py (imported for the moment, as the operation is).
        try:
            return modules.load(_HANDLERS).make(self, name, mod)
        finally:
            modules.release(_HANDLERS)

    def sign_certificate(self, renew=False):
        # Security whitepaper A02 / A03: a coroutine that makes a new key pair
        # and sends SignCertificate (operations/certsigning.py), to run as a
        # task (ExtendedTriggerMessage SignChargePointCertificate returns it as
        # its follow-up: rpc.py runs it after the answer). It ends True when
        # the CSMS accepted the CSR; CertificateSigned follows. renew: only
        # when the certificate in use expires within a month (A03).
        name = "mpocpp.operations.certsigning"
        try:
            h = self.make("certsigning", modules.load(name))
            return h.renew() if renew else h.sign_certificate()
        finally:
            modules.release(name)

    def security_changed(self, what):
        # A certificate installed or deleted (operations/security.py).
        self.security_event("ReconfigurationOfSecurityParameters", what)

    def invalid_message(self, kind, what):
        # rpc.Rpc: a message from the central system that is not valid OCPP
        # (InvalidMessages) or repeats a CALL id (AttemptedReplayAttacks).
        # Each kind goes to the security log at most every _INVALID_MS.
        now = time.ticks_ms()
        st = self._limited.get(kind)
        if st is None:
            st = self._limited[kind] = [0, 0]
        n = st[0]
        if n and time.ticks_diff(now, st[1]) < _INVALID_MS:
            st[0] = n + 1
            return
        st[0] = 1
        st[1] = now
        self.security_event(kind, what if n < 2 else
                            "%s (and %d since the last entry)" % (what, n - 1))

    def _clock_set(self, before, after):
        # The central system's currentTime moved the clock (registration.py).
        self.security_event("SettingSystemTime", "%s -> %s" % (clock.iso(before),
                                                                clock.iso(after)))

    def configured(self, name):
        # A key changed through ChangeConfiguration: its effects elsewhere.
        self._wake.set()  # intervals are read again at once
        if name == "SecurityProfile" or name == "AuthorizationKey":
            self.security_event("ReconfigurationOfSecurityParameters", name)  # never the value
        self.sessions.on_config(name)
        self.ondemand.configured(name)
        if name == "LightIntensity" and self.board.led is not None:
            self.board.led.intensity(self.cfg.get(name))

    # --- reset ---
    def reset(self, hard):
        # Reset.req: transactions end with SoftReset / HardReset, then the
        # board restarts.
        self.sessions.stop_all("HardReset" if hard else "SoftReset")
        self.security_event("ResetOrReboot", "Reset " + ("Hard" if hard else "Soft"))
        asyncio.create_task(self._reset(hard))

    def restart(self):
        # Boot the firmware just installed (the transactions ended before).
        self.security_event("ResetOrReboot", "firmware update")
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
        try:
            if self.meter is not None:
                self.meter.save()
            await self.link.close()
            if log.sink is not None:
                log.sink.flush()
        except Exception as e:  # out of heap, say: the restart goes on
            log.exc(_TAG, "before the reset", e)
        finally:
            self.board.reset(hard)

    def pause(self):
        # Called from inside long crypto (a P-256 multiplication takes about
        # a second on an RP2040, the loop stands still meanwhile): what the
        # supervisor must not miss, at its own period. The pilot is read and
        # the relay follows it (an EV leaving state C), the watchdog fed.
        now = time.ticks_ms()
        if time.ticks_diff(now, self._pause_t) >= _SUPERVISOR_MS:
            self._pause_t = now
            self.sessions.tick(now)
            self.board.feed()

    # --- tasks ---
    def _led_state(self):
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
                self.ondemand.supervise(now)
                self.rpc.tick(now)
                led = board.led
                if led is not None:
                    led.show(self._led_state())
                    led.tick(_SUPERVISOR_MS)
                t = self._renew_t
                if t is not None and time.ticks_diff(now, t) >= \
                        min(self.cfg.settings.get("certRenewCheckS", 86400), _RENEW_MAX_S) * 1000:
                    self._renew()
                t = board.tamper
                if t is not None:
                    t = bool(t.value())
                    if t and not self._tamper:
                        self.security_event("TamperDetectionActivated", "enclosure opened")
                    self._tamper = t
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
        self.ondemand.boot()
        asyncio.create_task(self.supervisor())
        if self.meter is not None:
            asyncio.create_task(self.meter.run(self.ondemand.tick))
        await self.link.run()
