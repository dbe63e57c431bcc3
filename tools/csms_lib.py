"""Bench CSMS: an OCPP 1.6J central system for the host tests and for people.

`BenchCSMS` serves chargers over WebSocket (the `websockets` asyncio server) on
an asyncio loop in its own thread. Every public method is synchronous and
thread-safe, so plain pytest code can drive it. It answers charger CALLs with
configurable defaults, lets a test override or withhold any answer, sends
CSMS-initiated CALLs, records every frame in both directions and checks every
charger payload against the OCPP 1.6 JSON schemas of the `ocpp` package.
See docs/csms.md.

OCPP-J frames are parsed here rather than through ocpp.ChargePoint because the
bench must see, log and misbehave on the raw frames (no answer, late answer,
CALLERROR, garbage).
"""
import asyncio
import base64
import binascii
import collections
import datetime
import decimal
import inspect
import json
import logging
import os
import re
import threading
import time
import urllib.parse
import uuid

import jsonschema
import ocpp
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol

SUBPROTOCOL = "ocpp1.6"
MAX_ID_LEN = 36  # OCPP-J: message ids are at most 36 characters

CALL, CALLRESULT, CALLERROR = 2, 3, 4

# Charger -> CSMS actions (Core and FirmwareManagement, plus the security
# whitepaper's extension).
CP_ACTIONS = frozenset((
    "Authorize", "BootNotification", "DataTransfer",
    "DiagnosticsStatusNotification", "FirmwareStatusNotification", "Heartbeat",
    "MeterValues", "StartTransaction", "StatusNotification", "StopTransaction",
    "SecurityEventNotification", "LogStatusNotification", "SignCertificate",
    "SignedFirmwareStatusNotification",
))
# CSMS -> charger actions of the six OCPP 1.6 feature profiles (+ security).
CS_ACTIONS = frozenset((
    "CancelReservation", "ChangeAvailability", "ChangeConfiguration",
    "ClearCache", "ClearChargingProfile", "DataTransfer", "GetCompositeSchedule",
    "GetConfiguration", "GetDiagnostics", "GetLocalListVersion",
    "RemoteStartTransaction", "RemoteStopTransaction", "ReserveNow", "Reset",
    "SendLocalList", "SetChargingProfile", "TriggerMessage", "UnlockConnector",
    "UpdateFirmware", "ExtendedTriggerMessage", "CertificateSigned",
    "DeleteCertificate", "GetInstalledCertificateIds", "GetLog",
    "InstallCertificate", "SignedUpdateFirmware",
))
# OCPP-J 1.6 error codes, in their 1.6 spellings.
ERROR_CODES = frozenset((
    "NotImplemented", "NotSupported", "InternalError", "ProtocolError",
    "SecurityError", "FormationViolation", "PropertyConstraintViolation",
    "OccurenceConstraintViolation", "TypeConstraintViolation", "GenericError",
))

_LOG = logging.getLogger("csms")
_OPCODES = {"text": Opcode.TEXT, "binary": Opcode.BINARY, "cont": Opcode.CONT}
_SCHEMA_DIR = os.path.join(os.path.dirname(ocpp.__file__), "v16", "schemas")

# --------------------------------------------------------------------------
# Public value types


Msg = collections.namedtuple(
    "Msg", "t cp_id direction type id action payload raw")
Msg.__doc__ = """One WebSocket frame as seen by the CSMS.

t: time.time() when received / sent; direction: "in" (from the charger) or
"out"; type: 2 CALL, 3 CALLRESULT, 4 CALLERROR, None if not OCPP-J; action: the
CALL's action, for a CALLRESULT/CALLERROR the action of the CALL it answers
(None if unknown); payload: the payload dict, for a CALLERROR
{"errorCode", "errorDescription", "errorDetails"}; raw: the frame (str, or
bytes for a binary frame)."""


class CallErrorReply:
    """Handler return value: answer with a CALLERROR."""

    def __init__(self, code, description="", details=None):
        self.code = code
        self.description = description
        self.details = {} if details is None else details

    def __repr__(self):
        return "CallErrorReply(%r, %r)" % (self.code, self.description)


class NoReply:
    """Handler return value: never answer this CALL."""

    def __repr__(self):
        return "NoReply()"


class Delay:
    """Handler return value: answer `reply` (a payload dict, CallErrorReply or
    NoReply) after `seconds`, without holding up other frames."""

    def __init__(self, seconds, reply):
        self.seconds = seconds
        self.reply = reply

    def __repr__(self):
        return "Delay(%r, %r)" % (self.seconds, self.reply)


