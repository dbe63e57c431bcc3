# One connect attempt of the link (link.py), loaded for the attempt and
# released after, as the WebSocket handshake is: the URL, the TLS context
# and Basic auth the SecurityProfile asks for, and what a failed attempt
# means (a security event once, the fallback root tried, a new
# SecurityProfile or client certificate given up after three).
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


def url(cfg):
    s = cfg.settings
    base = s.get("csmsUrl") or ""
    if base[:5].lower() == "ws://" and cfg.get("SecurityProfile") >= 2:
        # Profile 2 is TLS: the same host, port and path over wss://. A
        # fallback to the previous profile brings ws:// back.
        base = "wss://" + base[5:]
    return base.rstrip("/") + "/" + quote(s.get("chargeBoxId") or "")


async def attempt(link, n):
    # Attempt n (1, 2, ... since the last success): -> the open WebSocket,
    # or None (logged, reported, the fallbacks decided).
    try:
        ws = await _open(link)
    except Exception as e:  # WsError, OSError, MemoryError: never a crash
        _failed(link, e, n)
        return None
    link.failed_event = None
    if link.has_fallback and not link.fallback:
        # M05.FR.12: connected with the new root alone: the old goes
        from mpocpp.security import store
        store.drop_fallback(link.cfg.dir)
        link.has_fallback = False
        log.info(_TAG, "connected with the new CentralSystemRootCertificate: "
                 "fallback removed")
    link.fallback = False
    link.trial = False  # the new SecurityProfile works
    link.undo = None
    return ws


async def _open(link):
    cfg = link.cfg
    u = url(cfg)
    sp = cfg.get("SecurityProfile")
    ssl = None
    link.has_fallback = False
    if u.startswith("wss:"):
        from mpocpp.security import store
        from mpocpp.security import tlscontext
        link.has_fallback = store.has_fallback(cfg.dir)
        ssl = tlscontext.make(cfg.dir, sp, link.fallback)
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
    buf = min(cfg.settings.get("rxBuffer", 2048), size)
    ws = link.ws_obj
    if ws is None or ws.max_message != max(size, 125) or ws.buffer != max(buf, 125):
        ws = link.ws_obj = None
        ws = link.ws_obj = WebSocket(size, buf, cfg.dir + "/rx.msg")
    log.info(_TAG, "connecting to %s", u)
    await ws.connect(u, protocol="ocpp1.6", auth=auth, ssl=ssl,
                     opener=link.net.open_connection,
                     timeout_ms=cfg.settings.get("connectTimeoutMs", 10000))
    return ws


def _failed(link, e, n):
    if isinstance(e, WsError):
        st = e.status
        log.warn(_TAG, "connect failed (%s%s)", e, "" if st is None else ", HTTP %d" % st)
    else:
        log.exc(_TAG, "connect failed", e)
    kind = None
    if isinstance(e, (WsError, ValueError)) and "certificate" in str(e):
        # The TLS stack's verification failures name the certificate
        # (untrusted, expired, wrong host name).
        kind = "InvalidCentralSystemCertificate"
        if link.has_fallback and not link.fallback:
            # M05.FR.13: the new root does not verify the CSMS: the old one
            # (the fallback) is tried too
            link.fallback = True
            log.warn(_TAG, "new CentralSystemRootCertificate failed: trying the fallback")
    elif isinstance(e, WsError) and "PROTOCOL_VERSION" in str(e):
        kind = "InvalidTLSVersion"  # the CSMS offers no TLS 1.2
    elif isinstance(e, WsError) and e.status == 401:
        kind = "FailedToAuthenticateAtCentralSystem"  # Basic auth refused (profiles 1-2)
    if kind is not None and kind != link.failed_event:
        link.failed_event = kind  # a security event, once until a connect works
        link.security_event(kind, str(e).strip())
    if not isinstance(e, WsError) or e.status is None:
        link.net.unreachable()  # no HTTP answer: the board resolves again
    if link.trial and n >= 3:
        # A new SecurityProfile (or client certificate) that cannot connect:
        # the old one comes back.
        if link.undo is None:
            log.warn(_TAG, "SecurityProfile change failed: falling back")
            link.cfg.fallback_security()  # the profile before the change
            what = "SecurityProfile fallback"
        else:
            log.warn(_TAG, "new charge point certificate failed: falling back")
            link.undo()
            what = "charge point certificate fallback"
        link.security_event("ReconfigurationOfSecurityParameters", what)
        link.trial = False
        link.undo = None
