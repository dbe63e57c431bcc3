"""Fuzzing campaign against the whole running firmware (tools/fuzz,
host_tests/test_fuzz.py, docs/reliability.md).

The bench CSMS and a simulated charger with a charging session in progress;
N frames, random and mutated from valid CSMS calls of every CSMS-initiated
OCPP 1.6 action, each checked against an oracle:
- a CALL with a usable id gets one answer with that id: the CALLERROR code
  OCPP-J §4.2.3 gives for what is wrong with it, or (a mutation that happens
  to be valid) a CALLRESULT valid against the schema, or a CALLERROR a
  handler gives for a valid payload it refuses (NotSupported, a constraint);
- a frame that cannot carry an id gets no answer;
- the charger never restarts (process alive, the boot counter unchanged),
  keeps its connection (reconnects only after the frames that must close it:
  oversize, protocol violations), keeps charging (the transaction, the relay
  closed) and stops the session cleanly with exactly one StopTransaction;
- the heap in use (after a collection) is the same at the end as at the start.
"""
import ast
import collections
import copy
import json
import os
import random
import re
import sys
import tempfile
import time

import logging

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

import csms_lib  # noqa: E402
from csms_lib import BenchCSMS  # noqa: E402

ID_TAG = "FUZZCARD"
MAX_MESSAGE = 65536  # the charger's limit (ws.WebSocket max_message)
RX_BUFFER = 4096  # its receive buffer: a longer message is read from flash
TOO_LARGE = "InternalError (too large for memory)"
STREAM_VALUE = "FormationViolation (SendLocalList value over 1 KiB)"
TX_ID = 424242  # far from the values the mutations produce

PROVISIONING = {
    "identity": {"chargePointVendor": "OpenCharge", "chargePointModel": "MPY-AC22",
                 "chargePointSerialNumber": "SIM-FUZZ", "firmwareVersion": "0.1.0-fuzz"},
    "keys": {"MessageTimeout": 5, "HeartbeatInterval": 300, "MeterValueSampleInterval": 0,
             "ConnectionTimeOut": 30, "TransactionMessageRetryInterval": 2},
    "settings": {"reconnectMinMs": 200, "reconnectMaxMs": 1000, "bootRetryS": 2,
                 "connectTimeoutMs": 3000, "pongTimeoutMs": 2000},
}

_FUTURE = "2099-01-01T00:00:00Z"
_PAST = "2020-01-01T00:00:00Z"

# A valid call of every CSMS-initiated OCPP 1.6 action, chosen so that it
# leaves the running session alone (a connector that does not exist, a
# transaction that is not running, a key that is not there, a transfer to a
# closed port with no retries).
TEMPLATES = {
    "CancelReservation": {"reservationId": 9191},
    "ChangeAvailability": {"connectorId": 9, "type": "Operative"},
    "ChangeConfiguration": {"key": "FuzzKey", "value": "1"},
    "ClearCache": {},
    "ClearChargingProfile": {"id": 9191, "connectorId": 1,
                             "chargingProfilePurpose": "TxProfile", "stackLevel": 3},
    "DataTransfer": {"vendorId": "org.fuzz", "messageId": "m1", "data": "d"},
    "GetCompositeSchedule": {"connectorId": 1, "duration": 60, "chargingRateUnit": "A"},
    "GetConfiguration": {"key": ["HeartbeatInterval", "FuzzKey"]},
    "GetDiagnostics": {"location": "ftp://127.0.0.1:1/diag", "retries": 0,
                       "retryInterval": 1, "startTime": _PAST, "stopTime": _FUTURE},
    "GetLocalListVersion": {},
    "RemoteStartTransaction": {"idTag": "FUZZREMOTE", "connectorId": 1},
    "RemoteStopTransaction": {"transactionId": 9191},
    "ReserveNow": {"connectorId": 1, "expiryDate": _FUTURE, "idTag": "FUZZRES",
                   "parentIdTag": "FUZZPARENT", "reservationId": 9191},
    "Reset": {"type": "Soft"},
    "SendLocalList": {"listVersion": 7, "updateType": "Differential",
                      "localAuthorizationList": [
                          {"idTag": "FUZZLL1", "idTagInfo": {"status": "Accepted",
                                                             "expiryDate": _FUTURE,
                                                             "parentIdTag": "FUZZPARENT"}},
                          {"idTag": "FUZZLL2"}]},
    "SetChargingProfile": {"connectorId": 9, "csChargingProfiles": {
        "chargingProfileId": 9191, "transactionId": 9191, "stackLevel": 1,
        "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
        "recurrencyKind": "Daily", "validFrom": _PAST, "validTo": _FUTURE,
        "chargingSchedule": {"duration": 3600, "startSchedule": _PAST,
                             "chargingRateUnit": "A", "minChargingRate": 6.0,
                             "chargingSchedulePeriod": [
                                 {"startPeriod": 0, "limit": 16.0, "numberPhases": 3},
                                 {"startPeriod": 600, "limit": 10.0}]}}},
    "TriggerMessage": {"requestedMessage": "Heartbeat"},
    "UnlockConnector": {"connectorId": 9},
    "UpdateFirmware": {"location": "http://127.0.0.1:1/fw.img", "retries": 0,
                       "retrieveDate": _PAST, "retryInterval": 1},
}
# Actions that would touch the session or restart the charger were a mutated
# payload valid: a valid mutation of these is sent as its template instead
# (Reset: never sent valid).
UNSAFE = frozenset(("ChangeAvailability", "ChangeConfiguration", "GetDiagnostics",
                    "RemoteStartTransaction", "RemoteStopTransaction", "ReserveNow",
                    "SetChargingProfile", "UnlockConnector", "UpdateFirmware",
                    "TriggerMessage", "Reset"))
