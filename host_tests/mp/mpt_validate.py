# heap: 64wK
# Payload validation (validate.py + the generated ocpp_schema.py), run inside
# MicroPython with a heap equivalent to 64 KiB on the 32-bit boards.
import gc
import sys

import micropython
from mpocpp.protocol import validate

PROTO = "ProtocolError"
TYPE = "TypeConstraintViolation"
PROP = "PropertyConstraintViolation"
OCC = "OccurenceConstraintViolation"
FORM = "FormationViolation"

T = "2026-11-21T19:29:20Z"
PROFILE = {
    "chargingProfileId": 7, "transactionId": 3, "stackLevel": 1,
    "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Recurring",
    "recurrencyKind": "Daily", "validFrom": T, "validTo": "2027-01-01T00:00:00.5+01:00",
    "chargingSchedule": {
        "duration": 3600, "startSchedule": T, "chargingRateUnit": "W",
        "minChargingRate": 1.5,
        "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 11000.0, "numberPhases": 3},
            {"startPeriod": 600, "limit": 16},
        ],
    },
}
SAMPLED = [
    {"value": "1234.5", "context": "Sample.Periodic", "format": "Raw",
     "measurand": "Energy.Active.Import.Register", "phase": "L1-N",
     "location": "Outlet", "unit": "kWh"},
    {"value": "16"},
]

