# OCPP-J 1.6 RPC: CALL / CALLRESULT / CALLERROR framing, message ids,
# correlation of our single outstanding CALL, and dispatch of the central
# system's CALLs (served while ours waits). Payloads are checked against the
# generated message definitions (validate.py) in both directions.
import gc
import json
import asyncio
import time
from micropython import const
from mpocpp.util import log
from mpocpp.util import modules

_CALL = const(2)
_RESULT = const(3)
_ERROR = const(4)
_MAX_ID = const(36)
_HEAD = const(64)  # enough for the type and a CALL's id
_SEEN = const(8)  # CALL ids remembered per connection, to notice a replay
_REPLAY = "AttemptedReplayAttacks"
# Heap a parsed large message must leave free to be handled and answered.
_ANSWER_ROOM = const(8192)
_TAG = "rpc"
_SURROGATES = "mpocpp.protocol.surrogates"
_JSONSTREAM = "mpocpp.protocol.jsonstream"
# The validator and its schema index (about 6 KiB on a 32-bit port), loaded
# for a message and let go once no message has come or gone for idle_ms
# (tick()): an idle charger exchanges one Heartbeat in minutes.
_VALIDATE = "mpocpp.protocol.validate"
_TIMEPARSE = "mpocpp.util.timeparse"  # the validator's dates, a Heartbeat's
# Our CALLs whose answer has no fields (the schemas: an empty object; unknown
# fields are ignored): any object is valid, so a transaction's MeterValues
# and StatusNotifications keep the validator out of the heap.
_EMPTY_ANSWER = ("MeterValues", "StatusNotification", "DiagnosticsStatusNotification",
                 "FirmwareStatusNotification", "SecurityEventNotification",
                 "LogStatusNotification", "SignedFirmwareStatusNotification")

# CALLERROR codes are written out as OCPP-J 1.6 spells them (errata "won't
# fix"): a named constant would cost a name (qstr) for good on a board.
# The codes that say the CALL was not valid OCPP (InvalidMessages):
_INVALID = ("ProtocolError", "FormationViolation", "TypeConstraintViolation",
            "PropertyConstraintViolation", "OccurenceConstraintViolation")


class CallError(Exception):
    # The central system answered our CALL with a CALLERROR.
    def __init__(self, code, description="", details=None):
        super().__init__(code)
        self.code = code
        self.description = description
        self.details = details


class CallTimeout(Exception):
    # No answer within MessageTimeout.
    pass


class Offline(Exception):
    # No connection, or it was lost while the CALL waited.
    pass


class Reply(Exception):
    # Raised by a handler to answer with a CALLERROR of its choosing.
    def __init__(self, code, description=""):
        super().__init__(code)
        self.code = code
        self.description = description


# CALLs whose handler reads a large payload from flash itself (ws.Spilled).
_STREAMED = ("SendLocalList",)


def _gen():
    yield


_GEN = type(_gen())  # coroutines are generators in MicroPython


def _escape_id(s):
    return json.dumps(s)


def _call_id(text):
    # The id of a CALL read from the text's first characters without a
    # parse: -> the id, or None (not a CALL, or an id with escapes).
    head = text[:_HEAD]
    i = head.find("[")
    j = head.find(",", i + 1)
    if i < 0 or j < 0 or head[:i].strip() or head[i + 1:j].strip() != "2":
        return None
    k = head.find('"', j + 1)
    e = head.find('"', k + 1)
    if k < 0 or e < 0 or head[j + 1:k].strip():
        return None
    mid = head[k + 1:e]
    return None if "\\" in mid else mid


def _spilled_id(sp):
    # The id of a CALL kept in flash, from the file's first bytes (no reader
    # module, a few small blocks): -> the id or None.
    try:
        with open(sp.path, "rb") as f:
            head = f.read(_HEAD)
        return _call_id(head.decode())
    except (OSError, ValueError, MemoryError):  # UnicodeError: a character cut
        return None