# Charger-initiated actions sent to the charger: it implements none of them.
CP_INITIATED = {
    "Authorize": {"idTag": "FUZZ"}, "BootNotification": PROVISIONING["identity"],
    "Heartbeat": {}, "StatusNotification": {"connectorId": 1, "errorCode": "NoError",
                                            "status": "Available"},
    "StopTransaction": {"meterStop": 1, "timestamp": _PAST, "transactionId": TX_ID},
    "StartTransaction": {"connectorId": 1, "idTag": "FUZZ", "meterStart": 0,
                         "timestamp": _PAST},
    "MeterValues": {"connectorId": 1, "meterValue": []},
    "DiagnosticsStatusNotification": {"status": "Idle"},
    "FirmwareStatusNotification": {"status": "Idle"},
}
# The security whitepaper's CSMS calls: answered by the firmware (checked
# against their schemas), or known and NotSupported (no handler yet).
SECURITY_SERVED = frozenset(("InstallCertificate", "GetInstalledCertificateIds",
                             "DeleteCertificate", "SignedUpdateFirmware",
                             "CertificateSigned", "ExtendedTriggerMessage", "GetLog"))
SECURITY_UNSERVED = frozenset()
_HASH = {"hashAlgorithm": "SHA256", "issuerNameHash": "00", "issuerKeyHash": "00",
         "serialNumber": "01"}
