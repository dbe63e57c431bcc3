# Connection manager: opens the WebSocket (with back-off and jitter, TLS,
# Basic auth or the client certificate as the SecurityProfile says), reads
# frames into the RPC layer, keeps the connection alive with PINGs, and runs
# the session coroutine it was built with (the sender) while connected. A new
# SecurityProfile that cannot connect falls back to the previous one.
import asyncio
import random
import time
from mpocpp.util import log
from mpocpp.util import modules
from mpocpp.protocol.ws import WebSocket, WsError

_TAG = "link"

_SAFE = b"-_.~"


def quote(s):
    # Percent-encode the charge box id for the URL path (RFC 3986 unreserved
    # kept). Bytes throughout: chr() would intern each character for good.
    out = bytearray()
    for ch in s.encode():
        if 97 <= ch | 32 <= 122 or 48 <= ch <= 57 or ch in _SAFE:
            out.append(ch)
        else:
            out += b"%%%02X" % ch
    return out.decode()


class Link:
    def __init__(self, cfg, net, rpc, registration, session, on_offline, security_event):
        self._cfg = cfg
        self._net = net  # board.net: open_connection(), unreachable()
        self._rpc = rpc
        self._reg = registration
        self._session = session  # coroutine function run while connected
        self._on_offline = on_offline  # callable() after a disconnection
        # security_event(type, tech_info): securityevents.SecurityEvents.emit
        self._security_event = security_event
        self._failed = None  # the security event of the failing connects, once each
        # AdditionalRootCertificateCheck's fallback root (security/store.py):
        # there is one; this connect trusts it too (the new root alone failed)
        self._has_fallback = False
        self._fallback = False
        self._ws = None  # the open WebSocket
        self._ws_obj = None  # reused across reconnects (its receive buffer)
        self.state = "offline"  # offline | connecting | online
        self.connects = 0
        self.failures = 0
        self._reconnect = False
        self._sp_trial = False  # connecting with a new SecurityProfile
        self._undo = None  # or a new client certificate: undo() restores the old

    @property
    def online(self):
        return self.state == "online"

    def reconnect(self):
        # Configuration that affects the connection changed (AuthorizationKey,
        # SecurityProfile): close and connect again with the new settings.
        # A clean close, not a drop: the CALLRESULT just written reaches the
        # CSMS before the socket goes (an abort could lose it in a reset).
        self._reconnect = True
        if self._ws is not None:
            asyncio.create_task(self.close())

    def try_security_profile(self, undo=None):
        # After an accepted SecurityProfile change, or (undo: what puts the
        # old one back) a new client certificate under profile 3: reconnect
        # with it; when it cannot connect, the previous one comes back.
        self._sp_trial = True
        self._undo = undo
        self.reconnect()

    def abort(self):
        # Drop the connection now (network cut, half-open link).
        if self._ws is not None:
            self._ws.abort()

    async def close(self, timeout_ms=500):
        # A clean WebSocket close (before a reset).
        ws = self._ws
        if ws is not None:
            try:
                await ws.close(1000, timeout_ms)
            except Exception:
                pass

    # --- connection loop ---
    async def run(self):
        attempt = 0
        while True:
            self.state = "connecting"
            try:
                ws = await self._connect()
            except Exception as e:  # WsError, OSError, MemoryError: back off, never crash
                self.state = "offline"
                self.failures += 1
                attempt += 1
                if isinstance(e, WsError):
                    st = e.status
                    log.warn(_TAG, "connect failed (%s%s)", e,
                             "" if st is None else ", HTTP %d" % st)
                else:
                    log.exc(_TAG, "connect failed", e)
                kind = None
                if isinstance(e, (WsError, ValueError)) and "certificate" in str(e):
                    # The TLS stack's verification failures name the
                    # certificate (untrusted, expired, wrong host name).
                    kind = "InvalidCentralSystemCertificate"
                    if self._has_fallback and not self._fallback:
                        # M05.FR.13: the new root does not verify the CSMS:
                        # the old one (the fallback) is tried too
                        self._fallback = True
                        log.warn(_TAG, "new CentralSystemRootCertificate failed: "
                                 "trying the fallback")
                elif isinstance(e, WsError) and "PROTOCOL_VERSION" in str(e):
                    kind = "InvalidTLSVersion"  # the CSMS offers no TLS 1.2
                elif isinstance(e, WsError) and e.status == 401:
                    # Basic auth refused (profiles 1-2)
                    kind = "FailedToAuthenticateAtCentralSystem"
                if kind is not None and kind != self._failed:
                    # a security event, once until a connect works
                    self._failed = kind
                    self._security_event(kind, str(e).strip())
                if not isinstance(e, WsError) or e.status is None:
                    self._net.unreachable()  # no HTTP answer: the board resolves again
                self._security_failed(attempt)
                await self._backoff(attempt)
                continue
            attempt = 0
            self._failed = None
            if self._has_fallback and not self._fallback:
                # M05.FR.12: connected with the new root alone: the old goes
                from mpocpp.security import store
                store.drop_fallback(self._cfg.dir)
                self._has_fallback = False
                log.info(_TAG, "connected with the new CentralSystemRootCertificate: "
                         "fallback removed")
            self._fallback = False
            self._sp_trial = False  # the new SecurityProfile works
            self._undo = None
            self.connects += 1
            self._ws = ws
            self.state = "online"
            self._reg.online = True
            log.info(_TAG, "connected (%d)", self.connects)
            await self._run_session(ws)
            self._ws = None
            self.state = "offline"
            self._reg.online = False
            self._on_offline()
            log.info(_TAG, "disconnected (code %s)", ws.close_code)
            if self._reconnect:
                self._reconnect = False
                continue
            attempt = 1
            await self._backoff(attempt)

    async def _backoff(self, attempt):
        s = self._cfg.settings
        lo = s.get("reconnectMinMs", 2000)
        hi = s.get("reconnectMaxMs", 30000)
        d = lo << min(attempt - 1, 16)
        if d > hi:
            d = hi
        d = d // 2 + random.getrandbits(16) % (d // 2 + 1)  # jitter: [d/2, d]
        log.info(_TAG, "retry in %d ms", d)
        await asyncio.sleep_ms(d)

    def _url(self):
        s = self._cfg.settings
        base = s.get("csmsUrl") or ""
        if base[:5].lower() == "ws://" and self._cfg.get("SecurityProfile") >= 2:
            # Profile 2 is TLS: the same host, port and path over wss://. A
            # fallback to the previous profile brings ws:// back.
            base = "wss://" + base[5:]
        return base.rstrip("/") + "/" + quote(s.get("chargeBoxId") or "")

    async def _connect(self):
        cfg = self._cfg
        url = self._url()
        sp = cfg.get("SecurityProfile")
        ssl = None
        self._has_fallback = False
        if url.startswith("wss:"):
            from mpocpp.security import store
            from mpocpp.security import tlscontext
            self._has_fallback = store.has_fallback(cfg.dir)
            ssl = tlscontext.make(cfg.dir, sp, self._fallback)
            store = tlscontext = None
            modules.release_all("mpocpp.security")  # until the next connect needs it
        auth = None
        pwd = cfg.auth_password()
        if pwd is not None and 1 <= sp <= 2:
            auth = (cfg.settings.get("chargeBoxId") or "", pwd)
        # One WebSocket (and its receive buffer) for the life of the firmware:
        # reconnects reuse it rather than fragmenting the heap. Messages over
        # the buffer go to a flash file as they arrive (ws.Spilled).
        size = cfg.settings.get("maxMessage", 65536)
        buf = min(cfg.settings.get("rxBuffer", 4096), size)
        ws = self._ws_obj
        if ws is None or ws.max_message != max(size, 125) or ws.buffer != max(buf, 125):
            ws = self._ws_obj = None
            ws = self._ws_obj = WebSocket(size, buf, cfg.dir + "/rx.msg")
        log.info(_TAG, "connecting to %s", url)
        await ws.connect(url, protocol="ocpp1.6", auth=auth, ssl=ssl,
                         opener=self._net.open_connection,
                         timeout_ms=cfg.settings.get("connectTimeoutMs", 10000))
        return ws

    def _security_failed(self, attempt):
        # A new SecurityProfile (or client certificate) that cannot connect
        # falls back to the old one.
        if self._sp_trial and attempt >= 3:
            if self._undo is None:
                log.warn(_TAG, "SecurityProfile change failed: falling back")
                self._cfg.fallback_security()  # the profile before the change
                what = "SecurityProfile fallback"
            else:
                log.warn(_TAG, "new charge point certificate failed: falling back")
                self._undo()
                what = "charge point certificate fallback"
            self._security_event("ReconfigurationOfSecurityParameters", what)
            self._sp_trial = False
            self._undo = None

    async def _run_session(self, ws):
        rpc = self._rpc
        rpc.attach(ws.send)
        session = asyncio.create_task(self._guard(ws))
        keep = asyncio.create_task(self._keepalive(ws))
        try:
            while True:
                text = await ws.recv()
                if text is None:
                    break
                try:
                    await rpc.on_message(text)
                except MemoryError as e:
                    # One message the heap could not take: dropped and
                    # counted (repeated ones restart the charger), the link
                    # kept (a frame cut short has aborted the WebSocket).
                    text = None
                    log.exc(_TAG, "message", e)
        except Exception as e:
            log.exc(_TAG, "session", e)
        finally:
            rpc.detach()
            session.cancel()
            keep.cancel()
            ws.abort()
            await asyncio.sleep_ms(0)

    async def _guard(self, ws):
        # The session coroutine; a bug in it drops the connection (and the
        # next one starts it afresh) rather than leaving a silent link.
        try:
            await self._session()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exc(_TAG, "sender", e)
            ws.abort()

    async def _keepalive(self, ws):
        # A PING every WebSocketPingInterval seconds; no frame back within the
        # pong deadline means a half-open connection: drop it and reconnect.
        cfg = self._cfg
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