# One valid example per action and direction: (action, is_response, payload).
# Literals only (plus T, PROFILE, SAMPLED): test_schema_fresh.py evaluates
# these assignments on CPython and checks every entry against the schemas.
SAMPLES = [
    ("Authorize", False, {"idTag": "04A2B3C4D5E6F7"}),
    ("Authorize", True, {"idTagInfo": {"status": "Accepted",
                                       "expiryDate": "2027-01-01T00:00:00Z",
                                       "parentIdTag": "PARENT"}}),
    ("BootNotification", False, {
        "chargePointVendor": "OpenEVSE", "chargePointModel": "MPy-1",
        "chargePointSerialNumber": "SN-1", "chargeBoxSerialNumber": "CB-1",
        "firmwareVersion": "0.1.0", "iccid": "8944", "imsi": "2620",
        "meterType": "internal", "meterSerialNumber": "M-1"}),
    ("BootNotification", True, {"status": "Accepted",
                                "currentTime": "2026-11-21T19:29:20.123Z",
                                "interval": 300}),
    ("CancelReservation", False, {"reservationId": 4}),
    ("CancelReservation", True, {"status": "Rejected"}),
    ("ChangeAvailability", False, {"connectorId": 0, "type": "Inoperative"}),
    ("ChangeAvailability", True, {"status": "Scheduled"}),
    ("ChangeConfiguration", False, {"key": "HeartbeatInterval", "value": "60"}),
    ("ChangeConfiguration", True, {"status": "RebootRequired"}),
    ("ClearCache", False, {}),
    ("ClearCache", True, {"status": "Accepted"}),
    ("ClearChargingProfile", False, {"id": 1, "connectorId": 1,
                                     "chargingProfilePurpose": "TxDefaultProfile",
                                     "stackLevel": 0}),
    ("ClearChargingProfile", True, {"status": "Unknown"}),
    ("DataTransfer", False, {"vendorId": "com.example", "messageId": "m",
                             "data": "{\"a\":1}"}),
    ("DataTransfer", True, {"status": "UnknownVendorId"}),
    ("DiagnosticsStatusNotification", False, {"status": "Uploaded"}),
    ("DiagnosticsStatusNotification", True, {}),
    ("FirmwareStatusNotification", False, {"status": "InstallationFailed"}),
    ("FirmwareStatusNotification", True, {}),
    ("GetCompositeSchedule", False, {"connectorId": 1, "duration": 3600,
                                     "chargingRateUnit": "A"}),
    ("GetCompositeSchedule", True, {
        "status": "Accepted", "connectorId": 1, "scheduleStart": T,
        "chargingSchedule": {"duration": 3600, "chargingRateUnit": "A",
                             "chargingSchedulePeriod": [
                                 {"startPeriod": 0, "limit": 7.5}]}}),
    ("GetConfiguration", False, {"key": ["HeartbeatInterval", "MeterValueSampleInterval"]}),
    ("GetConfiguration", True, {
        "configurationKey": [{"key": "HeartbeatInterval", "readonly": False,
                              "value": "300"},
                             {"key": "AuthorizationKey", "readonly": False}],
        "unknownKey": ["Foo"]}),
    ("GetDiagnostics", False, {"location": "ftp://user:pw@diag.example.com/up/",
                               "retries": 3, "retryInterval": 60,
                               "startTime": T, "stopTime": T}),
    ("GetDiagnostics", True, {"fileName": "diag-20261121.log"}),
    ("GetLocalListVersion", False, {}),
    ("GetLocalListVersion", True, {"listVersion": -1}),
    ("Heartbeat", False, {}),
    ("Heartbeat", True, {"currentTime": T}),
    ("MeterValues", False, {"connectorId": 1, "transactionId": 42,
                            "meterValue": [{"timestamp": T, "sampledValue": SAMPLED}]}),
    ("MeterValues", True, {}),
    ("RemoteStartTransaction", False, {"idTag": "TAG1", "connectorId": 1,
                                       "chargingProfile": PROFILE}),
    ("RemoteStartTransaction", True, {"status": "Accepted"}),
    ("RemoteStopTransaction", False, {"transactionId": 42}),
    ("RemoteStopTransaction", True, {"status": "Rejected"}),
    ("ReserveNow", False, {"connectorId": 1, "expiryDate": T, "idTag": "TAG1",
                           "parentIdTag": "PARENT", "reservationId": 9}),
    ("ReserveNow", True, {"status": "Occupied"}),
    ("Reset", False, {"type": "Soft"}),
    ("Reset", True, {"status": "Accepted"}),
    ("SendLocalList", False, {
        "listVersion": 2, "updateType": "Differential",
        "localAuthorizationList": [
            {"idTag": "TAG1", "idTagInfo": {"status": "Blocked"}},
            {"idTag": "TAG2"}]}),
    ("SendLocalList", True, {"status": "VersionMismatch"}),
    ("SetChargingProfile", False, {"connectorId": 1, "csChargingProfiles": PROFILE}),
    ("SetChargingProfile", True, {"status": "NotSupported"}),
    ("StartTransaction", False, {"connectorId": 1, "idTag": "TAG1", "meterStart": 0,
                                 "timestamp": T, "reservationId": 9}),
    ("StartTransaction", True, {"idTagInfo": {"status": "ConcurrentTx"},
                                "transactionId": -1}),
    ("StatusNotification", False, {"connectorId": 1, "errorCode": "NoError",
                                   "status": "SuspendedEVSE", "info": "x",
                                   "timestamp": T, "vendorId": "v",
                                   "vendorErrorCode": "E1"}),
    ("StatusNotification", True, {}),
    ("StopTransaction", False, {
        "transactionId": 42, "meterStop": 12345, "timestamp": T, "idTag": "TAG1",
        "reason": "EVDisconnected",
        "transactionData": [{"timestamp": T, "sampledValue": SAMPLED}]}),
    ("StopTransaction", True, {"idTagInfo": {"status": "Invalid"}}),
    ("TriggerMessage", False, {"requestedMessage": "MeterValues", "connectorId": 1}),
    ("TriggerMessage", True, {"status": "NotImplemented"}),
    ("UnlockConnector", False, {"connectorId": 1}),
    ("UnlockConnector", True, {"status": "NotSupported"}),
    ("UpdateFirmware", False, {"location": "https://fw.example.com/fw-1.2.bin",
                               "retrieveDate": T, "retries": 2, "retryInterval": 30}),
    ("UpdateFirmware", True, {}),
]

ACTIONS = (
    "Authorize", "BootNotification", "CancelReservation", "ChangeAvailability",
    "ChangeConfiguration", "ClearCache", "ClearChargingProfile", "DataTransfer",
    "DiagnosticsStatusNotification", "FirmwareStatusNotification",
    "GetCompositeSchedule", "GetConfiguration", "GetDiagnostics",
    "GetLocalListVersion", "Heartbeat", "MeterValues", "RemoteStartTransaction",
    "RemoteStopTransaction", "ReserveNow", "Reset", "SendLocalList",
    "SetChargingProfile", "StartTransaction", "StatusNotification",
    "StopTransaction", "TriggerMessage", "UnlockConnector", "UpdateFirmware",
)
# The security whitepaper's extension (sampled by test_schema_fresh.py).
SECURITY = (
    "CertificateSigned", "DeleteCertificate", "ExtendedTriggerMessage",
    "GetInstalledCertificateIds", "GetLog", "InstallCertificate",
    "LogStatusNotification", "SecurityEventNotification", "SignCertificate",
    "SignedFirmwareStatusNotification", "SignedUpdateFirmware",
)


def _code(action, payload, resp=False):
    r = validate.check(action, resp, payload)
    return r and r[0]