SECURITY_WARMUP = (
    ("GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"}),
    ("InstallCertificate", {"certificateType": "CentralSystemRootCertificate",
                            "certificate": "-----BEGIN CERTIFICATE-----\nAA==\n"
                                           "-----END CERTIFICATE-----\n"}),
    ("DeleteCertificate", {"certificateHashData": _HASH}),
    # no ManufacturerRootCertificate is ever installed: InvalidCertificate,
    # no job (the signature check's modules are not warmed up)
    ("SignedUpdateFirmware", {"requestId": 1, "firmware": {
        "location": "http://127.0.0.1:1/fw.img", "retrieveDateTime": _PAST,
        "signingCertificate": "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        "signature": "AA=="}}),
    ("CertificateSigned", {"certificateChain": "-----BEGIN CERTIFICATE-----\nAA==\n"
                                               "-----END CERTIFICATE-----\n"}),
    ("ExtendedTriggerMessage", {"requestedMessage": "Heartbeat"}),
    # to a closed port, no retry: Uploading, then UploadFailure
    ("GetLog", {"logType": "SecurityLog", "requestId": 1, "retries": 0,
                "log": {"remoteLocation": "ftp://127.0.0.1:1/logs/"}}),
) + tuple((a, {}) for a in sorted(SECURITY_UNSERVED))
# Those, actions of other OCPP versions, and made-up ones.
UNKNOWN_ACTIONS = ("ExtendedTriggerMessage", "CertificateSigned", "GetLog",
                   "SignedUpdateFirmware", "InstallCertificate", "SetVariables",
                   "FooBar", "", "reset", "Reset ", "Ｒｅｓｅｔ", "x" * 300)

NOT_IMPLEMENTED = "NotImplemented"
NOT_SUPPORTED = "NotSupported"
FORMATION = "FormationViolation"
PROTOCOL = "ProtocolError"
TYPE = "TypeConstraintViolation"
PROPERTY = "PropertyConstraintViolation"
OCCURENCE = "OccurenceConstraintViolation"
RESULT = "CALLRESULT"
# What a handler may answer to a payload that is valid against the schema
# but not acceptable (out-of-range connector, too many keys, ...).
SEMANTIC = frozenset((RESULT, NOT_SUPPORTED, PROPERTY, OCCURENCE))

_CODES = {"required": {PROTOCOL, OCCURENCE}, "type": {TYPE},
          "enum": {PROPERTY}, "maxLength": {PROPERTY}, "minLength": {PROPERTY},
          "minimum": {PROPERTY}, "maximum": {PROPERTY},
          "minItems": {OCCURENCE}, "maxItems": {OCCURENCE}}
# Checks the firmware leaves out (decisions, docs/reliability.md): unknown
# fields are ignored, multipleOf is not checked, its date-time parser also
# takes a space for the T and no zone. Where only those fail, any answer
# that fits the rest is right.
_LENIENT = {"additionalProperties", "multipleOf", "format"}

_validators = {}


def _validator(action):
    v = _validators.get(action)
    if v is None:
        path = os.path.join(csms_lib._SCHEMA_DIR, action + ".json")
        with open(path, encoding="utf-8-sig") as f:
            schema = json.load(f)
        v = _validators[action] = jsonschema.Draft4Validator(
            schema, format_checker=csms_lib._FORMATS)
    return v


def expected_codes(action, payload):
    """The answers that are right for a CALL of this action and payload: a
    set of CALLERROR codes and/or RESULT."""
    if not isinstance(action, str) or action not in FIRMWARE_ACTIONS:
        return {NOT_IMPLEMENTED}
    if not isinstance(payload, dict):
        return {FORMATION}
    if action in CP_INITIATED or action in SECURITY_UNSERVED:
        out = {NOT_IMPLEMENTED, NOT_SUPPORTED}
        return out
    codes = set()
    lenient = False
    for e in _validator(action).iter_errors(_finite(payload)):
        if e.validator in _LENIENT:
            lenient = True
            continue
        if action == "TriggerMessage" and e.validator == "enum" \
                and list(e.path) == ["requestedMessage"] and isinstance(e.instance, str) \
                and len(e.instance) <= 50:
            continue  # an open enum: NotImplemented (tools/gen_schema.py OPEN_ENUMS)
        codes |= _CODES.get(e.validator, {PROPERTY})
    if codes and isinstance(payload.get("location"), str):
        codes.add(PROPERTY)  # the firmware checks a URI's shape, the oracle does not
    if not codes:
        return set(SEMANTIC)
    if lenient:
        codes |= SEMANTIC
    return codes


def _finite(x):
    # An infinity (1e999 read) as the largest float: jsonschema's multipleOf
    # cannot take one; every other check judges them alike.
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return 0.0 if x != x else (1.7976931348623157e308 if x > 0 else -1.7976931348623157e308)
    if type(x) is int and abs(x) > 2 ** 1000:  # nor an int beyond float
        return 2 ** 1000 if x > 0 else -2 ** 1000
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


FIRMWARE_ACTIONS = frozenset(TEMPLATES) | frozenset(CP_INITIATED) | SECURITY_SERVED \
    | SECURITY_UNSERVED


# --------------------------------------------------------------------------
# Generation

_HUGE = (2 ** 31, 2 ** 31 - 1, -2 ** 31 - 1, 2 ** 32, 2 ** 63, -2 ** 63 - 1, 2 ** 64,
         10 ** 40, -10 ** 40, 1e308, -1e308, 5e-324, 1.7976931348623157e308, 0.1,
         -0.0, 2 ** 30, 2 ** 30 - 1, -2 ** 30)
# Raw JSON number literals substituted in the text: beyond float, long forms.
_RAW_NUMBERS = ("1e999", "-1e999", "1" * 400, "-" + "9" * 400, "0.0000000000000000000001",
                "1E+2", "1e-999", "123456789012345678901234567890.5")


class Raw(str):
    """A payload as JSON text CPython's json does not give back (a number
    beyond float, a deep nest), with the payload the oracle judges."""

    def __new__(cls, text, oracle):
        s = str.__new__(cls, text)
        s.oracle = oracle
        return s


class Frame:
    __slots__ = (
        "action",
        "category",
        "data",
        "expect",
        "kind",
        "mid",
        "op",
        "payload",
        "reconnect",
    )

    def __init__(self, category, kind, data, op="text", mid=None, action=None,
                 expect=None, reconnect=False, payload=None):
        self.category = category  # the campaign's category, for the figures
        self.kind = kind  # the mutation within it
        self.op = op  # "text", "binary", "frames"
        self.data = data  # str, bytes, or a list of (opcode, bytes, fin)
        self.mid = mid  # the id the answer must carry, or None: no answer
        self.action = action
        self.expect = expect  # set of codes (RESULT for a CALLRESULT)
        self.reconnect = reconnect  # the frame must close the connection
        self.payload = payload


def _paths(x, path=()):
    # Every (path, value) in a JSON tree, the root first.
    yield path, x
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _paths(v, path + (k,))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _paths(v, path + (i,))


def _get(x, path):
    for p in path:
        x = x[p]
    return x


def _set(x, path, value):
    if not path:
        return value
    _get(x, path[:-1])[path[-1]] = value
    return x


class Generator:
    def __init__(self, seed, frames, prefix="f"):
        self.r = random.Random(seed)
        self.prefix = prefix
        self.total = frames
        self.n = 0
        self.last_call = None  # (mid, action, payload text, expect) for duplicates

    def mid(self):
        self.n += 1
        return "%s%x" % (self.prefix, self.n)

    def rstr(self, n=None):
        r = self.r
        n = r.choice((0, 1, 5, 20, 21, 25, 50, 51, 255, 256, 500, 501)) if n is None else n
        pick = r.random()
        if pick < 0.5:
            return "".join(r.choice("abcXYZ019 _-:.") for _ in range(n))
        if pick < 0.8:
            return "".join(chr(r.choice((r.randrange(0x20, 0x7f), r.randrange(0x80, 0x800),
                                         r.randrange(0x800, 0xd800), r.randrange(0xe000, 0x10000),
                                         r.randrange(0x10000, 0x110000), r.randrange(0, 0x20))))
                           for _ in range(n))
        return r.choice(("", "null", "Accepted", "accepted", "ACCEPTED", "2026-13-45T99:99:99Z",
                         "2026-01-01", "2026-01-01T00:00:00", "2026-01-01T00:00:00+25:99",
                         "ftp://", "http://[::1", ":", "a:b", "\x00", "\u2028", "%s%n%x",
                         "'; DROP TABLE", "../../../etc/passwd", "\\", "\"", "A", "W",
                         "1", "-1", "1e999", "NaN"))

    def rvalue(self, depth=0):
        r = self.r
        k = r.randrange(9 if depth < 3 else 6)
        if k == 0:
            return None
        if k == 1:
            return r.choice((True, False))
        if k == 2:
            return r.choice((0, 1, -1, 9, 10, 100, 3600, 65535)) if r.random() < 0.5 \
                else r.choice(_HUGE)
        if k == 3:
            return r.choice((0.5, -1.5, 16.05, 1e-9, 3.3e38, 6.0))
        if k in (4, 5):
            return self.rstr()
        if k == 6:
            return []
        if k == 7:
            return [self.rvalue(depth + 1) for _ in range(r.randrange(4))]
        return {self.rstr(r.choice((1, 5, 10))): self.rvalue(depth + 1)
                for _ in range(r.randrange(4))}

    # --- payload mutations: (kind, payload) or (kind, payload text)
    def mutate(self, payload):
        r = self.r
        p = copy.deepcopy(payload)
        paths = list(_paths(p))
        fields = [pv for pv in paths if pv[0]]
        kind = r.choice(("wrong_type", "missing", "extra", "huge_number", "raw_number",
                         "deep_nesting", "long_string", "string", "enum_case",
                         "empty_container", "many_items", "several"))
        if kind in ("wrong_type", "missing", "huge_number", "long_string", "string",
                    "enum_case", "empty_container", "raw_number") and not fields:
            kind = "extra"
        if kind == "several":
            for _ in range(r.randrange(2, 5)):
                _, p = self.mutate(p)
                if not isinstance(p, dict):
                    break
            return kind, p
        if kind == "wrong_type":
            path, v = r.choice(fields)
            new = self.rvalue()
            while type(new) is type(v):
                new = self.rvalue()
            return kind, _set(p, path, new)
        if kind == "missing":
            path, _ = r.choice(fields)
            del _get(p, path[:-1])[path[-1]]
            return kind, p
        if kind == "extra":
            objs = [pv for pv in paths if isinstance(pv[1], dict)]
            path, o = r.choice(objs) if objs else ((), p)
            o[self.rstr(r.choice((1, 8, 30)))] = self.rvalue()
            return kind, p
        if kind == "huge_number":
            nums = [pv for pv in fields if type(pv[1]) in (int, float)] or fields
            path, _ = r.choice(nums)
            return kind, _set(p, path, r.choice(_HUGE))
        if kind == "raw_number":
            nums = [pv for pv in fields if type(pv[1]) in (int, float)] or fields
            path, _ = r.choice(nums)
            _set(p, path, "@@RAW@@")
            lit = r.choice(_RAW_NUMBERS)
            text = json.dumps(p)
            return kind, Raw(text.replace('"@@RAW@@"', lit),
                             json.loads(text.replace('"@@RAW@@"', lit)))
        if kind == "deep_nesting":
            depth = r.choice((10, 100, 1000, 5000))
            path, _ = r.choice(fields) if fields and r.random() < 0.7 else ((), None)
            opener, closer = ("[", "]") if r.random() < 0.5 else ('{"a":', "}")
            _set(p, path, "@@RAW@@") if path else None
            text = json.dumps(p if path else dict(p, deep="@@RAW@@"))
            # The schemas are shallow: the oracle judges a nest of depth 2.
            return kind, Raw(text.replace('"@@RAW@@"', opener * depth + "1" + closer * depth),
                             json.loads(text.replace('"@@RAW@@"', opener * 2 + "1" + closer * 2)))
        if kind == "long_string":
            strs = [pv for pv in fields if isinstance(pv[1], str)] or fields
            path, _ = r.choice(strs)
            n = r.choice((21, 26, 51, 256, 501, 1001, 3000, 5000, 20000))
            return kind, _set(p, path, r.choice("xÿ€😀") * n)
        if kind == "string":
            path, _ = r.choice(fields)
            return kind, _set(p, path, self.rstr())
        if kind == "enum_case":
            strs = [pv for pv in fields if isinstance(pv[1], str)] or fields
            path, v = r.choice(strs)
            v = v if isinstance(v, str) else "Accepted"
            return kind, _set(p, path, r.choice((v.lower(), v.upper(), v + " ", " " + v,
                                                  v[:-1], v + "\x00")))
        if kind == "empty_container":
            path, v = r.choice(fields)
            return kind, _set(p, path, r.choice(({}, [], "", 0)))
        # many_items: a list made long, or a list put where anything is
        lists = [pv for pv in fields if isinstance(pv[1], list)]
        if lists:
            path, v = r.choice(lists)
            item = v[0] if v else self.rvalue()
        else:
            path, _ = r.choice(fields) if fields else ((), None)
            item = self.rvalue()
            if not path:
                p["many"] = None
                path = ("many",)
        return kind, _set(p, path, [copy.deepcopy(item)
                                    for _ in range(r.choice((2, 11, 33, 101, 1000)))])

    # --- frames
    def call_frame(self, category, kind, action, payload, mid=None):
        mid = self.mid() if mid is None else mid
        text = payload if isinstance(payload, str) else json.dumps(payload,
                                                                   ensure_ascii=False)
        frame = '[2,%s,%s,%s]' % (json.dumps(mid), json.dumps(action), text)
        if len(frame.encode()) > MAX_MESSAGE:
            # Over the charger's limit: closed with 1009, never read.
            return Frame(category, kind, frame, action=action, reconnect=True)
        parsed = payload.oracle if isinstance(payload, Raw) else payload
        expect = expected_codes(action, parsed)
        if isinstance(mid, str) and len(mid) > csms_lib.MAX_ID_LEN:
            expect = {FORMATION}
        self.last_call = (mid, action, text, expect)
        return Frame(category, kind, frame, mid=mid, action=action, expect=expect,
                     payload=parsed)

    def next(self):
        r = self.r
        x = r.random()
        if x < 0.08:
            action = r.choice(sorted(TEMPLATES))
            if action == "Reset":
                action = "GetLocalListVersion"
            return self.call_frame("valid", "template", action, TEMPLATES[action])
        if x < 0.62:
            action = r.choice(sorted(TEMPLATES))
            for _ in range(20):
                kind, p = self.mutate(TEMPLATES[action])
                parsed = p.oracle if isinstance(p, Raw) else p
                if action not in UNSAFE or not (expected_codes(action, parsed) & {RESULT}):
                    return self.call_frame("mutated", kind, action, p)
            # only valid mutations came out: the template instead
            return self.call_frame("valid", "template", action,
                                   TEMPLATES[action if action != "Reset" else "ClearCache"])
        if x < 0.66:
            action = r.choice(sorted(CP_INITIATED))
            return self.call_frame("wrong_action", "charger_action", action,
                                   CP_INITIATED[action])
        if x < 0.69:
            return self.call_frame("wrong_action", "unknown_action", r.choice(UNKNOWN_ACTIONS),
                                   {})
        if x < 0.72:
            return self.bad_type_id()
        if x < 0.76:
            return self.bad_id()
        if x < 0.79:
            return self.bad_shape()
        if x < 0.83:
            return self.not_json()
        if x < 0.86:
            return self.answers()
        if x < 0.89:
            return self.binary_or_utf8()
        if x < 0.93:
            return self.fragments()
        if x < 0.97 and self.last_call is not None:
            mid, action, text, expect = self.last_call
            return Frame("duplicate_id", "same_id", '[2,%s,%s,%s]' % (
                json.dumps(mid), json.dumps(action), text), mid=mid, action=action,
                expect=expect)
        if x < 0.995:
            return self.long_message()
        return self.oversize()

    def bad_type_id(self):
        r = self.r
        t = r.choice(("0", "1", "5", "9", "-1", "2.0", "3.0", "true", "null", '"2"', "[2]",
                      "{}", "99999999999999999999", "1e999"))
        return Frame("bad_type_id", "type " + t, '[%s,"%s","Heartbeat",{}]' % (t, self.mid()))

    def bad_id(self):
        r = self.r
        k = r.choice(("number", "null", "list", "object", "bool", "long", "empty", "unicode"))
        action = r.choice(sorted(TEMPLATES))
        action = action if action != "Reset" else "ClearCache"
        if k == "long":
            return self.call_frame("bad_id", "long_id", action, TEMPLATES[action],
                                   mid="i" * r.choice((37, 64, 1000)))
        if k == "empty":
            return self.call_frame("bad_id", "empty_id", action, TEMPLATES[action], mid="")
        if k == "unicode":
            return self.call_frame("bad_id", "unicode_id", action, TEMPLATES[action],
                                   mid="ü€😀\x00" + self.mid())
        v = {"number": "12", "null": "null", "list": '["a"]', "object": '{"a":1}',
             "bool": "true"}[k]
        return Frame("bad_id", k + "_id", '[2,%s,"%s",%s]' % (
            v, action, json.dumps(TEMPLATES[action])))

    def bad_shape(self):
        r = self.r
        mid = self.mid()
        k = r.choice(("short", "long", "payload_array", "payload_string", "payload_null",
                      "action_number", "action_null", "just_type"))
        if k == "short":
            return Frame("bad_shape", k, '[2,"%s","GetConfiguration"]' % mid, mid=mid,
                         expect={FORMATION})
        if k == "long":
            return Frame("bad_shape", k, '[2,"%s","GetConfiguration",{},{}]' % mid, mid=mid,
                         expect={FORMATION})
        if k.startswith("payload_"):
            v = {"payload_array": "[]", "payload_string": '"x"', "payload_null": "null"}[k]
            return Frame("bad_shape", k, '[2,"%s","GetConfiguration",%s]' % (mid, v),
                         mid=mid, expect={FORMATION})
        if k.startswith("action_"):
            v = {"action_number": "7", "action_null": "null"}[k]
            return Frame("bad_shape", k, '[2,"%s",%s,{}]' % (mid, v), mid=mid,
                         expect={FORMATION})
        return Frame("bad_shape", k, "[2]")

    def not_json(self):
        r = self.r
        full = '[2,"%s","GetConfiguration",{"key":["HeartbeatInterval"]}]' % self.mid()
        k = r.choice(("truncated", "garbage", "empty", "not_frame", "trailing", "nan"))
        if k == "truncated":
            s = full[:r.randrange(1, len(full) - 1)]
        elif k == "garbage":
            s = self.rstr(r.choice((1, 10, 100, 1000)))
        elif k == "empty":
            s = r.choice(("", " ", "\n", "\x00"))
        elif k == "not_frame":
            s = r.choice(("{}", '{"a":[2,"x","Reset",{}]}', "null", "true", "12", '"s"',
                          "[]", "[[]]", "[{}]", '["2","x","Reset",{}]'))
        elif k == "trailing":
            s = full + r.choice(("]", ",", "x", "[2]"))
        else:
            s = '[2,"%s","GetConfiguration",{"key":NaN}]' % self.mid()
        return Frame("not_json", k, s)

    def answers(self):
        r = self.r
        k = r.choice(("result", "error", "result_bad", "error_bad", "result_short"))
        mid = r.choice(("nobody", self.mid(), "", "1"))
        s = {"result": '[3,"%s",{"status":"Accepted"}]' % mid,
             "error": '[4,"%s","GenericError","x",{}]' % mid,
             "result_bad": '[3,"%s",[1,2]]' % mid,
             "error_bad": '[4,"%s",7,null]' % mid,
             "result_short": "[3]"}[k]
        return Frame("answer_frames", k, s)

    def binary_or_utf8(self):
        r = self.r
        k = r.choice(("binary", "invalid_utf8", "invalid_utf8_call"))
        if k == "binary":
            return Frame("binary", k, bytes(r.randrange(256) for _ in range(
                r.choice((0, 1, 16, 500)))), op="binary")
        if k == "invalid_utf8":
            data = r.choice((b"\xff\xfe", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1",
                             b"\xf0\x28\x8c\xbc", b"\xed\xa0\x80", b"\xc0\xaf"))
            return Frame("invalid_utf8", k, [("text", data, True)], op="frames")
        mid = self.mid()
        data = ('[2,"%s","DataTransfer",{"vendorId":"x","data":"' % mid).encode() + \
            b"\xff\xfe\xfd" + b'"}]'
        # Skipped as a whole: no answer (the id is in a message not read).
        return Frame("invalid_utf8", k, [("text", data, True)], op="frames")

    def fragments(self):
        r = self.r
        action = r.choice(("GetConfiguration", "DataTransfer", "GetLocalListVersion",
                           "ClearCache", "GetCompositeSchedule"))
        f = self.call_frame("fragments", "fragmented_call", action, TEMPLATES[action])
        data = f.data.encode()
        k = r.choice(("fragmented", "fragmented", "one_byte", "bad_continuation"))
        if k == "bad_continuation":
            # A continuation frame with no message started: a protocol
            # violation, the charger closes with 1002 and reconnects.
            return Frame("fragments", k, [("cont", data, True)], op="frames", reconnect=True)
        if k == "one_byte":
            cuts = list(range(1, len(data)))
        else:
            cuts = sorted({r.randrange(1, len(data)) for _ in range(r.randrange(1, 6))})
        pieces = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
        frames = [("text" if i == 0 else "cont", p, i == len(pieces) - 1)
                  for i, p in enumerate(pieces)]
        f.op, f.data, f.kind = "frames", frames, k
        return f

    def long_message(self):
        # Between the receive buffer (4 KiB) and the limit (64 KiB): the
        # message goes to flash and is read from there.
        r = self.r
        action = r.choice(("DataTransfer", "GetConfiguration", "SendLocalList",
                           "ChangeConfiguration"))
        n = r.choice((4000, 5000, 20000, 60000))
        if action == "DataTransfer":
            p = dict(TEMPLATES[action], data=r.choice("aé€") * n)
        elif action == "GetConfiguration":
            p = {"key": ["K%d" % i for i in range(n // 8)]}
        elif action == "SendLocalList":
            p = {"listVersion": 8, "updateType": "Differential",
                 "localAuthorizationList": [{"idTag": "L%05d" % i} for i in range(n // 20)]}
        else:
            p = {"key": "FuzzKey", "value": "v" * n}
        if len(json.dumps(p)) > 65000:
            p = dict(TEMPLATES["DataTransfer"], data="a" * 60000)
            action = "DataTransfer"
        return self.call_frame("long_message", action, action, p)

    def oversize(self):
        r = self.r
        n = r.choice((65537, 100000, 300000))
        s = '[2,"%s","DataTransfer",{"vendorId":"x","data":"%s"}]' % (self.mid(), "A" * n)
        return Frame("oversize", "over_64k", s, reconnect=True)


# --------------------------------------------------------------------------
# The campaign


class Failure(AssertionError):
    pass


class Campaign:
    """One run: start() the CSMS and the charger and the session, run(),
    finish() (stop the session, check everything), close()."""

    def __init__(self, frames=2000, seed=1, micropython=None, data_dir=None, heap="512k",
                 heap_tolerance=2048, log=print, answer_timeout=10.0, check_every=100,
                 warmup=300):
        self.warmup = warmup
        self.frames = frames
        self.seed = seed
        self.micropython = micropython
        self.heap = heap
        self.heap_tolerance = heap_tolerance
        self.say = log
        self.answer_timeout = answer_timeout
        self.check_every = check_every
        self._tmp = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fuzz-")
            data_dir = self._tmp.name
        self.data_dir = data_dir
        self.csms = None
        self.charger = None
        self.failures = []
        self.sent_ids = set()
        self.silent = 0  # CALLs in a row left unanswered
        self.stats = {"frames": 0, "by_category": {}, "by_kind": {}, "answers": {},
                      "no_answer": 0, "crashes": 0, "reconnects": 0,
                      "heap_trend": []}

    # --- setup
    def start(self):
        from simcharger import Charger
        logging.getLogger("csms").setLevel(logging.ERROR)  # counted, not printed
        self.traffic = collections.deque(maxlen=60)  # the CSMS's last lines
        self.csms = BenchCSMS(log=self.traffic.append).start()
        self.csms.next_transaction_id = TX_ID
        self.charger = Charger(self.csms.url, os.path.join(self.data_dir, "CP1"),
                               config=PROVISIONING, heap=self.heap,
                               micropython=self.micropython)
        self.charger.start()
        self.csms.wait_for("StatusNotification",
                           pred=lambda m: m.payload.get("connectorId") == 1, timeout=20)
        ch = self.charger
        ch.ok("plug_in", connector=1)
        ch.ok("swipe", idTag=ID_TAG)
        self.csms.wait_for("StartTransaction", timeout=15)
        ch.ok("load", connector=1, amps=[16, 16, 16], volts=[230, 230, 230])
        st = ch.wait_state(lambda s: s["connectors"][0]["status"] == "Charging"
                           and s["connectors"][0]["relay"]
                           and (s["connectors"][0]["transaction"] or {}).get("id") == TX_ID,
                           timeout=15, what="charging")
        self.boot = st["boot"]
        self.interpreter = self._interpreter()
        # Warm up: each template once, so that what is made on first need
        # (MeterValues, smart charging, the local list store) is there
        # before the heap is measured.
        # Then a short run of its own (another seed): the modules a kind of
        # frame imports on first need (jsonstream for a message kept in
        # flash, the handshake after a reconnect) and the buffers of the
        # first of each are there too. The growth measured is the run's.
        warm = Generator(self.seed + 100003, 1, prefix="w")
        for action in sorted(TEMPLATES):
            if action != "Reset":
                self._send_and_check(warm.call_frame("warmup", "template", action,
                                                     TEMPLATES[action]))
        # The security whitepaper's calls too: a handler's first call imports
        # the crypto and interns its names for good (a qstr pool can double).
        for action, payload in SECURITY_WARMUP:
            self._send_and_check(warm.call_frame("warmup", "template", action, payload))
        self.conns = self.csms.connections("CP1")
        for _ in range(self.warmup):
            self._send_and_check(warm.next())
        self.check_alive("after the warm-up")
        time.sleep(1.0)
        self.csms.violations.clear()
        self.conns = self.csms.connections("CP1")
        self.heap_before = self._heap()
        self.stats.update(interpreter=self.interpreter, seed=self.seed,
                          heap_before=self.heap_before, names_before=self._names())

    def _interpreter(self):
        import subprocess
        from harness import MICROPYTHON
        mp = self.micropython or MICROPYTHON
        out = subprocess.run([mp, "-c", ("import sys;print(sys.implementation._machine,"
                              "'64' if sys.maxsize > 2**32 else '32')")],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        return "%s (%s-bit; %s)" % (mp, out[-2:], out[:-3]) if out else mp

    def _heap(self):
        # The least of a few readings after a collection: a frame in flight
        # or a log line being written is not a leak.
        vals = []
        for _ in range(3):
            vals.append(self.charger.ok("heap")["alloc"])
            time.sleep(0.2)
        return min(vals)

    def _names(self):
        # The names (qstrs) the firmware has interned: a name stays for good,
        # so a rise in the heap that is names is no leak of objects. Read
        # from the heap map's qstr line (bench op heap_map) in the log.
        seen = len(re.findall(r"n_qstr=", self.charger.log_text()))
        self.charger.ok("heap_map")
        for _ in range(50):
            found = re.findall(r"n_qstr=(\d+)", self.charger.log_text())
            if len(found) > seen:
                return int(found[-1])
            time.sleep(0.1)
        return None

    # --- running
    def run(self):
        gen = Generator(self.seed, self.frames)
        t0 = time.time()
        for i in range(self.frames):
            f = gen.next()
            self._send_and_check(f)
            st = self.stats
            st["frames"] += 1
            st["by_category"][f.category] = st["by_category"].get(f.category, 0) + 1
            key = f.category + "/" + f.kind
            st["by_kind"][key] = st["by_kind"].get(key, 0) + 1
            if (i + 1) % self.check_every == 0:
                self.check_alive("after frame %d" % (i + 1))
            if (i + 1) % (self.frames // 5 or 1) == 0:
                st["heap_trend"].append(self._heap())
            if len(self.failures) > 50:
                self.say("too many failures, stopping")
                break
        self.stats["duration_s"] = round(time.time() - t0, 1)

    def _fail(self, f, text):
        msg = "%s/%s %s: %s" % (f.category, f.kind, _clip(f.data), text)
        self.failures.append(msg)
        self.say("FAIL " + msg)

    def _ours(self, violation):
        m = re.search(r"answer to an unknown message id (.*)$", violation)
        if m is None:
            return False
        try:
            return ast.literal_eval(m.group(1)) in self.sent_ids
        except (ValueError, SyntaxError):
            return False

    def _send(self, f):
        c = self.csms
        if f.op == "text" or f.op == "binary":
            c.send_raw("CP1", f.data)
        else:
            c.send_frames("CP1", f.data)

    def _send_and_check(self, f):
        c = self.csms
        mark = c.mark()
        conns = c.connections("CP1")
        try:
            self._send(f)
        except ConnectionError:
            c.wait_connected("CP1", timeout=15)
            mark = c.mark()
            conns = c.connections("CP1")
            self._send(f)
        if f.reconnect:
            try:
                c.wait_connected("CP1", timeout=20, count=conns + 1)
                self.stats["reconnects"] += 1
                self.conns += 1
                self._registered(mark)
            except Exception:
                self._fail(f, "the charger did not reconnect")
            return
        if f.mid is None:
            self.stats["no_answer"] += 1
            return
        self.sent_ids.add(f.mid)
        try:
            m = c.wait_for(None, direction="in",
                           pred=lambda m: m.id == f.mid and m.type in (3, 4),
                           after=mark, timeout=self.answer_timeout)
        except Exception:
            self._fail(f, "no answer within %ss; the CSMS saw:\n  %s" % (
                self.answer_timeout, "\n  ".join(_clip(x, 200) for x in
                                                   list(self.traffic)[-12:])))
            self.silent += 1
            if self.silent >= 3:
                raise Failure("the charger stopped answering\n" + self.charger.tail(20))
            return
        self.silent = 0
        if m.type == 3:
            code = RESULT
        else:
            code = json.loads(m.raw)[2]
            if code == "InternalError" and "too large for memory" in m.raw:
                # A message whose parse does not fit in the heap (kept in
                # flash, a deep nest, a thousand items): the documented
                # answer, counted apart (docs/reliability.md).
                code = TOO_LARGE
            elif code == FORMATION and f.action == "SendLocalList" \
                    and "longer than 1024 bytes" in m.raw:
                # Read from flash as a stream that holds no value over 1 KiB.
                code = STREAM_VALUE
        self.stats["answers"][code] = self.stats["answers"].get(code, 0) + 1
        if code not in f.expect and code not in (TOO_LARGE, STREAM_VALUE):
            self._fail(f, "answered %s (%s), expected %s" % (
                code, _clip(m.raw, 200), "/".join(sorted(f.expect))))

    def _registered(self, mark):
        # After a reconnect the charger sends nothing it need not: it is
        # registered already (no second BootNotification after a reboot-free
        # reconnect is not required, but a boot is).
        st = self.charger.state()
        if st["boot"] != self.boot:
            raise Failure("rebooted")

    def check_alive(self, when):
        ch = self.charger
        if ch.proc.poll() is not None:
            self.stats["crashes"] += 1
            raise Failure("%s: the charger process exited (%s)\n%s" % (
                when, ch.proc.returncode, ch.tail(40)))
        st = ch.state()
        c = st["connectors"][0]
        problems = []
        if st["boot"] != self.boot:
            self.stats["crashes"] += 1
            problems.append("boot counter %d -> %d" % (self.boot, st["boot"]))
        if (c["transaction"] or {}).get("id") != TX_ID:
            problems.append("transaction %r" % (c["transaction"],))
        if not c["relay"] or c["status"] != "Charging":
            problems.append("connector %s, relay %s" % (c["status"], c["relay"]))
        if self.csms.connections("CP1") != self.conns:
            problems.append("%d connections, expected %d" % (
                self.csms.connections("CP1"), self.conns))
        if "Traceback" in ch.log_text():
            problems.append("a traceback in the log")
        if problems:
            raise Failure("%s: %s\n%s" % (when, "; ".join(problems), ch.tail(40)))

    # --- the end
    def finish(self):
        self.check_alive("at the end")
        time.sleep(1.0)
        self.heap_after = self._heap()
        self.stats["heap_after"] = self.heap_after
        self.stats["names_after"] = self._names()
        # Not the charger's fault: a second answer to a duplicate id, the
        # long id echoed in its FormationViolation.
        # An answer to an id of ours the CSMS could not label (a frame it
        # cannot parse itself) is checked here, not there.
        viol = [v for v in self.csms.violations if "second answer to" not in v
                and "message id longer than" not in v and not self._ours(v)]
        self.stats["violations"] = len(viol)
        for v in viol[:20]:
            self.failures.append("CSMS saw: " + v)
        # Stop the session: exactly one StopTransaction, the relay open.
        mark = self.csms.mark()
        self.charger.ok("swipe", idTag=ID_TAG)
        stop = self.csms.wait_for("StopTransaction", after=mark, timeout=15)
        self.charger.wait_state(lambda s: not s["connectors"][0]["relay"]
                                and s["connectors"][0]["transaction"] is None,
                                timeout=15, what="the session stopped")
        time.sleep(1.0)
        stops = [m for m in self.csms.calls("StopTransaction") if m.type == csms_lib.CALL]
        if len(stops) != 1 or stop.payload.get("transactionId") != TX_ID:
            self.failures.append("StopTransaction: %d sent, %r" % (len(stops), stop.payload))
        if self.charger.state()["queue_depth"] != 0:
            self.failures.append("queue not empty at the end")
        growth = self.heap_after - self.heap_before
        self.stats["heap_growth"] = growth
        if growth > self.heap_tolerance:
            self.failures.append("heap grew by %d bytes (%d -> %d)" % (
                growth, self.heap_before, self.heap_after))
        self.stats["failures"] = len(self.failures)
        return self.stats

    def close(self):
        if self.charger is not None:
            self.charger.stop()
        if self.csms is not None:
            self.csms.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


def _size(data):
    if isinstance(data, list):
        return sum(len(d) for _, d, _ in data)
    return len(data.encode()) if isinstance(data, str) else len(data)


def _clip(x, n=120):
    if isinstance(x, list):
        x = b"".join(d for _, d, _ in x)
    s = repr(x)
    return s if len(s) <= n else s[:n] + "...(%d)" % len(s)


def report(stats):
    """The figures of a run as text."""
    out = ["interpreter: %s" % stats.get("interpreter"),
           "seed: %s, frames sent: %d, duration: %ss" % (
               stats.get("seed"), stats["frames"], stats.get("duration_s")),
           "by category: " + ", ".join(
               "%s %d" % kv for kv in sorted(stats["by_category"].items())),
           "answers: " + ", ".join("%s %d" % kv for kv in sorted(stats["answers"].items())),
           "frames without an answer (none due): %d; reconnects (due): %d" % (
               stats["no_answer"], stats["reconnects"]),
           "crashes: %d; failures: %s" % (stats["crashes"], stats.get("failures")),
           "heap in use after a collection: %s before, %s after (%+d)" % (
               stats.get("heap_before"), stats.get("heap_after"),
               stats.get("heap_growth", 0)),
           "heap in use at each fifth of the run: %s" % (
               " ".join(str(x) for x in stats.get("heap_trend", ()))),
           "names interned (qstrs, kept for good): %s before, %s after" % (
               stats.get("names_before"), stats.get("names_after"))]
    return "\n".join(out)