class CallErrorResult(Exception):
    """The charger answered our CALL with a CALLERROR."""

    def __init__(self, code, description="", details=None):
        super().__init__("%s: %s" % (code, description))
        self.code = code
        self.description = description
        self.details = details


def msg_to_json(m):
    """A Msg as a JSON-friendly dict (a binary raw frame as "base64:...")."""
    d = m._asdict()
    if isinstance(m.raw, bytes):
        d["raw"] = "base64:" + base64.b64encode(m.raw).decode()
    return d


# --------------------------------------------------------------------------
# Schemas

_DATETIME = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", re.I)
_FORMATS = jsonschema.FormatChecker(())


@_FORMATS.checks("date-time")
def _is_datetime(value):
    # RFC 3339 date-time: jsonschema only checks it with an optional package.
    if not isinstance(value, str):
        return True
    if not _DATETIME.fullmatch(value):
        return False
    try:
        datetime.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


_validators = {}


def _validator(action, is_response):
    name = action + ("Response" if is_response else "")
    if name not in _validators:
        path = os.path.join(_SCHEMA_DIR, name + ".json")
        if not re.fullmatch(r"[A-Za-z]+", action) or not os.path.exists(path):
            _validators[name] = None
        else:
            # Decimal keeps multipleOf 0.1 exact (21.4 is not 21.39999...).
            with open(path, encoding="utf-8-sig") as f:
                schema = json.load(f, parse_float=decimal.Decimal)
            _validators[name] = jsonschema.Draft4Validator(
                schema, format_checker=_FORMATS)
    return _validators[name]


def schema_errors(action, is_response, payload):
    """OCPP 1.6 schema check: a list of problems ([] = valid), or None when
    the ocpp package has no schema for this action."""
    v = _validator(action, is_response)
    if v is None:
        return None
    exact = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    errors = sorted(v.iter_errors(exact), key=lambda e: list(map(str, e.path)))
    return ["%s: %s" % ("/".join(map(str, e.path)) or "payload", e.message)
            for e in errors]


def parse_frame(data):
    """(type, id, action, payload, problem) of an OCPP-J text frame.

    Fields that cannot be read are None; problem is None for a well-formed
    frame, else why it is not one. For a CALLERROR, action is None and
    payload is {"errorCode", "errorDescription", "errorDetails"}."""
    try:
        frame = json.loads(data)
    except (ValueError, RecursionError) as e:  # (a deep nest: too deep for us)
        return None, None, None, None, "not JSON (%s)" % e
    if not isinstance(frame, list) or not frame:
        return None, None, None, None, "not a JSON array"
    mtype = frame[0]
    if type(mtype) is not int or mtype not in (CALL, CALLRESULT, CALLERROR):
        return None, None, None, None, "unknown MessageTypeId %r" % (mtype,)
    uid = frame[1] if len(frame) > 1 else None
    action = payload = None
    want = {CALL: 4, CALLRESULT: 3, CALLERROR: 5}[mtype]
    if mtype == CALL:
        action = frame[2] if len(frame) > 2 else None
        payload = frame[3] if len(frame) > 3 else None
        types_ok = isinstance(action, str) and isinstance(payload, dict)
    elif mtype == CALLRESULT:
        payload = frame[2] if len(frame) > 2 else None
        types_ok = isinstance(payload, dict)
    else:
        rest = (frame[2:5] + [None, None, None])[:3]
        payload = {"errorCode": rest[0], "errorDescription": rest[1],
                   "errorDetails": rest[2]}
        types_ok = (isinstance(rest[0], str) and isinstance(rest[1], str)
                    and isinstance(rest[2], dict))
    if not isinstance(uid, str):
        return mtype, None, action, payload, "message id is not a string"
    if len(frame) != want:
        return mtype, uid, action, payload, "%d elements, expected %d" % (
            len(frame), want)
    if not types_ok:
        return mtype, uid, action, payload, "wrong element types"
    if len(uid) > MAX_ID_LEN:
        return mtype, uid, action, payload, "message id longer than %d" % (
            MAX_ID_LEN)
    return mtype, uid, action, payload, None


# --------------------------------------------------------------------------
# Connections