def _expect(action, payload, code, path=None, resp=False):
    r = validate.check(action, resp, payload)
    assert r is not None and r[0] == code, (action, payload, r)
    assert isinstance(r[1], str) and r[1]
    if path is not None:
        assert r[1].startswith(path + ": "), r
    return r


def _copy(x):
    # deep copy of JSON-like data (no copy module on the board)
    if isinstance(x, dict):
        return {k: _copy(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_copy(v) for v in x]
    return x


def _sample(action, resp=False):
    for a, r, p in SAMPLES:
        if a == action and r == resp:
            return _copy(p)
    raise KeyError(action)


def test_lazy_table():
    # The index is read at the first check and its module let go: the index
    # (a dict) stays, the rest of the table is read from schema.bin.
    assert validate._tab is None
    assert validate.check("Heartbeat", False, {}) is None
    assert validate._tab is not None
    assert "mpocpp.protocol.schema" not in sys.modules


def test_known():
    for a in ACTIONS + SECURITY:
        assert validate.known(a), a
    for a in ("authorize", "Foo", "", "GetVariables", "getLog", None, 5, ["x"]):
        assert not validate.known(a), a
    assert len(validate._table()) == 39


def test_unknown_action():
    assert validate.check("Foo", False, {})[0] == "NotImplemented"
    assert validate.check(None, False, {})[0] == "NotImplemented"
    assert validate.check(["Reset"], False, {})[0] == "NotImplemented"


def test_all_samples_valid():
    seen = set()
    for action, resp, payload in SAMPLES:
        r = validate.check(action, resp, payload)
        assert r is None, (action, resp, r)
        seen.add((action, resp))
    assert len(seen) == 56 == len(SAMPLES)
    for a in ACTIONS:
        assert (a, False) in seen and (a, True) in seen, a


def test_formation_violation():
    for bad in (None, [], [1], "x", 1, 1.5, True):
        r = validate.check("Heartbeat", False, bad)
        assert r == (FORM, "payload: object expected"), (bad, r)
        assert _code("Reset", bad, True) == FORM


def test_protocol_error_missing_required():
    r = _expect("ChangeAvailability", {"connectorId": 1}, PROTO, "type")
    assert r == (PROTO, "type: required")
    p = _sample("SendLocalList")
    del p["localAuthorizationList"][1]["idTag"]
    _expect("SendLocalList", p, PROTO, "localAuthorizationList[1].idTag")
    _expect("Authorize", {"idTagInfo": {}}, PROTO, "idTagInfo.status", resp=True)
    _expect("BootNotification", {"status": "Accepted", "interval": 1}, PROTO,
            "currentTime", resp=True)
    p = _sample("SetChargingProfile")
    del p["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
    _expect("SetChargingProfile", p, PROTO,
            "csChargingProfiles.chargingSchedule.chargingSchedulePeriod[0].limit")
    p = _sample("MeterValues")
    del p["meterValue"][0]["sampledValue"][1]["value"]
    _expect("MeterValues", p, PROTO, "meterValue[0].sampledValue[1].value")
    # a missing field wins over a bad one at the same level
    _expect("ChangeAvailability", {"connectorId": "x"}, PROTO, "type")


def test_type_constraint():
    r = _expect("ChangeConfiguration", {"key": "HeartbeatInterval", "value": 60},
                TYPE, "value")
    assert r == (TYPE, "value: string expected")
    for bad in ("1", 1.5, 1.0, True, None, [1], {"a": 1}):
        r = _expect("UnlockConnector", {"connectorId": bad}, TYPE, "connectorId")
        assert r[1] == "connectorId: integer expected"
    assert _code("UnlockConnector", {"connectorId": 2 ** 70}) is None  # big int is int
    # number accepts int and float, not bool or str
    p = _sample("SetChargingProfile")
    per = p["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"]
    for ok in (0, 16, 6.1, -1.5):  # multipleOf 0.1 is not enforced (decision)
        per[0]["limit"] = ok
        assert _code("SetChargingProfile", p) is None, ok
    for bad in (True, "16", None):
        per[0]["limit"] = bad
        r = _expect("SetChargingProfile", p, TYPE,
                    "csChargingProfiles.chargingSchedule.chargingSchedulePeriod[0].limit")
        assert r[1].endswith("number expected")
    p = _sample("GetConfiguration", True)
    p["configurationKey"][1]["readonly"] = "false"
    _expect("GetConfiguration", p, TYPE, "configurationKey[1].readonly", resp=True)
    p["configurationKey"][1]["readonly"] = 0
    _expect("GetConfiguration", p, TYPE, "configurationKey[1].readonly", resp=True)
    _expect("Authorize", {"idTagInfo": "Accepted"}, TYPE, "idTagInfo", resp=True)
    _expect("Authorize", {"idTagInfo": ["Accepted"]}, TYPE, "idTagInfo", resp=True)
    _expect("MeterValues", {"connectorId": 1, "meterValue": {}}, TYPE, "meterValue")
    _expect("GetConfiguration", {"key": "HeartbeatInterval"}, TYPE, "key")
    _expect("GetConfiguration", {"key": ["a", 1]}, TYPE, "key[1]")
    _expect("Authorize", {"idTag": 1234}, TYPE, "idTag")
    _expect("Reset", {"type": None}, TYPE, "type")


def test_property_constraint():
    r = _expect("Reset", {"type": "Medium"}, PROP, "type")
    assert r == (PROP, "type: value not allowed")
    _expect("Reset", {"type": "hard"}, PROP, "type")  # enums are case-sensitive
    _expect("GetCompositeSchedule", {"connectorId": 1, "duration": 60,
                                     "chargingRateUnit": "X"}, PROP, "chargingRateUnit")
    p = _sample("MeterValues")
    p["meterValue"][0]["sampledValue"][0]["measurand"] = "Energy.Active.Import"
    _expect("MeterValues", p, PROP, "meterValue[0].sampledValue[0].measurand")
    p = _sample("SetChargingProfile")
    p["csChargingProfiles"]["chargingProfilePurpose"] = "TxDefault"
    _expect("SetChargingProfile", p, PROP, "csChargingProfiles.chargingProfilePurpose")
    # maxLength counts characters, not bytes
    assert _code("Authorize", {"idTag": "A" * 20}) is None
    assert _code("Authorize", {"idTag": "\u00e9" * 20}) is None
    r = _expect("Authorize", {"idTag": "A" * 21}, PROP, "idTag")
    assert r == (PROP, "idTag: longer than 20")
    _expect("Authorize", {"idTag": "\u00e9" * 21}, PROP, "idTag")
    _expect("ChangeConfiguration", {"key": "k", "value": "v" * 501}, PROP, "value")
    _expect("GetConfiguration", {"key": ["ok", "k" * 51]}, PROP, "key[1]")


def test_date_time_and_uri():
    for bad in ("", "now", "2026-11-21", "2026-13-01T00:00:00Z",
                "2026-11-21T19:29:20+0100", "2026-11-21T25:00:00Z"):
        r = _expect("Heartbeat", {"currentTime": bad}, PROP, "currentTime", resp=True)
        assert r[1] == "currentTime: bad date-time"
    for ok in (T, "2026-11-21T19:29:20.5+01:00", "2026-11-21T19:29:20"):
        assert _code("Heartbeat", {"currentTime": ok}, True) is None, ok
    _expect("Heartbeat", {"currentTime": 1795289360}, TYPE, "currentTime", resp=True)
    p = _sample("StopTransaction")
    p["transactionData"][0]["timestamp"] = "yesterday"
    _expect("StopTransaction", p, PROP, "transactionData[0].timestamp")
    for ok in ("ftp://h/p", "https://fw.example.com/a.bin?x=1", "sftp://h/f",
               "file:/tmp/x", "urn:isbn:0451450523"):
        assert _code("GetDiagnostics", {"location": ok}) is None, ok
    for bad in ("", "fw.bin", "://h", "1ftp://h", "http://h/a b", "ht tp://h",
                "http:", "http://h/\n"):
        r = _expect("UpdateFirmware", {"location": bad, "retrieveDate": T}, PROP,
                    "location")
        assert r[1] == "location: bad uri"


def test_occurence_constraint():
    r = _expect("MeterValues", {"connectorId": 1, "meterValue": []}, OCC, "meterValue")
    assert r == (OCC, "meterValue: at least 1 item(s)")
    _expect("MeterValues", {"connectorId": 1,
                            "meterValue": [{"timestamp": T, "sampledValue": []}]},
            OCC, "meterValue[0].sampledValue")
    # minItems absent in StopTransaction.transactionData[].sampledValue
    assert _code("StopTransaction", {"transactionId": 1, "meterStop": 0, "timestamp": T,
                                     "transactionData": [{"timestamp": T,
                                                          "sampledValue": []}]}) is None
    assert _code("GetConfiguration", {"key": []}) is None


def test_ranges_and_max_items():
    # The 1.6 core schemas have no minimum/maximum/maxItems: exercise the
    # generic paths with hand-made nodes in the encoding of gen_schema.py.
    validate._table()
    saved = validate._buf
    validate._loaded = -1  # the next check reads its blob again
    validate._buf = (
        b"\x03\x00\x00\x00\x00\x0a\x00\x00\x00"  # 0: range 0..10
        b"\x02\x00\x00\x00\x00\x02\x00\x00\x00"  # 9: range ..2
        b"\x01\xfb\xff\xff\xff\x00\x00\x00\x00"  # 18: range -5..
        b"\x01\x02\x00\x40\x05\x00")  # 27: 1..2 strings of at most 5 characters
    try:
        v = validate._value
        assert v(65, 0, 0) is None and v(65, 0, 10) is None
        assert v(65, 0, -1) == (PROP, "", "below 0")
        assert v(65, 0, 11) == (PROP, "", "above 10")
        assert v(66, 9, 2.6)[0] == PROP
        assert v(66, 9, -1e9) is None
        assert v(65, 18, -5) is None and v(65, 18, 2 ** 40) is None
        assert v(65, 18, -6) == (PROP, "", "below -5")
        assert v(1, 0, -6) is None  # no range flag: unbounded
        assert v(5, 27, ["a"]) is None and v(5, 27, ["a", "b"]) is None
        assert v(5, 27, []) == (OCC, "", "at least 1 item(s)")
        assert v(5, 27, ["a", "b", "c"]) == (OCC, "", "at most 2 item(s)")
        assert v(5, 27, ["a", "toolong"])[0] == PROP
    finally:
        validate._buf = saved


def test_unknown_fields_ignored():
    assert _code("Heartbeat", {"extra": 1}) is None
    assert _code("Reset", {"type": "Hard", "when": "now", "nested": {"a": [1]}}) is None
    p = _sample("MeterValues")
    p["meterValue"][0]["sampledValue"][0]["signature"] = {"x": 1}
    assert _code("MeterValues", p) is None


def test_deep_garbage_not_descended():
    deep = []
    for _ in range(300):
        deep = [deep]
    assert _code("Reset", {"type": "Soft", "junk": deep}) is None
    # (2,000 characters: a longer block may not be had in the 32-bit port's
    # 64 KiB heap, the validator and this module compiled from source.)
    assert _code("DataTransfer", {"vendorId": "v", "data": "[" * 2000}) is None
    assert _code("DataTransfer", {"vendorId": "v", "data": {"x": deep}}) == TYPE


def test_valid_check_allocates_nothing():
    # Hot path: no heap use for payloads without date-times.
    ok = ((False, "StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                         "status": "Charging"}),
          (True, "GetConfiguration", _sample("GetConfiguration", True)),
          (False, "SendLocalList", _sample("SendLocalList")),
          (False, "ChangeConfiguration", {"key": "k", "value": "v"}))
    # The message's blob is read from flash when the action changes (a file
    # opened); checks of the same message after that allocate nothing.
    for resp, a, p in ok:
        assert validate.check(a, resp, p) is None
        gc.collect()
        micropython.heap_lock()
        try:
            r = validate.check(a, resp, p)
        finally:
            micropython.heap_unlock()
        assert r is None, (a, r)


def test_table_ram():
    # The index and one message's blob stay; the tables are in flash.
    validate.modules.release("mpocpp.protocol.validate")
    from mpocpp.protocol import validate as fresh
    gc.collect()
    before = gc.mem_alloc()
    assert fresh.check("StopTransaction", False, {"transactionId": 1, "meterStop": 2,
                                                  "timestamp": T}) is None
    gc.collect()
    used = gc.mem_alloc() - before
    print("the index and the buffer:", used, "bytes of heap")
    # 4 KiB on the 64-bit port from source (the index module compiled, its
    # names interned); the whole table took 5.5 KB on 32-bit from a .mpy.
    assert used < 6 * 1024, used


def test_unreadable_schema_is_an_internal_error():
    validate._table()
    saved = validate._path
    validate._path = lambda: "/nonexistent/schema.bin"
    validate._loaded = -1
    try:
        assert validate.check("Heartbeat", False, {}) == ("InternalError",
                                                          "payload schema unreadable")
    finally:
        validate._path = saved
    assert validate.check("Heartbeat", False, {}) is None


def test_many_checks_in_small_heap():
    # Repeated checks (including error paths) must not leak in a 64 KiB heap.
    for _ in range(50):
        for action, resp, payload in SAMPLES:
            assert validate.check(action, resp, payload) is None
        assert validate.check("Reset", False, {"type": "Medium"})[0] == PROP
    gc.collect()
    assert gc.mem_free() > 16 * 1024
