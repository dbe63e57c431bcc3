# Connection manager: opens the WebSocket (with back-off and jitter), reads
# frames into the RPC layer, keeps the connection alive with PINGs, and runs
# the sender: BootNotification and its registration gates, then queued
# transaction messages, status notifications and Heartbeats, one CALL at a time.
import asyncio
import random
import time
from micropython import const
from mpocpp.util import log
from mpocpp.util import clock
from mpocpp.protocol.rpc import CallError, CallTimeout, Offline
from mpocpp.protocol.ws import WebSocket, WsError

_TAG = "link"
ACCEPTED = "Accepted"
PENDING = "Pending"
REJECTED = "Rejected"

_SAFE = "-_.~"


def quote(s):
    # Percent-encode the charge box id for the URL path (RFC 3986 unreserved kept).
    out = []
    for ch in s.encode():
        c = chr(ch)
        if ("A" <= c <= "Z") or ("a" <= c <= "z") or ("0" <= c <= "9") or c in _SAFE:
            out.append(c)
        else:
            out.append("%%%02X" % ch)
    return "".join(out)


def _pem_to_der(pem):
    import binascii
    if isinstance(pem, bytes):
        if not pem.startswith(b"-----"):
            return pem
        pem = pem.decode()
    body = []
    inside = False
    for line in pem.split("\n"):
        line = line.strip()
        if line.startswith("-----BEGIN"):
            inside = True
        elif line.startswith("-----END"):
            break
        elif inside and line:
            body.append(line)
    return binascii.a2b_base64("".join(body))


