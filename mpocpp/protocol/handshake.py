# The WebSocket opening handshake (RFC 6455 §4): the HTTP/1.1 upgrade with
# Sec-WebSocket-Protocol (ocpp1.6), optional Basic auth, ws:// or wss:// (TLS
# through the caller's tls.SSLContext, server_hostname = the URL's host).
# The server must answer 101, the right Sec-WebSocket-Accept and the same
# subprotocol, else WsError (with the HTTP status for non-101 answers).
# Imported by WebSocket.connect() for the connect only.
import asyncio
import binascii
import hashlib
import os

from micropython import const

from mpocpp.protocol.ws import WsError

_MAX_HEADERS = const(64)
_MAX_LINE = const(2048)
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def parse_url(url):
    # "ws[s]://host[:port][/path]" -> (tls, host, port, hostport, path)
    if not isinstance(url, str) or "\r" in url or "\n" in url or " " in url:
        raise WsError("bad url")
    i = url.find("://")
    scheme = url[:i].lower() if i > 0 else ""
    if scheme == "ws":
        tls, port = False, 80
    elif scheme == "wss":
        tls, port = True, 443
    else:
        raise WsError("bad url scheme")
    rest = url[i + 3:]
    j = rest.find("/")
    hostport, path = (rest, "/") if j < 0 else (rest[:j], rest[j:])
    if hostport.startswith("["):  # IPv6 literal
        k = hostport.find("]")
        host, p = hostport[1:k], hostport[k + 1:]
        if k < 0 or (p and p[0] != ":"):
            raise WsError("bad url host")
        p = p[1:]
    else:
        k = hostport.find(":")
        host, p = (hostport, "") if k < 0 else (hostport[:k], hostport[k + 1:])
    if not host or "@" in hostport:
        raise WsError("bad url host")
    if p:
        try:
            port = int(p)
        except ValueError:
            raise WsError("bad url port")
        if not 0 < port < 65536:
            raise WsError("bad url port")
    return tls, host, port, hostport, path


def _accept_key(key):
    # Sec-WebSocket-Accept for a Sec-WebSocket-Key (both base64 bytes).
    return binascii.b2a_base64(hashlib.sha1(key + _GUID).digest())[:-1]


async def connect(ws, url, protocol, auth, ssl, opener, timeout_ms):
    if ws.open:
        ws.abort()
    try:
        await asyncio.wait_for_ms(
            _connect(ws, url, protocol, auth, ssl, opener), timeout_ms)
    except WsError:
        raise
    except asyncio.TimeoutError:
        raise WsError("timeout")
    except MemoryError:
        raise  # the charger's memory guard counts it (charger.py)
    except Exception as e:  # OSError, TLS ValueError, ...
        raise WsError("connect: %s %s" % (type(e).__name__, " ".join(str(e).split())))


async def _connect(ws, url, protocol, auth, ssl, opener):
    tls, host, port, hostport, path = parse_url(url)
    if protocol and ("\r" in protocol or "\n" in protocol):
        raise WsError("bad protocol")
    if tls and ssl is None:
        raise WsError("wss:// needs an ssl context")
    op = opener or asyncio.open_connection
    if tls:
        r, w = await op(host, port, ssl=ssl, server_hostname=host)
    else:
        r, w = await op(host, port)
    try:
        await _handshake(r, w, path, hostport, protocol, auth)
    except BaseException:
        ws.drop(w)
        raise
    ws.attach(r, w)

async def _handshake(r, w, path, hostport, protocol, auth):
    key = binascii.b2a_base64(os.urandom(16))[:-1]
    req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
           "Sec-WebSocket-Version: 13\r\n") % (path, hostport, key.decode())
    if protocol:
        req += "Sec-WebSocket-Protocol: %s\r\n" % protocol
    if auth:
        user, pwd = auth
        if isinstance(pwd, str):
            pwd = pwd.encode()
        cred = binascii.b2a_base64(user.encode() + b":" + pwd)[:-1]
        req += "Authorization: Basic %s\r\n" % cred.decode()
    w.write((req + "\r\n").encode())
    await w.drain()

    line = await r.readline()
    if not line:
        raise WsError("closed during handshake")
    parts = line.split(None, 2)
    try:
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ValueError
        status = int(parts[1])
    except ValueError:
        raise WsError("bad HTTP status line")
    if status != 101:
        raise WsError("HTTP %d" % status, status)
    accept = agreed = upgrade = conn = None
    for _ in range(_MAX_HEADERS):
        line = await r.readline()
        if not line or len(line) > _MAX_LINE:
            raise WsError("bad HTTP headers")
        if line == b"\r\n" or line == b"\n":
            break
        i = line.find(b":")
        if i <= 0:
            raise WsError("bad HTTP header line")
        name = line[:i].strip().lower()
        value = line[i + 1:].strip()
        if name == b"sec-websocket-accept":
            accept = value
        elif name == b"sec-websocket-protocol":
            agreed = value
        elif name == b"upgrade":
            upgrade = value.lower()
        elif name == b"connection":
            conn = value.lower()
    else:
        raise WsError("too many HTTP headers")
    if upgrade != b"websocket" or conn is None or b"upgrade" not in conn:
        raise WsError("not a websocket upgrade")
    if accept != _accept_key(key):
        raise WsError("bad Sec-WebSocket-Accept")
    want = protocol.encode() if protocol else None
    if agreed != want:
        raise WsError("subprotocol not agreed: %r" % agreed)
