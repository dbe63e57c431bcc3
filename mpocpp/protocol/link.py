# Connection manager: connects (each attempt in connect.py: TLS, Basic auth
# or the client certificate as the SecurityProfile says) with back-off and
# jitter, reads frames into the RPC layer, keeps the connection alive with
# PINGs, and runs the session coroutine it was built with (the sender) while
# connected. A new SecurityProfile that cannot connect falls back to the
# previous one.
import asyncio
import random
import time
from mpocpp.util import log
from mpocpp.util import modules

_TAG = "link"
_CONNECT = "mpocpp.protocol.connect"


class Link:
    def __init__(self, cfg, net, rpc, registration, session, on_offline, security_event):
        self.cfg = cfg
        self.net = net  # board.net: open_connection(), unreachable(); None: no uplink
        self._rpc = rpc
        self._reg = registration
        self._session = session  # coroutine function run while connected
        self._on_offline = on_offline  # callable() after a disconnection
        # security_event(type, tech_info): securityevents.SecurityEvents.emit
        self.security_event = security_event
        # What the connect attempts (connect.py) keep between them:
        self.failed_event = None  # the security event of the failing connects, once each
        # AdditionalRootCertificateCheck's fallback root (security/store.py):
        # there is one; this connect trusts it too (the new root alone failed)
        self.has_fallback = False
        self.fallback = False
        self.trial = False  # connecting with a new SecurityProfile
        self.undo = None  # or a new client certificate: undo() restores the old
        self.ws_obj = None  # reused across reconnects (its receive buffer)
        self._ws = None  # the open WebSocket
        self.state = "offline"  # offline | connecting | online
        self.connects = 0
        self.failures = 0
        self._reconnect = False

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
        self.trial = True
        self.undo = undo
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
        if self.net is None:
            # A board without an uplink: offline for good, messages kept in
            # the queue; the WebSocket's code and buffer are never loaded.
            log.warn(_TAG, "no network on this board: running offline")
            while True:
                await asyncio.sleep(86400)
        attempt = 0
        while True:
            self.state = "connecting"
            ws = await self._attempt(attempt + 1)
            if ws is None:
                self.state = "offline"
                self.failures += 1
                attempt += 1
                await self._backoff(attempt)
                continue
            attempt = 0
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

    async def _attempt(self, n):
        # One connect attempt (connect.py, imported for it): -> the open
        # WebSocket or None.
        try:
            return await modules.load(_CONNECT).attempt(self, n)
        except Exception as e:  # no heap to load it: a failed attempt too
            log.exc(_TAG, "connect failed", e)
            return None
        finally:
            modules.release(_CONNECT)

    async def _backoff(self, attempt):
        s = self.cfg.settings
        lo = s.get("reconnectMinMs", 2000)
        hi = s.get("reconnectMaxMs", 30000)
        d = lo << min(attempt - 1, 16)
        if d > hi:
            d = hi
        d = d // 2 + random.getrandbits(16) % (d // 2 + 1)  # jitter: [d/2, d]
        log.info(_TAG, "retry in %d ms", d)
        await asyncio.sleep_ms(d)

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
        cfg = self.cfg
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