class _Headers(dict):
    """HTTP request headers, looked up case-insensitively."""

    def __init__(self, items):
        super().__init__()
        for k, v in items:
            k = k.lower()
            self[k] = self[k] + ", " + v if k in self else v

    def __getitem__(self, k):
        return super().__getitem__(k.lower())

    def __contains__(self, k):
        return super().__contains__(k.lower())

    def get(self, k, default=None):
        return super().get(k.lower(), default)


class _BenchConnection(ServerConnection):
    """A server connection whose PONGs the bench can withhold.

    websockets answers PINGs inside its sans-I/O protocol; this connection
    routes that one decision through the bench, for this connection only."""

    def __init__(self, bench, protocol, server, **kw):
        super().__init__(protocol, server, **kw)
        self.bench = bench
        self.cp_id = None  # set once the session starts
        self.cp_id_wanted = None  # from the request path
        protocol.recv_frame = self._recv_frame

    def _recv_frame(self, frame):
        if frame.opcode is Opcode.PING and self.cp_id is not None:
            if not self.bench._on_ping(self.cp_id):
                self.protocol.events.append(frame)  # seen, left unanswered
                return
        ServerProtocol.recv_frame(self.protocol, frame)


class _Conn:
    def __init__(self, cp_id, ws):
        self.cp_id = cp_id
        self.ws = ws
        self.pending = {}  # our CALL id -> asyncio.Future


# --------------------------------------------------------------------------
# The central system