class MessageIds:
    # Message ids unique across reconnects and reboots: this boot's number
    # (counted in flash by the wiring, app.py), a random part, a counter.
    def __init__(self, boot_count):
        import os
        self.boot_count = boot_count
        self._prefix = "%x%04x-" % (boot_count, int.from_bytes(os.urandom(2), "big"))
        self._n = 0

    def __call__(self):
        self._n += 1
        return self._prefix + "%x" % self._n


class Rpc:
    """One per charge point; survives reconnects.

    send:       async callable(text) writing one text message, raising on failure
    dispatch:   callable(action, payload) -> response dict | (dict, after) |
                coroutine giving one of those; after is a callable run once the
                CALLRESULT has been sent. Raises Reply for a CALLERROR.
    ids:        callable() -> a fresh message id (str, unique across reboots)
    serves:     callable(action) -> bool, the actions dispatch answers; a
                known action it does not (one the charge point sends) is
                NotSupported whatever its payload. None: every known action.
    on_invalid: callable(kind, what) told of each message that is not valid
                OCPP (kind "InvalidMessages") and of each CALL that repeats
                the id of one answered on the same connection
                ("AttemptedReplayAttacks": TCP delivered that answer, so it is
                no resend after a network problem), or None
    idle_ms:    the validator (validate.py) leaves the heap once unused this
                long (tick(now_ms), the supervisor's); the next message loads it
    """

    def __init__(self, dispatch, ids, serves=None, on_invalid=None, idle_ms=30000):
        self._dispatch = dispatch
        self._ids = ids
        self._serves = serves  # callable(action) -> bool: a CALL we answer
        self._on_invalid = on_invalid
        self._seen = [None] * _SEEN  # the last CALL ids of this connection
        self._seen_i = 0
        self._send = None
        self._lock = asyncio.Lock()
        self._event = asyncio.Event()
        self._wait_id = None
        self._wait_action = None
        self._wait_cb = None
        self._result = None
        self._error = None
        self._checked_ms = None  # ticks of the last validation (the validator loaded)
        self._idle_ms = idle_ms
        self.silent = False  # registration Rejected: CALLs from the CSMS go unanswered

    # --- connection ---
    def attach(self, send):
        self._send = send
        seen = self._seen
        for i in range(_SEEN):
            seen[i] = None

    def detach(self):
        self._send = None
        if self._wait_id is not None:
            self._error = Offline()
            self._event.set()

    @property
    def online(self):
        return self._send is not None

    def _validator(self):
        self._checked_ms = time.ticks_ms()
        return modules.load(_VALIDATE)

    def tick(self, now_ms):
        # The supervisor's: the validator goes after idle_ms unused.
        t = self._checked_ms
        if t is not None and time.ticks_diff(now_ms, t) >= self._idle_ms:
            self._checked_ms = None
            modules.release(_VALIDATE)
            modules.release(_TIMEPARSE)

    # --- our CALLs ---
    async def call(self, action, payload, timeout_s, on_result=None):
        # At most one outstanding CALL: later callers wait their turn here.
        # on_result(payload) runs as the CALLRESULT is read, before any frame
        # after it (a BootNotification answer decides how the next CALL from
        # the central system is treated).
        async with self._lock:
            if self._send is None:
                raise Offline
            mid = self._ids()
            text = "[2,%s,%s,%s]" % (_escape_id(mid), _escape_id(action), json.dumps(payload))
            self._event.clear()
            self._result = self._error = None
            self._wait_id = mid
            self._wait_action = action
            self._wait_cb = on_result
            try:
                try:
                    await self._send(text)
                except Exception as e:
                    log.warn(_TAG, "send %s failed: %r", action, e)
                    raise Offline
                try:
                    await asyncio.wait_for_ms(self._event.wait(), int(timeout_s * 1000))
                except asyncio.TimeoutError:
                    log.warn(_TAG, "%s %s: no answer in %ds", action, mid, timeout_s)
                    raise CallTimeout
                if self._error is not None:
                    raise self._error
                return self._result
            finally:
                self._wait_id = None
                self._wait_action = None
                self._wait_cb = None

    # --- incoming ---
    async def on_message(self, text):
        # text: a str, or a ws.Spilled (a message too large for RAM, in flash).
        if not isinstance(text, str):
            await self._on_spilled(text)
            return
        try:
            if "\\ud" in text or "\\uD" in text:  # rare: loaded for the moment
                text = modules.load(_SURROGATES).unpair(text)
                modules.release(_SURROGATES)
            msg = json.loads(text)
        except (ValueError, TypeError):
            log.warn(_TAG, "not JSON, ignored: %s", text[:60])
            self._invalid("not JSON")
            return
        except MemoryError:
            # A deep nest takes the parser's stack, and a message's copy
            # (surrogates decoded) a block of its size: the message's size,
            # not the heap's health. Not counted, the connection kept; a
            # CALL whose id can be read is answered as one kept in flash
            # would be (no copy of the text, no import: the heap is short).
            gc.collect()
            log.error(_TAG, "%d-char message: no memory to parse it", len(text))
            mid = _call_id(text)
            if mid is not None and not self.silent:
                await self._answer_error(mid, "InternalError", "message too large for memory")
            return
        await self._on_frame(msg, text)

    async def _on_frame(self, msg, text):
        if not isinstance(msg, list) or not msg or not isinstance(msg[0], int) \
                or isinstance(msg[0], bool):
            log.warn(_TAG, "not an OCPP-J frame, ignored: %s", text[:60] if text else "")
            self._invalid("not an OCPP-J frame")
            return
        kind = msg[0]
        if kind == _CALL:
            mid = msg[1] if len(msg) > 1 else None
            if len(msg) != 4 or not isinstance(msg[2], str):
                if isinstance(mid, str) and not self.silent:
                    await self._answer_error(mid, "FormationViolation", "malformed CALL")
                else:
                    log.warn(_TAG, "CALL without an id ignored")
                return
            await self._on_call(mid, msg[2], msg[3], False)
        elif kind == _RESULT or kind == _ERROR:
            self._on_answer(kind, msg)
        else:
            log.warn(_TAG, "unknown message type %d, ignored", kind)
            self._invalid("unknown message type")

    def _on_answer(self, kind, msg):
        mid = msg[1] if len(msg) > 1 else None
        if mid is None or mid != self._wait_id:
            log.warn(_TAG, "answer to unknown id %r ignored", mid)
            return
        if kind == _RESULT:
            if len(msg) != 3 or not isinstance(msg[2], dict):
                self._error = CallError("FormationViolation", "bad CALLRESULT")
            else:
                action = self._wait_action
                err = None if action in _EMPTY_ANSWER else \
                    self._validator().check(action, True, msg[2])
                if err:
                    log.warn(_TAG, "%s.conf invalid: %s %s", action, err[0], err[1])
                    self._error = CallError(err[0], err[1])
                else:
                    self._result = msg[2]
                    if self._wait_cb is not None:
                        self._wait_cb(msg[2])
        else:
            code = msg[2] if len(msg) > 2 and isinstance(msg[2], str) else "GenericError"
            desc = msg[3] if len(msg) > 3 and isinstance(msg[3], str) else ""
            det = msg[4] if len(msg) > 4 else None
            log.warn(_TAG, "%s: CALLERROR %s %s", self._wait_action, code, desc)
            self._error = CallError(code, desc, det)
        self._wait_id = None  # a duplicate answer to the same id is now ignored
        self._event.set()

    async def _on_spilled(self, sp):
        # A message kept in flash (rare: the reader is loaded for it).
        try:
            r = modules.load(_JSONSTREAM).spilled(sp, _STREAMED, _ANSWER_ROOM)
        except MemoryError as e:
            # No room for the reader itself (a fragmented heap: its import
            # needs blocks the parse of a large message would not): counted,
            # and a CALL answered from the file's first bytes.
            log.exc(_TAG, "message in flash", e)
            mid = _spilled_id(sp)
            if mid is not None and not self.silent:
                await self._answer_error(mid, "InternalError", "no memory to read it")
            return
        finally:
            modules.release(_JSONSTREAM)
            modules.release(_SURROGATES)  # loaded by the reader when needed
        if r is None:
            return
        msg = r.message
        if msg is sp:
            try:
                await self._on_call(r.id, r.action, sp, True)
            finally:
                modules.release(_JSONSTREAM)  # the handler reads with it too
        elif msg is not None:
            await self._on_frame(msg, None)
        elif r.kind == _CALL and not self.silent:
            await self._answer_error(r.id, "InternalError", "message too large for memory")

    async def _on_call(self, mid, action, payload, streamed):
        # payload: a dict, or (streamed) the Spilled message the handler reads.
        if not isinstance(mid, str):
            log.warn(_TAG, "CALL without a string id ignored")
            return
        if self.silent:
            log.info(_TAG, "registration rejected: CALL %s not answered", mid)
            return
        if len(mid) > _MAX_ID:
            await self._answer_error(mid, "FormationViolation", "malformed CALL")
            return
        if mid in self._seen:  # still answered: the event is for the log
            self._invalid("id %s again" % mid, _REPLAY)
        else:
            self._seen[self._seen_i] = mid
            self._seen_i = (self._seen_i + 1) % _SEEN
        err = self._refuse(action, payload, streamed)
        if err:
            await self._answer_error(mid, err[0], err[1])
            return
        after = None
        try:
            res = self._dispatch(action, payload)
            if isinstance(res, _GEN):  # a coroutine from an async handler
                res = await res
            if isinstance(res, tuple):
                res, after = res
        except Reply as e:
            await self._answer_error(mid, e.code, e.description)
            return
        except Exception as e:
            log.exc(_TAG, "%s handler failed", e, action)
            await self._answer_error(mid, "InternalError", "handler failed")
            return
        try:
            err = self._validator().check(action, True, res)
        except MemoryError as e:
            # The handler has acted (the validator, let go while it ran,
            # could not be loaded again): its answer goes out unchecked
            # rather than none.
            log.exc(_TAG, "%s.conf not checked", e, action)
            err = None
        if err:  # our own bug: never send an invalid answer
            log.error(_TAG, "%s.conf invalid: %s %s", action, err[0], err[1])
            await self._answer_error(mid, "InternalError", "invalid response")
            return
        try:
            text = "[3,%s,%s]" % (_escape_id(mid), json.dumps(res))
        except MemoryError:
            # An answer too large for the heap as it is (a GetConfiguration
            # of every key on a fragmented heap): answered, the link kept.
            res = None
            gc.collect()
            log.error(_TAG, "%s.conf: no memory to write it", action)
            await self._answer_error(mid, "InternalError", "answer too large for memory")
            return
        await self._write(text)
        if after is not None:
            try:
                r = after()
                if isinstance(r, _GEN):
                    asyncio.create_task(r)
            except Exception as e:
                log.exc(_TAG, "%s follow-up failed", e, action)

    def _invalid(self, what, kind="InvalidMessages"):
        if self._on_invalid is not None:
            self._on_invalid(kind, what)

    def _refuse(self, action, payload, streamed):
        # -> None, or (code, description) of the CALLERROR a CALL gets before
        # its handler runs. The validator reads its tables from flash: on a
        # fragmented heap that can fail, and the CALL is still answered.
        try:
            validate = self._validator()
            if not validate.known(action):
                return ("NotImplemented", "unknown action " + action[:40])
            if self._serves is not None and not self._serves(action):
                return ("NotSupported", action + " not supported")
            return None if streamed else validate.check(action, False, payload)
        except MemoryError as e:
            log.exc(_TAG, "CALL not checked", e)
            return ("InternalError", "no memory to check it")

    async def _answer_error(self, mid, code, desc):
        log.warn(_TAG, "CALL %s -> CALLERROR %s %s", mid, code, desc)
        if code in _INVALID:
            self._invalid(code)
        await self._write(
            "[4,%s,%s,%s,{}]" % (_escape_id(mid), _escape_id(code), _escape_id(desc))
        )

    async def _write(self, text):
        if self._send is None:
            return
        try:
            await self._send(text)
        except Exception as e:
            log.warn(_TAG, "answer not sent: %r", e)