class Link:
    def __init__(self, cp):
        self.cp = cp
        self.ws = None
        self.state = "offline"  # offline | connecting | online
        self.registration = None  # None until the first BootNotification answer
        self.connects = 0
        self.failures = 0
        self._kick = asyncio.Event()
        self._reconnect = False
        self._last_call_ms = time.ticks_ms()
        self._sp_trial = False  # connecting with a new SecurityProfile (cfg.previous_security)
        self._boot_due = 0
        self._ws_obj = None

    # --- called by the charge point ---
    def kick(self):
        # Something was queued: wake the sender.
        self._kick.set()

    def reconnect(self):
        # Configuration that affects the connection changed (AuthorizationKey,
        # SecurityProfile): close and connect again with the new settings.
        self._reconnect = True
        if self.ws is not None:
            self.ws.abort()

    @property
    def online(self):
        return self.state == "online"

    # --- connection loop ---
    async def run(self):
        cfg = self.cp.cfg
        attempt = 0
        while True:
            self.state = "connecting"
            try:
                ws = await self._connect()
            except Exception as e:  # WsError, OSError, MemoryError: back off, never crash
                self.state = "offline"
                self.failures += 1
                attempt += 1
                st = getattr(e, "status", None)
                log.warn(_TAG, "connect failed (%s%s)" % (e, "" if st is None else ", HTTP %d" % st))
                self._security_failed(attempt)
                await self._backoff(attempt)
                continue
            attempt = 0
            self._sp_trial = False  # the new SecurityProfile works
            self.connects += 1
            self.ws = ws
            self.state = "online"
            log.info(_TAG, "connected (%d)" % self.connects)
            await self._session(ws)
            self.ws = None
            self.state = "offline"
            self.cp.on_offline()
            log.info(_TAG, "disconnected (code %s)" % ws.close_code)
            if self._reconnect:
                self._reconnect = False
                continue
            attempt = 1
            await self._backoff(attempt)

    async def _backoff(self, attempt):
        s = self.cp.cfg.settings
        lo = s.get("reconnectMinMs", 2000)
        hi = s.get("reconnectMaxMs", 30000)
        d = lo << min(attempt - 1, 16)
        if d > hi:
            d = hi
        d = d // 2 + random.getrandbits(16) % (d // 2 + 1)  # jitter: [d/2, d]
        log.info(_TAG, "retry in %d ms" % d)
        await asyncio.sleep_ms(d)

    def _url(self):
        s = self.cp.cfg.settings
        base = s.get("csmsUrl") or ""
        return base.rstrip("/") + "/" + quote(s.get("chargeBoxId") or "")

    async def _connect(self):
        cfg = self.cp.cfg
        url = self._url()
        ssl = None
        if url.startswith("wss:"):
            import tls
            ssl = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
            ca = cfg.settings.get("caCert")
            if ca:
                ssl.load_verify_locations(_pem_to_der(ca))
            else:
                # No CA provisioned (SecurityProfile < 2): encrypted, unverified.
                log.warn(_TAG, "wss without a CA: server not verified")
                ssl.verify_mode = tls.CERT_NONE
        auth = None
        pwd = cfg.auth_password()
        if pwd is not None and cfg.get("SecurityProfile") >= 1:
            auth = (cfg.settings.get("chargeBoxId") or "", pwd)
        # One WebSocket (and its receive buffer) for the life of the firmware:
        # reconnects reuse it rather than fragmenting the heap.
        size = cfg.settings.get("maxMessage", 16384)
        ws = self._ws_obj
        if ws is None or ws.max_message != max(size, 125):
            ws = self._ws_obj = None
            ws = self._ws_obj = WebSocket(size)
        log.info(_TAG, "connecting to %s" % url)
        await ws.connect(url, protocol="ocpp1.6", auth=auth, ssl=ssl,
                         opener=self.cp.board.net.open_connection,
                         timeout_ms=cfg.settings.get("connectTimeoutMs", 10000))
        return ws

    def _security_failed(self, attempt):
        # A new SecurityProfile that cannot connect falls back to the old one.
        if self._sp_trial and attempt >= 3:
            log.warn(_TAG, "SecurityProfile change failed: falling back")
            self.cp.cfg.fallback_security()  # the profile before the change
            self._sp_trial = False

    def try_security_profile(self):
        # After an accepted SecurityProfile change: reconnect with it.
        self._sp_trial = True
        self.reconnect()

    async def _session(self, ws):
        rpc = self.cp.rpc
        rpc.attach(ws.send)
        sender = asyncio.create_task(self._sender())
        keep = asyncio.create_task(self._keepalive(ws))
        try:
            while True:
                text = await ws.recv()
                if text is None:
                    break
                await rpc.on_message(text)
        except Exception as e:
            log.exc(_TAG, "session", e)
        finally:
            rpc.detach()
            sender.cancel()
            keep.cancel()
            ws.abort()
            await asyncio.sleep_ms(0)

    async def _keepalive(self, ws):
        # A PING every WebSocketPingInterval seconds; no frame back within the
        # pong deadline means a half-open connection: drop it and reconnect.
        cfg = self.cp.cfg
        while ws.open:
            n = cfg.get("WebSocketPingInterval")
            if n <= 0:
                await asyncio.sleep(1)
                continue
            period = n * 1000
            t = time.ticks_ms()
            try:
                await ws.ping()
            except Exception:
                ws.abort()
                return
            deadline = min(period, cfg.settings.get("pongTimeoutMs", 10000))
            await asyncio.sleep_ms(deadline)
            if not ws.open:
                return
            if time.ticks_diff(ws.last_rx_ms, t) < 0:
                log.warn(_TAG, "no pong in time: connection presumed dead")
                ws.abort()
                return
            await asyncio.sleep_ms(max(0, period - time.ticks_diff(time.ticks_ms(), t)))

    # --- sender ---
    async def call(self, action, payload, on_result=None):
        self._last_call_ms = time.ticks_ms()
        try:
            return await self.cp.rpc.call(action, payload, self.cp.cfg.get("MessageTimeout"),
                                          on_result)
        finally:
            self._last_call_ms = time.ticks_ms()

    async def _sender(self):
        cp = self.cp
        if self.registration == ACCEPTED:
            cp.on_reconnected()  # no new BootNotification: report offline changes
        try:
            while True:
                if self.registration != ACCEPTED:
                    await self._boot()
                    continue
                if await cp.send_next(self):
                    continue
                await self._idle()
        except Offline:
            pass
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exc(_TAG, "sender", e)
            if self.ws is not None:
                self.ws.abort()

    async def _idle(self):
        # Wait for queued work, a retry coming due or the next Heartbeat.
        hb = self.cp.cfg.get("HeartbeatInterval")
        wait = self.cp.next_due_ms()
        if hb > 0:
            left = hb * 1000 - time.ticks_diff(time.ticks_ms(), self._last_call_ms)
            if left <= 0:
                await self.heartbeat()
                return
            if wait is None or left < wait:
                wait = left
        if wait is None:
            wait = 60000
        self._kick.clear()
        try:
            await asyncio.wait_for_ms(self._kick.wait(), max(wait, 10))
        except asyncio.TimeoutError:
            pass

    async def heartbeat(self):
        try:
            res = await self.call("Heartbeat", {})
        except (CallError, CallTimeout):
            return
        self._set_clock(res.get("currentTime"))

    def _set_clock(self, ts):
        if ts and not getattr(self.cp.board.clock, "trusted", False):
            try:
                clock.set_time(clock.parse(ts))
            except ValueError:
                log.warn(_TAG, "bad currentTime %r" % ts)
                return
            clock.remember(self.cp.cfg.dir + "/lasttime")

    def boot_now(self):
        # TriggerMessage(BootNotification) while Pending: send it at once.
        self._boot_due = time.ticks_ms()
        self.kick()

    async def _boot(self):
        cp = self.cp
        rpc = cp.rpc
        try:
            res = await self.call("BootNotification", cp.boot_payload(), self._boot_answer)
        except (CallError, CallTimeout):
            await self._boot_wait(self._boot_retry_s())
            return
        status = res["status"]
        interval = res["interval"]
        self._set_clock(res.get("currentTime"))
        self.registration = status
        log.info(_TAG, "BootNotification %s, interval %d" % (status, interval))
        if status == ACCEPTED:
            rpc.silent = False
            if interval > 0:
                cp.cfg.set("HeartbeatInterval", interval)
            cp.on_accepted()
            return
        if status == REJECTED:
            # Silent for the interval: no CALLs, no answers (OCPP 1.6 §4.2).
            rpc.silent = True
            try:
                await asyncio.sleep(interval if interval > 0 else self._boot_retry_s())
            finally:
                rpc.silent = False
            return
        # Pending: answer the CSMS, send only what TriggerMessage asks, retry Boot.
        await self._boot_wait(interval if interval > 0 else self._boot_retry_s())

    def _boot_answer(self, res):
        # As the answer is read: Rejected makes the charger silent before the
        # central system's next CALL is read (OCPP 1.6 §4.2).
        rpc = self.cp.rpc
        rpc.silent = res.get("status") == REJECTED

    def _boot_retry_s(self):
        return self.cp.cfg.settings.get("bootRetryS", 30)

    async def _boot_wait(self, seconds):
        deadline = time.ticks_add(time.ticks_ms(), int(seconds * 1000))
        self._boot_due = deadline
        while True:
            # Messages requested by TriggerMessage may go out while Pending.
            while await self.cp.send_triggered(self):
                pass
            left = time.ticks_diff(self._boot_due, time.ticks_ms())
            if left <= 0:
                return
            self._kick.clear()
            try:
                await asyncio.wait_for_ms(self._kick.wait(), left)
            except asyncio.TimeoutError:
                pass