class BenchCSMS:
    """OCPP 1.6J central system on its own thread; see docs/csms.md."""

    def __init__(self, host="127.0.0.1", port=0, path="/ocpp",
                 ssl_context=None, log=None):
        self.host = host
        self.path = "/" + path.strip("/") if path.strip("/") else ""
        self.ssl_context = ssl_context
        self.log = log
        # behaviour knobs
        self.boot_status = "Accepted"
        self.boot_interval = 300
        self.heartbeat_reply = True
        self.passwords = {}
        self.http_status = None
        self.agree_subprotocol = True
        self.answer_pings = True
        self.authorize = lambda id_tag: "Accepted"
        self.next_transaction_id = 1
        self.clock = time.time  # unix seconds for currentTime
        # SignCertificate: sign_csr(cp_id, csr_pem) -> the certificateChain
        # (PEM) to send back in a CertificateSigned CALL right after the
        # Accepted answer, or None (Accepted only); None: Accepted only.
        self.sign_csr = None
        self.certificate_signed = {}  # cp_id -> CertificateSigned's status
        # observation
        self.messages = []
        self.violations = []
        self._cond = threading.Condition()
        self._handlers = {}
        self._conns = {}  # cp_id -> newest open _Conn
        self._counts = collections.Counter()
        self._pings = collections.Counter()
        self._headers = {}
        self._attempts = collections.defaultdict(list)
        self._sent = collections.defaultdict(dict)  # cp_id -> our id -> action
        self._answered = collections.defaultdict(set)  # cp_id -> our ids
        self._seen = collections.defaultdict(dict)  # cp_id -> their id -> call
        self._port = port
        self._loop = None
        self._thread = None
        self._server = None

    # ---- lifecycle

    def start(self):
        if self._loop is not None:
            return self
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="bench-csms", daemon=True)
        self._thread.start()
        try:
            self._run(self._open())
        except BaseException:
            self._shutdown_loop()
            raise
        return self

    def stop(self):
        if self._loop is None:
            return
        try:
            self._run(self._close(), timeout=10)
        finally:
            self._shutdown_loop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._port

    @property
    def url(self):
        scheme = "wss" if self.ssl_context is not None else "ws"
        return "%s://%s:%d%s" % (scheme, self.host, self._port, self.path)

    # ---- behaviour

    def set_handler(self, action, fn):
        """Answer the charger's `action` CALLs with fn(cp_id, payload) ->
        payload dict | CallErrorReply | NoReply | Delay (fn may be async;
        it runs on the CSMS thread, so it must not call blocking methods)."""
        self._handlers[action] = fn

    def clear_handler(self, action):
        self._handlers.pop(action, None)

    def default_reply(self, action, cp_id, payload):
        """The answer the bench gives without a handler (use it in handlers,
        e.g. Delay(20, csms.default_reply("Heartbeat", cp_id, payload)))."""
        fn = getattr(self, "_default_" + action, None)
        if fn is None:
            return CallErrorReply(
                "NotImplemented", "%s is not implemented" % action)
        return fn(cp_id, payload)

    # ---- observation

    def mark(self):
        with self._cond:
            return len(self.messages)

    def calls(self, action, cp_id=None, direction="in", after=0):
        with self._cond:
            return [m for m in self.messages[after:]
                    if self._match(m, action, cp_id, direction, None)]

    def wait_for(self, action, cp_id=None, direction="in", pred=None,
                 timeout=10, after=0):
        """First message with index >= after matching action (None = any),
        cp_id, direction (None = both) and pred(msg); else TimeoutError."""
        deadline = time.monotonic() + timeout
        i = after
        with self._cond:
            while True:
                while i < len(self.messages):
                    m = self.messages[i]
                    i += 1
                    if self._match(m, action, cp_id, direction, pred):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no %s %s%s within %s s" % (
                        direction or "", action or "message",
                        " from " + cp_id if cp_id else "", timeout))
                self._cond.wait(left)

    def connected(self, cp_id):
        with self._cond:
            return cp_id in self._conns

    def chargers(self):
        """Ids of the chargers connected now."""
        with self._cond:
            return sorted(self._conns)

    def wait_connected(self, cp_id, timeout=10, count=None):
        """Wait until cp_id is connected (with count: by its count-th
        connection or a later one, e.g. connections(cp_id) + 1)."""
        self._wait(lambda: cp_id in self._conns and (
            count is None or self._counts[cp_id] >= count), timeout,
            "%s did not connect" % cp_id)

    def wait_disconnected(self, cp_id, timeout=10):
        self._wait(lambda: cp_id not in self._conns, timeout,
                   "%s did not disconnect" % cp_id)

    def connections(self, cp_id):
        """How many WebSocket connections this charger has opened."""
        with self._cond:
            return self._counts[cp_id]

    def attempts(self, cp_id):
        """[(time.time(), HTTP status)] of every upgrade request, refused
        (401, 404, ...) or accepted (101): back-off tests time these."""
        with self._cond:
            return list(self._attempts[cp_id])

    def pings(self, cp_id):
        """How many WebSocket PINGs this charger has sent."""
        with self._cond:
            return self._pings[cp_id]

    def last_headers(self, cp_id):
        """Request headers of the last upgrade (case-insensitive keys) plus
        "path"; None if it never tried."""
        with self._cond:
            return self._headers.get(cp_id)

    # ---- commands

    def call(self, cp_id, action, payload, timeout=10, validate_outgoing=True):
        """Send a CALL; return the CALLRESULT payload. Raises CallErrorResult,
        TimeoutError, ConnectionError, ValueError (invalid payload)."""
        fut = self.call_async(cp_id, action, payload, timeout,
                              validate_outgoing)
        return fut.result(timeout + 10)

    def call_async(self, cp_id, action, payload, timeout=10,
                   validate_outgoing=True):
        """call() without waiting: a concurrent.futures.Future."""
        if validate_outgoing:
            if action not in CS_ACTIONS:
                raise ValueError("%r is not a CSMS-initiated OCPP 1.6 action"
                                 % (action,))
            errors = schema_errors(action, False, payload)
            if errors:
                raise ValueError("invalid %s payload: %s"
                                 % (action, "; ".join(errors)))
        self._check_thread()
        return asyncio.run_coroutine_threadsafe(
            self._call(cp_id, action, payload, timeout), self._loop)

    def send_raw(self, cp_id, data):
        """Send a text (str) or binary (bytes) frame unchanged."""
        self._run(self._send_raw(cp_id, data))

    def send_frames(self, cp_id, frames):
        """Send WebSocket frames as given, unchecked: frames is a list of
        (opcode, data, fin) with opcode "text", "binary" or "cont" and data
        bytes, e.g. a text frame of invalid UTF-8, or one message in
        fragments. Recorded as one raw "out" message (the bytes joined)."""
        self._check_thread()
        self._run(self._send_frames(cp_id, frames))

    def disconnect(self, cp_id, code=1000, reason="", abort=False):
        """Close the charger's connection (abort=True: drop TCP, no close
        handshake)."""
        self._run(self._disconnect(cp_id, code, reason, abort))

    def ping(self, cp_id, timeout=5):
        """Send a WebSocket PING; return the round trip in seconds or raise
        TimeoutError."""
        return self._run(self._ping(cp_id, timeout))

    # ---- internals: thread bridge

    def _check_thread(self):
        if self._loop is None:
            raise RuntimeError("BenchCSMS is not started")
        if threading.current_thread() is self._thread:
            raise RuntimeError("blocking BenchCSMS method called on the CSMS "
                               "thread (from a handler?)")

    def _run(self, coro, timeout=None):
        try:
            self._check_thread()
        except RuntimeError:
            coro.close()
            raise
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(
            timeout)

    def _shutdown_loop(self):
        loop, self._loop = self._loop, None
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        loop.close()

    def _wait(self, ready, timeout, what):
        with self._cond:
            if not self._cond.wait_for(ready, timeout):
                raise TimeoutError("%s within %s s" % (what, timeout))

    @staticmethod
    def _match(m, action, cp_id, direction, pred):
        return ((action is None or m.action == action)
                and (cp_id is None or m.cp_id == cp_id)
                and (direction is None or m.direction == direction)
                and (pred is None or pred(m)))

    # ---- internals: server

    async def _open(self):
        self._server = await serve(
            self._session, self.host, self._port, ssl=self.ssl_context,
            process_request=self._process_request,
            process_response=self._process_response,
            select_subprotocol=self._select_subprotocol,
            create_connection=self._new_connection,
            ping_interval=None,  # the charger's keepalive is under test
            compression=None)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _close(self):
        self._server.close()
        await self._server.wait_closed()
        # delayed answers still sleeping
        tasks = [t for t in asyncio.all_tasks()
                 if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _new_connection(self, protocol, server, **kw):
        return _BenchConnection(self, protocol, server, **kw)

    def _cp_id(self, path):
        path = urllib.parse.urlsplit(path).path
        prefix = self.path + "/"
        if not path.startswith(prefix):
            return None
        seg = path[len(prefix):]
        if not seg or "/" in seg:
            return None
        return urllib.parse.unquote(seg)

    def _process_request(self, ws, request):
        cp_id = self._cp_id(request.path)
        headers = _Headers(request.headers.raw_items())
        dict.__setitem__(headers, "path", request.path)
        ws.cp_id_wanted = cp_id
        with self._cond:
            self._headers[cp_id if cp_id else request.path] = headers
        if self.http_status:
            return ws.respond(self.http_status, "Refused by the bench.\n")
        if cp_id is None:
            return ws.respond(404, "Expected %s/<chargeBoxId>.\n" % self.path)
        if cp_id in self.passwords and not self._auth_ok(
                cp_id, headers.get("Authorization")):
            resp = ws.respond(401, "Unauthorized.\n")
            resp.headers["WWW-Authenticate"] = 'Basic realm="ocpp"'
            return resp
        return None

    def _auth_ok(self, cp_id, header):
        if not header or not header[:6].lower() == "basic ":
            return False
        try:
            got = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        pwd = self.passwords[cp_id]
        if isinstance(pwd, str):
            pwd = pwd.encode()
        return got == cp_id.encode() + b":" + pwd

    def _process_response(self, ws, request, response):
        cp_id = ws.cp_id_wanted
        key = cp_id if cp_id else request.path
        with self._cond:
            self._attempts[key].append((time.time(), response.status_code))
        if response.status_code != 101:
            self._say("%s upgrade refused: HTTP %d" % (
                cp_id or request.path, response.status_code))

    def _select_subprotocol(self, ws, offered):
        if self.agree_subprotocol and SUBPROTOCOL in offered:
            return SUBPROTOCOL
        return None

    def _on_ping(self, cp_id):
        with self._cond:
            self._pings[cp_id] += 1
        return self.answer_pings

    async def _session(self, ws):
        cp_id = ws.cp_id_wanted
        conn = _Conn(cp_id, ws)
        with self._cond:
            old = self._conns.get(cp_id)
            self._conns[cp_id] = conn
            self._counts[cp_id] += 1
            n = self._counts[cp_id]
            self._cond.notify_all()
        ws.cp_id = cp_id
        self._say("%s connected (#%d, subprotocol %s)" % (
            cp_id, n, ws.subprotocol))
        if old is not None:
            self._say("%s: closing its previous connection" % cp_id)
            old.ws.transport.abort()
        try:
            async for data in ws:
                await self._on_frame(conn, data)
        except (ConnectionClosed, ConnectionError):
            pass  # closed while we were answering
        finally:
            with self._cond:
                if self._conns.get(cp_id) is conn:
                    del self._conns[cp_id]
                self._cond.notify_all()
            for fut in conn.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(
                        "%s disconnected before answering" % cp_id))
            reason = " " + ws.close_reason if ws.close_reason else ""
            self._say("%s disconnected (code %s%s)" % (
                cp_id, ws.close_code, reason))

    # ---- internals: frames

    async def _on_frame(self, conn, data):
        cp_id = conn.cp_id
        t = time.time()
        if isinstance(data, bytes):
            self._record(Msg(t, cp_id, "in", None, None, None, None, data))
            self._violation(cp_id, "binary frame of %d bytes (OCPP-J frames "
                            "are text)" % len(data))
            return
        mtype, uid, action, payload, problem = parse_frame(data)
        if mtype in (CALLRESULT, CALLERROR):
            action = self._sent[cp_id].get(uid)
        self._record(Msg(t, cp_id, "in", mtype, uid, action, payload, data))
        if problem is not None:
            self._violation(cp_id, "invalid OCPP-J frame: %s: %s" % (
                problem, _clip(data)))
            if mtype == CALL and uid is not None and (
                    not isinstance(action, str)
                    or not isinstance(payload, dict)):
                await self._reply(conn, uid, action, CallErrorReply(
                    "FormationViolation", "invalid frame: " + problem))
                return
            if mtype is None or uid is None:
                return
        if mtype == CALL:
            await self._on_call(conn, uid, action, payload)
        else:
            self._on_answer(conn, mtype, uid, action, payload)

    async def _on_call(self, conn, uid, action, payload):
        cp_id = conn.cp_id
        signature = (action, json.dumps(payload, sort_keys=True))
        seen = self._seen[cp_id].setdefault(uid, signature)
        if seen != signature:
            self._violation(cp_id, "CALL id %r reused for a different message "
                            "(%s)" % (uid, action))
        handler = self._handlers.get(action)
        if handler is None and action not in CP_ACTIONS:
            self._violation(cp_id, "CALL of unknown action %r" % action)
            await self._reply(conn, uid, action, CallErrorReply(
                "NotImplemented", "%s is not implemented" % action))
            return
        errors = schema_errors(action, False, payload)
        if errors:
            self._violation(cp_id, "%s CALL: %s" % (action, "; ".join(errors)))
        try:
            if handler is None:
                reply = self.default_reply(action, cp_id, payload)
            else:
                reply = handler(cp_id, payload)
                if inspect.isawaitable(reply):
                    reply = await reply
        except Exception as e:  # a broken handler is a test bug: show it
            _LOG.exception("handler for %s failed", action)
            self._say("%s handler for %s failed: %r" % (cp_id, action, e))
            reply = CallErrorReply("InternalError", "handler failed: %r" % e)
        await self._reply(conn, uid, action, reply)

    def _on_answer(self, conn, mtype, uid, action, payload):
        cp_id = conn.cp_id
        if action is None:
            self._violation(cp_id, "answer to an unknown message id %r" % uid)
            return
        if uid in self._answered[cp_id]:
            self._violation(cp_id, "second answer to %s %r" % (action, uid))
            return
        self._answered[cp_id].add(uid)
        fut = conn.pending.get(uid)
        if mtype == CALLRESULT:
            errors = schema_errors(action, True, payload)
            if errors:
                self._violation(cp_id, "%s CALLRESULT: %s" % (
                    action, "; ".join(errors)))
            if fut is not None and not fut.done():
                fut.set_result(payload)
        else:
            if payload["errorCode"] not in ERROR_CODES:
                self._violation(cp_id, "%s CALLERROR: unknown error code %r"
                                % (action, payload["errorCode"]))
            if fut is not None and not fut.done():
                fut.set_exception(CallErrorResult(
                    payload["errorCode"], payload["errorDescription"],
                    payload["errorDetails"]))

    async def _reply(self, conn, uid, action, reply):
        if isinstance(reply, Delay):
            asyncio.get_running_loop().create_task(
                self._reply_later(conn, uid, action, reply))
        elif isinstance(reply, NoReply):
            self._say("%s (no answer to %s %s)" % (conn.cp_id, action, uid))
        elif isinstance(reply, CallErrorReply):
            payload = {"errorCode": reply.code,
                       "errorDescription": reply.description,
                       "errorDetails": reply.details}
            await self._send(conn, [CALLERROR, uid, reply.code,
                                    reply.description, reply.details],
                             CALLERROR, uid, action, payload)
        elif isinstance(reply, dict):
            await self._send(conn, [CALLRESULT, uid, reply],
                             CALLRESULT, uid, action, reply)
        else:
            self._say("%s handler for %s returned %r: answering InternalError"
                      % (conn.cp_id, action, reply))
            await self._reply(conn, uid, action, CallErrorReply(
                "InternalError", "bad handler reply"))

    async def _reply_later(self, conn, uid, action, delay):
        await asyncio.sleep(delay.seconds)
        try:
            await self._reply(conn, uid, action, delay.reply)
        except ConnectionError:
            self._say("%s gone: delayed answer to %s %s dropped" % (
                conn.cp_id, action, uid))

    async def _send(self, conn, frame, mtype, uid, action, payload):
        raw = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
        self._record(Msg(time.time(), conn.cp_id, "out", mtype, uid, action,
                         payload, raw))
        try:
            await conn.ws.send(raw)
        except ConnectionClosed:
            raise ConnectionError("%s disconnected" % conn.cp_id) from None

    def _conn(self, cp_id):
        conn = self._conns.get(cp_id)
        if conn is None:
            raise ConnectionError("%s is not connected" % cp_id)
        return conn

    async def _call(self, cp_id, action, payload, timeout):
        conn = self._conn(cp_id)
        uid = str(uuid.uuid4())
        fut = asyncio.get_running_loop().create_future()
        conn.pending[uid] = fut
        self._sent[cp_id][uid] = action
        try:
            await self._send(conn, [CALL, uid, action, payload],
                             CALL, uid, action, payload)
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError("%s did not answer %s within %s s" % (
                cp_id, action, timeout)) from None
        finally:
            conn.pending.pop(uid, None)
            if fut.done() and not fut.cancelled():
                fut.exception()  # a disconnect failed it while sending: seen

    async def _send_raw(self, cp_id, data):
        conn = self._conn(cp_id)
        mtype = uid = action = payload = None
        if isinstance(data, str):
            mtype, uid, action, payload, _ = parse_frame(data)
            if mtype == CALL and isinstance(uid, str):
                self._sent[cp_id][uid] = action  # label the charger's answer
            elif mtype in (CALLRESULT, CALLERROR):
                action = None
        self._record(Msg(time.time(), cp_id, "out", mtype, uid, action,
                         payload, data))
        try:
            await conn.ws.send(data)
        except ConnectionClosed:
            raise ConnectionError("%s disconnected" % cp_id) from None

    async def _send_frames(self, cp_id, frames):
        conn = self._conn(cp_id)
        data = b"".join(d for _, d, _ in frames)
        mtype = uid = action = payload = None
        if frames and frames[0][0] == "text":
            try:
                mtype, uid, action, payload, _ = parse_frame(data.decode())
            except UnicodeDecodeError:
                pass
            if mtype == CALL and isinstance(uid, str):
                self._sent[cp_id][uid] = action  # label the charger's answer
        self._record(Msg(time.time(), cp_id, "out", mtype, uid, action,
                         payload, data))
        ws = conn.ws
        try:
            async with ws.send_context():
                for op, data, fin in frames:
                    # Past the protocol's own checks: a continuation with no
                    # message started goes out too.
                    ws.protocol.send_frame(Frame(_OPCODES[op], data, fin))
        except ConnectionClosed:
            raise ConnectionError("%s disconnected" % cp_id) from None

    async def _disconnect(self, cp_id, code, reason, abort):
        conn = self._conn(cp_id)
        self._say("%s: closing the connection from the CSMS side" % cp_id)
        if abort:
            conn.ws.transport.abort()
        else:
            await conn.ws.close(code, reason)

    async def _ping(self, cp_id, timeout):
        conn = self._conn(cp_id)
        try:
            pong = await conn.ws.ping()
            return await asyncio.wait_for(pong, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError("%s sent no PONG within %s s" % (
                cp_id, timeout)) from None
        except ConnectionClosed:
            raise ConnectionError("%s disconnected" % cp_id) from None

    # ---- internals: recording and logging

    def _record(self, m):
        with self._cond:
            self.messages.append(m)
            self._cond.notify_all()
        if self.log is not None:
            self.log(format_msg(m))

    def _violation(self, cp_id, text):
        text = "%s %s" % (cp_id, text)
        with self._cond:
            self.violations.append(text)
            self._cond.notify_all()
        _LOG.warning("VIOLATION %s", text)
        if self.log is not None:
            self.log("VIOLATION %s %s" % (_stamp(time.time()), text))

    def _say(self, text):
        if self.log is not None:
            self.log("%s %s" % (_stamp(time.time()), text))

    # ---- default answers to charger CALLs

    def _now_iso(self):
        t = datetime.datetime.fromtimestamp(self.clock(), datetime.timezone.utc)
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (
            t.microsecond // 1000)

    def _id_tag_info(self, id_tag):
        status = self.authorize(id_tag)
        return dict(status) if isinstance(status, dict) else {"status": status}

    def _default_BootNotification(self, cp_id, payload):
        return {"status": self.boot_status, "currentTime": self._now_iso(),
                "interval": self.boot_interval}

    def _default_Heartbeat(self, cp_id, payload):
        if not self.heartbeat_reply:
            return NoReply()
        return {"currentTime": self._now_iso()}

    def _default_Authorize(self, cp_id, payload):
        return {"idTagInfo": self._id_tag_info(payload.get("idTag"))}

    def _default_StartTransaction(self, cp_id, payload):
        tx = self.next_transaction_id
        self.next_transaction_id = tx + 1
        return {"idTagInfo": self._id_tag_info(payload.get("idTag")),
                "transactionId": tx}

    def _default_StopTransaction(self, cp_id, payload):
        if "idTag" in payload:
            return {"idTagInfo": {"status": "Accepted"}}
        return {}

    def _default_StatusNotification(self, cp_id, payload):
        return {}

    _default_MeterValues = _default_StatusNotification
    _default_FirmwareStatusNotification = _default_StatusNotification
    _default_DiagnosticsStatusNotification = _default_StatusNotification
    _default_SecurityEventNotification = _default_StatusNotification
    _default_LogStatusNotification = _default_StatusNotification
    _default_SignedFirmwareStatusNotification = _default_StatusNotification

    def _default_SignCertificate(self, cp_id, payload):
        chain = self.sign_csr(cp_id, payload["csr"]) if self.sign_csr else None
        if chain:
            self._loop.create_task(self._certificate_signed(cp_id, chain))
        return {"status": "Accepted"}

    async def _certificate_signed(self, cp_id, chain):
        await asyncio.sleep(0.05)  # the Accepted answer first
        try:
            r = await self._call(cp_id, "CertificateSigned", {"certificateChain": chain}, 30)
            status = r.get("status")
        except (TimeoutError, ConnectionError, CallErrorResult) as e:
            status = repr(e)
        with self._cond:
            self.certificate_signed[cp_id] = status
            self._cond.notify_all()

    def _default_DataTransfer(self, cp_id, payload):
        return {"status": "UnknownVendorId"}


def csr_signer(ca_cert_pem, ca_key_pem, days=365):
    """A `BenchCSMS.sign_csr` for a CA given as PEM (bytes) of its certificate
    and private key: each CSR whose signature verifies becomes a certificate
    with the CSR's subject and key, issued by the CA, valid from an hour ago
    for `days` days (a CSR that does not verify: None, Accepted only)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    ca = x509.load_pem_x509_certificate(ca_cert_pem)
    key = serialization.load_pem_private_key(ca_key_pem, None)

    def sign(cp_id, csr_pem):
        try:
            req = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError:
            return None
        if not req.is_signature_valid:
            return None
        nb = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
        cert = (x509.CertificateBuilder()
                .subject_name(req.subject).issuer_name(ca.subject)
                .public_key(req.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(nb).not_valid_after(nb + datetime.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                               critical=True)
                .sign(key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM).decode()
    return sign


# --------------------------------------------------------------------------
# Traffic log lines


def _stamp(t):
    return time.strftime("%H:%M:%S", time.localtime(t)) + ".%03d" % (
        int(t * 1000) % 1000)


def _clip(s, n=300):
    s = s if isinstance(s, str) else repr(s)
    return s if len(s) <= n else s[:n] + "...(%d chars)" % len(s)


def format_msg(m):
    """One readable log line for a Msg, e.g.
    '19:30:01.123 CP1 -> BootNotification {"chargePointVendor": ...}'."""
    arrow = "->" if m.direction == "in" else "<-"
    head = "%s %s %s " % (_stamp(m.t), m.cp_id, arrow)
    if m.type == CALL and isinstance(m.action, str):
        return head + m.action + " " + json.dumps(m.payload)
    if m.type == CALLRESULT:
        return head + "%s.conf %s" % (m.action or "?", json.dumps(m.payload))
    if m.type == CALLERROR and isinstance(m.payload, dict):
        p = m.payload
        return head + "%s CALLERROR %s %s %s" % (
            m.action or "?", p["errorCode"],
            json.dumps(p["errorDescription"]), json.dumps(p["errorDetails"]))
    if isinstance(m.raw, bytes):
        return head + "(binary frame, %d bytes)" % len(m.raw)
    return head + "(raw) " + _clip(m.raw)
