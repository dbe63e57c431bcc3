# Configuration store (mpocpp/model/config.py): ChangeConfiguration and
# GetConfiguration rules, persistence, provisioning, crash safety.
import gc
import json
import os

import micropython

from mpocpp.model import keys as config_keys
from mpocpp.util import modules
from mpocpp.util import fsutil
from mpocpp.util import log
from mpocpp.model.config import Config

modules.keep.add("mpocpp.model.keys")  # the tests patch and inspect it

_KEY40 = "00112233445566778899aabbccddeeff00112233"
_KEY32 = "0123456789ABCDEF0123456789abcdef"
_PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"

# Read-only keys per checklist §3 (AuthorizationKey is W: readonly false).
_READONLY = (
    "ConnectorPhaseRotationMaxLength", "GetConfigurationMaxKeys",
    "MeterValuesAlignedDataMaxLength", "MeterValuesSampledDataMaxLength",
    "NumberOfConnectors", "StopTransactionMaxMeterValues",
    "StopTxnAlignedDataMaxLength", "StopTxnSampledDataMaxLength",
    "SupportedFeatureProfiles", "SupportedFeatureProfilesMaxLength",
    "LocalAuthListMaxLength", "SendLocalListMaxLength",
    "ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit",
    "ChargingScheduleMaxPeriods", "MaxChargingProfilesInstalled",
    "SupportedFileTransferProtocols", "AdditionalRootCertificateCheck",
    "ReserveConnectorZeroSupported",
    "CertificateSignedMaxChainSize", "CertificateStoreMaxLength")

_RW = (
    "AllowOfflineTxForUnknownId", "AuthorizationCacheEnabled",
    "AuthorizeRemoteTxRequests", "ClockAlignedDataInterval", "ConnectionTimeOut",
    "ConnectorPhaseRotation", "HeartbeatInterval", "LightIntensity",
    "LocalAuthorizeOffline", "LocalPreAuthorize", "MessageTimeout",
    "MeterValuesAlignedData", "MeterValuesSampledData", "MeterValueSampleInterval",
    "MinimumStatusDuration", "ResetRetries", "StopTransactionOnEVSideDisconnect",
    "StopTransactionOnInvalidId", "StopTxnAlignedData", "StopTxnSampledData",
    "TransactionMessageAttempts", "TransactionMessageRetryInterval",
    "UnlockConnectorOnEVSideDisconnect", "WebSocketPingInterval",
    "LocalAuthListEnabled", "SecurityProfile", "FreeCharging", "FreeChargingIdTag",
    "LockCablePermanently", "AuthorisationTimeout", "CpoName",
    "PowerActiveImportDeltaForEagerMeterValueSample",
    "UseAuthorizationKeyWithoutDecoding")

_ABSENT = ("BlinkRepeat", "MaxEnergyOnInvalidId",
           "ConnectorSwitch3to1PhaseSupported", "Testing")

_LIMITS = {"NumberOfConnectors": 2, "LocalAuthListMaxLength": 1024,
           "SendLocalListMaxLength": 255, "ChargeProfileMaxStackLevel": 8,
           "ChargingScheduleMaxPeriods": 24, "MaxChargingProfilesInstalled": 10,
           "ConnectorPhaseRotationMaxLength": 3}


def _rmtree(p):
    try:
        names = os.listdir(p)
    except OSError:
        return
    for n in names:
        q = p + "/" + n
        try:
            os.remove(q)
        except OSError:
            _rmtree(q)
    os.rmdir(p)


def _tmpdir():
    d = "/tmp/mpt_config_" + "".join("%02x" % b for b in os.urandom(6))
    _rmtree(d)
    return d


def _new(d=None, limits=None, prov=None):
    c = Config(d or _tmpdir(), limits)
    c.load(prov)
    return c


def _stored(c):
    return json.loads(fsutil.read(c.dir + "/config.json"))


class _Lines:
    def __init__(self):
        self.lines = []

    def __call__(self, line):
        self.lines.append(line)


def test_table_defaults():
    c = _new()
    names = [r[0] for r in config_keys.KEYS]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(list(_READONLY) + list(_RW) + ["AuthorizationKey"])
    for row in config_keys.KEYS:
        t = row[1] & config_keys.TYPE
        assert len(row) == (5 if t == config_keys.INT else 3), row
        if row[0] not in ("AuthorizationKey", "GetConfigurationMaxKeys"):
            assert config_keys._parse(c, row, row[2]) == row[2], row  # defaults are valid
    want = {
        "MeterValueSampleInterval": 180, "ConnectionTimeOut": 30, "HeartbeatInterval": 240,
        "WebSocketPingInterval": 0, "TransactionMessageAttempts": 3,
        "TransactionMessageRetryInterval": 60, "MessageTimeout": 30,
        "StopTransactionMaxMeterValues": 50, "ClockAlignedDataInterval": 0,
        "SupportedFeatureProfiles": "Core,FirmwareManagement,LocalAuthListManagement,"
                                    "Reservation,SmartCharging,RemoteTrigger",
        "SupportedFileTransferProtocols": "FTP,HTTP,HTTPS",
        "ChargingScheduleAllowedChargingRateUnit": "Current,Power",
        "MeterValuesSampledData": "Energy.Active.Import.Register,Current.Import,"
                                  "Current.Offered,Power.Active.Import",
        "MeterValuesSampledDataMaxLength": 8, "StopTxnSampledDataMaxLength": 8,
        "MeterValuesAlignedDataMaxLength": 8, "StopTxnAlignedDataMaxLength": 8,
        "StopTxnSampledData": "", "NumberOfConnectors": 1, "SecurityProfile": 0,
        "FreeCharging": False, "FreeChargingIdTag": "FFFFFFFF", "LockCablePermanently": False,
        "AuthorisationTimeout": 120, "UseAuthorizationKeyWithoutDecoding": False,
        "StopTransactionOnEVSideDisconnect": True, "AuthorizeRemoteTxRequests": True,
        "LocalAuthorizeOffline": True, "LocalPreAuthorize": False,
        "LocalAuthListMaxLength": 1024, "SendLocalListMaxLength": 255,
        "ChargeProfileMaxStackLevel": 8, "ChargingScheduleMaxPeriods": 24,
        "MaxChargingProfilesInstalled": 10, "AdditionalRootCertificateCheck": False,
        "PowerActiveImportDeltaForEagerMeterValueSample": 0, "LightIntensity": 100,
        "ReserveConnectorZeroSupported": False}
    for k, v in want.items():
        assert c.get(k) == v and type(c.get(k)) is type(v), (k, c.get(k))
    assert c.max_keys() >= len(names)
    assert c.get("AuthorizationKey") == "" and c.auth_password() is None
    for k in _ABSENT:
        assert c.change(k, "1") == "NotSupported", k
        try:
            c.get(k)
        except KeyError:
            continue
        raise AssertionError(k)
    assert not fsutil.exists(c.dir + "/config.json")  # nothing to store yet


def test_names_case_insensitive():
    c = _new()
    assert c.get("connectiontimeout") == 30
    assert c.change("ConnectionTimeout", "45") == "Accepted"
    assert c.get("ConnectionTimeOut") == 45
    known, unknown = c.get_configuration(["CONNECTIONTIMEOUT", "heartbeatInterval", "Foo"])
    assert [e["key"] for e in known] == ["ConnectionTimeOut", "HeartbeatInterval"]
    assert unknown == ["Foo"]
    assert c.change("X" * 51, "1") == "NotSupported"
    assert c.change(None, "1") == "NotSupported"
    for bad in ("Foo", None, 7):
        try:
            c.get(bad)
        except KeyError:
            continue
        raise AssertionError(bad)


def test_change_formats_and_ranges():
    c = _new()
    cases = (
        ("HeartbeatInterval", "60", "Accepted", 60),
        ("HeartbeatInterval", "abc", "Rejected", 60),
        ("HeartbeatInterval", "1.5", "Rejected", 60),
        ("HeartbeatInterval", "+5", "Rejected", 60),
        ("HeartbeatInterval", " 5", "Rejected", 60),
        ("HeartbeatInterval", "1_0", "Rejected", 60),
        ("HeartbeatInterval", "", "Rejected", 60),
        ("HeartbeatInterval", "-1", "Rejected", 60),
        ("HeartbeatInterval", "4294968", "Rejected", 60),
        ("HeartbeatInterval", "4294967", "Accepted", 4294967),
        ("HeartbeatInterval", "0", "Accepted", 0),
        ("MeterValueSampleInterval", "0", "Accepted", 0),
        ("ClockAlignedDataInterval", "900", "Accepted", 900),
        ("WebSocketPingInterval", "-5", "Rejected", 0),
        ("WebSocketPingInterval", "10", "Accepted", 10),
        ("WebSocketPingInterval", "0", "Accepted", 0),
        ("MessageTimeout", "0", "Rejected", 30),
        ("MessageTimeout", "5", "Accepted", 5),
        ("LightIntensity", "101", "Rejected", 100),
        ("LightIntensity", "0", "Accepted", 0),
        ("LocalPreAuthorize", "TRUE", "Accepted", True),
        ("LocalPreAuthorize", "False", "Accepted", False),
        ("LocalPreAuthorize", "yes", "Rejected", False),
        ("LocalPreAuthorize", "1", "Rejected", False),
        ("LocalPreAuthorize", " true", "Rejected", False),
        ("AllowOfflineTxForUnknownId", "true", "Accepted", True),
        ("FreeCharging", "true", "Accepted", True),
    )
    for key, val, status, after in cases:
        assert c.change(key, val) == status, (key, val)
        assert c.get(key) == after and type(c.get(key)) is type(after), (key, val, c.get(key))
    # not a string (a TypeConstraintViolation upstream) and over 500 chars
    assert c.change("HeartbeatInterval", 60) == "Rejected"
    assert c.change("FreeChargingIdTag", "A" * 501) == "Rejected"
    assert c.get("FreeChargingIdTag") == "FFFFFFFF"


def test_read_only_keys_rejected():
    c = _new(limits=_LIMITS)
    for k in _READONLY:
        before = c.get(k)
        assert c.change(k, "3") == "Rejected", k
        assert c.get(k) == before, k
    assert c.get("NumberOfConnectors") == 2


def test_measurand_lists():
    c = _new()
    for key in ("MeterValuesSampledData", "MeterValuesAlignedData",
                "StopTxnSampledData", "StopTxnAlignedData"):
        assert c.change(key, " Energy.Active.Import.Register , Voltage") == "Accepted", key
        assert c.get(key) == "Energy.Active.Import.Register,Voltage"
        for bad in ("RPM", "Energy.Active.Import.Register,RPM", "Energy", "voltage",
                    "Voltage,,Temperature", ",", "Frequency"):
            assert c.change(key, bad) == "Rejected", (key, bad)
            assert c.get(key) == "Energy.Active.Import.Register,Voltage"
        all8 = ",".join(config_keys.MEASURANDS)
        assert c.change(key, all8) == "Accepted"
        assert c.change(key, all8 + ",Voltage") == "Rejected"  # 9 > MaxLength 8
        assert c.get(key) == all8
        assert c.change(key, "") == "Accepted"
        assert c.get(key) == ""
    # MaxLength from the board applies
    c2 = _new(limits={"StopTxnSampledDataMaxLength": 1})
    assert c2.change("StopTxnSampledData", "Voltage,Temperature") == "Rejected"
    assert c2.change("StopTxnSampledData", "Voltage") == "Accepted"


def test_phase_rotation():
    c = _new(limits=_LIMITS)
    assert c.get("ConnectorPhaseRotation") == "1.RST"
    assert c.change("ConnectorPhaseRotation", "0.RST, 1.RTS,2.NotApplicable") == "Accepted"
    assert c.get("ConnectorPhaseRotation") == "0.RST,1.RTS,2.NotApplicable"
    for bad in ("1.XYZ", "3.RST", "1.RST,1.RTS", "RST", "1RST", "-1.RST", "a.RST", "",
                "0.RST,1.RST,2.RST,1.Unknown", "1.rst"):
        assert c.change("ConnectorPhaseRotation", bad) == "Rejected", bad
    assert c.get("ConnectorPhaseRotation") == "0.RST,1.RTS,2.NotApplicable"
    for r in config_keys.ROTATIONS:
        assert c.change("ConnectorPhaseRotation", "1." + r) == "Accepted", r


def test_stop_on_ev_side_disconnect_only_true():
    c = _new()
    assert c.change("StopTransactionOnEVSideDisconnect", "false") == "Rejected"
    assert c.get("StopTransactionOnEVSideDisconnect") is True
    assert c.change("StopTransactionOnEVSideDisconnect", "true") == "Accepted"


def _entry(c, key):
    known, unknown = c.get_configuration([key])
    assert not unknown and len(known) == 1
    return known[0]


def test_lock_cable_permanently():
    d = _tmpdir()
    c = _new(d)
    assert c.change("UnlockConnectorOnEVSideDisconnect", "false") == "Accepted"
    assert c.change("UnlockConnectorOnEVSideDisconnect", "true") == "Accepted"
    assert c.change("LockCablePermanently", "true") == "Accepted"
    e = _entry(c, "UnlockConnectorOnEVSideDisconnect")
    assert e == {"key": "UnlockConnectorOnEVSideDisconnect", "readonly": True, "value": "false"}
    assert c.get("UnlockConnectorOnEVSideDisconnect") is False
    assert c.change("UnlockConnectorOnEVSideDisconnect", "true") == "Rejected"
    assert c.change("UnlockConnectorOnEVSideDisconnect", "false") == "Rejected"
    # survives a restart
    c = _new(d)
    assert _entry(c, "UnlockConnectorOnEVSideDisconnect")["readonly"] is True
    assert c.change("LockCablePermanently", "false") == "Accepted"
    e = _entry(c, "UnlockConnectorOnEVSideDisconnect")
    assert e == {"key": "UnlockConnectorOnEVSideDisconnect", "readonly": False, "value": "true"}
    assert c.change("UnlockConnectorOnEVSideDisconnect", "false") == "Accepted"


def test_free_charging_idtag():
    c = _new()
    assert c.change("FreeChargingIdTag", "A" * 20) == "Accepted"
    assert c.change("FreeChargingIdTag", "B" * 21) == "Rejected"
    assert c.change("FreeChargingIdTag", "") == "Rejected"
    assert c.get("FreeChargingIdTag") == "A" * 20


def test_authorization_key():
    sink = _Lines()
    log.sink = sink
    try:
        d = _tmpdir()
        c = _new(d)
        assert c.change("AuthorizationKey", _KEY40) == "Accepted"
        assert c.auth_password() == bytes(range(0, 0x100, 0x11)) + bytes(range(0, 0x34, 0x11))
        for bad in ("0011", "00112233445566778899aabbccddeeff0",  # short, odd
                    "00112233445566778899aabbccddeeff0011223344",  # 42
                    "zz112233445566778899aabbccddeeff", "",
                    "this is not a hex key at all!!!!"):
            assert c.change("AuthorizationKey", bad) == "Rejected", bad
            assert c.get("AuthorizationKey") == _KEY40  # old key stays
        assert c.change("authorizationkey", _KEY32) == "Accepted"
        assert c.auth_password() == bytes([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef] * 2)
        # GetConfiguration never returns a value, also not among all keys
        assert _entry(c, "AuthorizationKey") == {"key": "AuthorizationKey", "readonly": False}
        for e in c.get_configuration()[0]:
            if e["key"] == "AuthorizationKey":
                assert "value" not in e
            else:
                assert isinstance(e["value"], str) and len(e["value"]) <= 500
        # literal keys
        assert c.change("UseAuthorizationKeyWithoutDecoding", "true") == "Accepted"
        assert c.change("AuthorizationKey", "my secret pass 16") == "Accepted"
        assert c.auth_password() == b"my secret pass 16"
        for bad in ("short", "x" * 41, "tab\there is sixteen", "\u00e9" * 16):
            assert c.change("AuthorizationKey", bad) == "Rejected", bad
        assert c.auth_password() == b"my secret pass 16"
        # persisted, and loads back even in either decoding mode
        c = _new(d)
        assert c.auth_password() == b"my secret pass 16"
        for line in sink.lines:
            for secret in (_KEY40, _KEY32, "my secret pass 16", "this is not a hex"):
                assert secret not in line, line
    finally:
        log.sink = None


def test_security_profile():
    d = _tmpdir()
    c = _new(d)
    assert c.change("SecurityProfile", "0") == "Rejected"  # equal
    assert c.change("SecurityProfile", "1") == "Rejected"  # no AuthorizationKey yet
    assert c.change("SecurityProfile", "3") == "Rejected"
    assert c.change("SecurityProfile", "4") == "Rejected"
    assert c.change("SecurityProfile", "-1") == "Rejected"
    assert c.change("AuthorizationKey", _KEY40) == "Accepted"
    assert c.change("SecurityProfile", "1") == "Accepted"
    assert c.previous_security == 0
    assert c.change("SecurityProfile", "1") == "Rejected"
    assert c.change("SecurityProfile", "0") == "Rejected"  # never decreases
    assert c.change("SecurityProfile", "2") == "Rejected"  # no CA
    c.settings["caCert"] = _PEM
    c.settings["csmsUrl"] = "http://127.0.0.1:9000/ocpp"
    assert c.change("SecurityProfile", "2") == "Rejected"  # not a WebSocket URL
    # ws:// is fine: the link connects with wss:// (same host, port, path)
    c.settings["csmsUrl"] = "ws://127.0.0.1:9000/ocpp"
    assert c.change("SecurityProfile", "2") == "Accepted"
    assert c.fallback_security()
    c.settings["csmsUrl"] = "wss://csms.example:443/ocpp"
    assert c.save()
    assert c.change("SecurityProfile", "2") == "Accepted"
    assert c.get("SecurityProfile") == 2 and c.previous_security == 1
    assert c.change("SecurityProfile", "3") == "Rejected"
    # the link could not connect: back to the previous profile, persisted
    assert c.fallback_security(1)
    assert c.get("SecurityProfile") == 1
    c = _new(d)
    assert c.get("SecurityProfile") == 1
    assert c.settings["caCert"] == _PEM and c.settings["csmsUrl"].startswith("wss://")
    assert not c.fallback_security()  # nothing to fall back to
    assert c.change("SecurityProfile", "2") == "Accepted"
    assert c.fallback_security()  # previous remembered
    assert c.get("SecurityProfile") == 1


def test_round_trip_and_minimal_file():
    d = _tmpdir()
    c = _new(d, limits=_LIMITS)
    assert c.change("HeartbeatInterval", "60") == "Accepted"
    assert c.change("StopTxnSampledData", "Energy.Active.Import.Register") == "Accepted"
    assert c.change("LocalPreAuthorize", "true") == "Accepted"
    assert c.change("FreeChargingIdTag", "FREE1") == "Accepted"
    assert c.change("MeterValueSampleInterval", "180") == "Accepted"  # = default
    assert c.set("StopTransactionMaxMeterValues", 5)  # internal write of a R key
    doc = _stored(c)
    assert doc["keys"] == {"HeartbeatInterval": 60, "LocalPreAuthorize": True,
                           "StopTxnSampledData": "Energy.Active.Import.Register",
                           "FreeChargingIdTag": "FREE1", "StopTransactionMaxMeterValues": 5}
    c2 = _new(d, limits=_LIMITS)
    for k in ("HeartbeatInterval", "StopTxnSampledData", "LocalPreAuthorize",
              "FreeChargingIdTag", "StopTransactionMaxMeterValues", "NumberOfConnectors"):
        assert c2.get(k) == c.get(k), k
    assert c2.get_configuration() == c.get_configuration()
    # back to the default: dropped from the file
    assert c2.change("HeartbeatInterval", "240") == "Accepted"
    assert "HeartbeatInterval" not in _stored(c2)["keys"]


def test_set_internal():
    c = _new()
    assert c.set("heartbeatinterval", 300) and c.get("HeartbeatInterval") == 300
    assert c.set("HeartbeatInterval", "30") and c.get("HeartbeatInterval") == 30
    assert c.set("NumberOfConnectors", 2) and c.get("NumberOfConnectors") == 2
    assert c.set("FreeCharging", True) and c.get("FreeCharging") is True
    assert c.set("StopTransactionOnEVSideDisconnect", False)  # no policy checks
    assert not c.set("HeartbeatInterval", 10 ** 9)  # out of range: unchanged
    assert not c.set("HeartbeatInterval", True)
    assert not c.set("FreeCharging", 1)
    assert c.get("HeartbeatInterval") == 30
    try:
        c.set("Nope", 1)
    except KeyError:
        pass
    else:
        raise AssertionError("KeyError expected")


def test_canonical_and_reboot_flag():
    c = _new()
    assert c.canonical("heartbeatINTERVAL") == "HeartbeatInterval"
    assert c.canonical("Nope") is None and c.canonical(5) is None
    # a key flagged REBOOT answers RebootRequired (none is today)
    saved = config_keys.KEYS
    try:
        config_keys.KEYS = (("ResetRetries", config_keys.INT | config_keys.RW
                             | config_keys.REBOOT, 1, 0, 5),) + saved[1:]
        c = _new()
        assert c.change("ResetRetries", "2") == "RebootRequired"
        assert c.get("ResetRetries") == 2
    finally:
        config_keys.KEYS = saved
    for row in saved:
        assert not row[1] & config_keys.REBOOT


def test_provisioning_only_on_new_flash():
    d = _tmpdir()
    prov = {
        "identity": {
            "chargePointVendor": "Acme",
            "chargePointModel": "Box",
            "chargePointSerialNumber": "SN1",
            "firmwareVersion": 1.2,
            "bogus": "x",
            "meterType": "M" * 30,
        },
        "keys": {
            "HeartbeatInterval": 60,
            "NumberOfConnectors": 2,
            "MeterValueSampleInterval": "30",
            "ConnectorPhaseRotation": "1.RST,2.RST",
            "LocalPreAuthorize": "true",
            "UseAuthorizationKeyWithoutDecoding": True,
            "NotAKey": 1,
            "ConnectionTimeOut": "bad",
            "MeterValuesSampledData": ["Voltage", "Current.Import"],
        },
        "security": {
            "SecurityProfile": 1,
            "AuthorizationKey": "literal-password-1",
            "caCert": _PEM,
        },
        "settings": {
            "csmsUrl": "ws://127.0.0.1:9000/ocpp",
            "chargeBoxId": "CP1",
            "reconnectMaxMs": 15000,
            "reconnectMinMs": "fast",
            "custom": [1, 2],
        },
    }
    c = Config(d, {"ConnectorPhaseRotationMaxLength": 3})
    assert c.load(prov) is True
    assert c.identity == {"chargePointVendor": "Acme", "chargePointModel": "Box",
                          "chargePointSerialNumber": "SN1", "firmwareVersion": "1.2",
                          "meterType": "M" * 25}
    assert c.get("HeartbeatInterval") == 60 and c.get("NumberOfConnectors") == 2
    assert c.get("MeterValueSampleInterval") == 30 and c.get("LocalPreAuthorize") is True
    assert c.get("ConnectorPhaseRotation") == "1.RST,2.RST"  # checked after NumberOfConnectors
    assert c.get("ConnectionTimeOut") == 30  # bad value skipped
    assert c.get("MeterValuesSampledData") == "Voltage,Current.Import"
    assert c.get("SecurityProfile") == 1 and c.auth_password() == b"literal-password-1"
    s = c.settings
    assert s["csmsUrl"] == "ws://127.0.0.1:9000/ocpp" and s["chargeBoxId"] == "CP1"
    assert s["reconnectMaxMs"] == 15000 and s["reconnectMinMs"] == 2000
    assert s["custom"] == [1, 2] and s["bootRetryS"] == 30 and s["connectTimeoutMs"] == 10000
    assert s["caCert"] == _PEM and fsutil.read(d + "/ca.crt") == _PEM.encode()
    assert "caCert" not in _stored(c)["settings"]
    # a second boot with another provisioning file keeps the flash contents
    prov2 = {"identity": {"chargePointVendor": "Other"}, "keys": {"HeartbeatInterval": 99}}
    c2 = Config(d, {"ConnectorPhaseRotationMaxLength": 3})
    assert c2.load(prov2) is False
    assert c2.identity == c.identity and c2.get("HeartbeatInterval") == 60
    assert c2.settings == c.settings
    assert c2.get_configuration() == c.get_configuration()
    assert c2.auth_password() == b"literal-password-1"


def test_provisioning_ca_from_file_and_bad_input():
    d = _tmpdir()
    fsutil.makedirs(d)
    fsutil.write_atomic(d + "/in.der", b"\x30\x82\x01\x00der")
    c = _new(d, prov={"security": {"caCert": d + "/in.der"}})
    assert c.settings["caCert"] == b"\x30\x82\x01\x00der"
    assert _new(d).settings["caCert"] == b"\x30\x82\x01\x00der"
    # a PEM file that is not text is refused, the old CA stays
    fsutil.write_atomic(d + "/bad.pem", b"-----BEGIN \xff\xfe")
    c = Config(d)
    config_keys._set_ca(c, d + "/bad.pem")
    assert c.settings["caCert"] == ""
    # limits that are not a dict
    assert Config(_tmpdir(), [1, 2]).get("NumberOfConnectors") == 1
    # provisioning that is not an object, or with wrong section types
    for p in ("nope", [1], {"keys": [1, 2], "identity": "x", "settings": 5, "security": None},
              {"security": {"caCert": "/no/such/file.pem"}}):
        c = _new(prov=p)
        assert c.get("HeartbeatInterval") == 240 and c.identity == {}
        assert c.settings["caCert"] == ""


def test_corrupt_file():
    d = _tmpdir()
    fsutil.makedirs(d)
    for junk in (b"{not json", b"[1,2]", b"", b"\xff\xfe"):
        fsutil.write_atomic(d + "/config.json", junk)
        c = _new(d)
        assert c.get("HeartbeatInterval") == 240
    fsutil.write_atomic(d + "/config.json", b"{garbage")
    c = _new(d, prov={"keys": {"HeartbeatInterval": 77}})
    assert c.get("HeartbeatInterval") == 77  # unreadable flash counts as new
    # values in a readable file that no longer pass the rules are skipped
    fsutil.write_atomic(d + "/config.json", json.dumps(
        {"v": 1, "keys": {"HeartbeatInterval": -3, "LightIntensity": 50, "Gone": 1,
                          "MeterValuesSampledData": "RPM"},
         "identity": {"chargePointVendor": 5}, "settings": {"chargeBoxId": "X"}}).encode())
    c = _new(d)
    assert c.get("HeartbeatInterval") == 240 and c.get("LightIntensity") == 50
    assert c.get("MeterValuesSampledData").startswith("Energy.Active.Import.Register")
    assert c.identity == {"chargePointVendor": "5"} and c.settings["chargeBoxId"] == "X"


class _CutOs:
    # Stands in for `os` inside fsutil: the power fails after the temporary
    # file was written, before the rename (or while writing it).
    def __init__(self, real, during_write=False):
        self.real = real
        self.during_write = during_write

    def rename(self, a, b):
        raise OSError(5)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_crash_before_rename_keeps_old_file():
    d = _tmpdir()
    c = _new(d)
    assert c.change("HeartbeatInterval", "60") == "Accepted"
    old = fsutil.read(d + "/config.json")
    real = fsutil.os
    fsutil.os = _CutOs(real)
    try:
        assert c.change("HeartbeatInterval", "90") == "Rejected"  # not persisted: not applied
        assert c.get("HeartbeatInterval") == 60
        assert not c.set("FreeCharging", True) and c.get("FreeCharging") is False
    finally:
        fsutil.os = real
    assert fsutil.read(d + "/config.json") == old
    tmp = fsutil.read(d + "/config.json.tmp")
    assert tmp is not None and b'"FreeCharging": true' in tmp  # the new file was complete
    c2 = _new(d)
    assert c2.get("HeartbeatInterval") == 60 and c2.get("FreeCharging") is False
    assert not fsutil.exists(d + "/config.json.tmp")  # leftover removed at load
    # a torn temporary file is ignored just the same
    fsutil.write_atomic(d + "/x", b"")
    with open(d + "/config.json.tmp", "wb") as f:
        f.write(b'{"v": 1, "keys": {"Heartbe')
    assert _new(d).get("HeartbeatInterval") == 60
    assert c2.change("HeartbeatInterval", "90") == "Accepted"
    assert _new(d).get("HeartbeatInterval") == 90


def test_get_configuration():
    c = _new(limits=_LIMITS)
    known, unknown = c.get_configuration()
    assert unknown == [] and len(known) == len(config_keys.KEYS) <= c.max_keys()
    byname = {}
    for e in known:
        byname[e["key"]] = e
        assert isinstance(e["readonly"], bool)
    for k in _READONLY:
        assert byname[k]["readonly"] is True, k
    for k in _RW:
        assert byname[k]["readonly"] is False, k
    assert byname["AuthorizationKey"] == {"key": "AuthorizationKey", "readonly": False}
    assert byname["NumberOfConnectors"]["value"] == "2"
    assert byname["LocalPreAuthorize"]["value"] == "false"
    assert byname["HeartbeatInterval"]["value"] == "240"
    for k in _ABSENT:
        assert k not in byname
    assert c.get_configuration([]) == c.get_configuration(None)
    known, unknown = c.get_configuration(["Foo", "HeartbeatInterval", "heartbeatinterval",
                                          "Foo", "BlinkRepeat", "AuthorizationKey"])
    assert [e["key"] for e in known] == ["HeartbeatInterval", "AuthorizationKey"]
    assert unknown == ["Foo", "BlinkRepeat"]
    known, unknown = c.get_configuration(["Foo"])
    assert known == [] and unknown == ["Foo"]


_PROFILE_KEYS = {
    "LocalAuthListManagement": ("LocalAuthListEnabled", "LocalAuthListMaxLength",
                                "SendLocalListMaxLength"),
    "SmartCharging": ("ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit",
                      "ChargingScheduleMaxPeriods", "MaxChargingProfilesInstalled"),
    "FirmwareManagement": ("SupportedFileTransferProtocols",),
}


def test_profiles_left_out_have_no_keys():
    d = _tmpdir()
    prov = {"keys": {"LocalAuthListEnabled": False, "HeartbeatInterval": 60,
                     "SupportedFeatureProfiles": " Core , Reservation,RemoteTrigger",
                     "ChargeProfileMaxStackLevel": 2}}
    c = _new(d, prov=prov)
    assert c.get("SupportedFeatureProfiles") == "Core,Reservation,RemoteTrigger"
    assert c.profiles == ("Core", "Reservation", "RemoteTrigger")
    assert c.supports("Reservation") and not c.supports("SmartCharging")
    assert c.get("HeartbeatInterval") == 60
    known, unknown = c.get_configuration()
    names = [e["key"] for e in known]
    absent = []
    for v in _PROFILE_KEYS.values():
        absent.extend(v)
    for k in absent:
        assert k not in names, k
        assert c.change(k, "true") == "NotSupported", k
    known, unknown = c.get_configuration(["localauthlistenabled", "HeartbeatInterval"])
    assert [e["key"] for e in known] == ["HeartbeatInterval"]
    assert unknown == ["localauthlistenabled"]
    # The provisioned values of absent keys were skipped; the firmware's
    # reads still get the defaults.
    assert c.get("LocalAuthListEnabled") is True and c.get("ChargeProfileMaxStackLevel") == 8
    c2 = _new(d)  # from flash
    assert c2.profiles == ("Core", "Reservation", "RemoteTrigger")
    assert c2.get_configuration(["SendLocalListMaxLength"]) == ([], ["SendLocalListMaxLength"])
    # All six (the default): every key.
    c3 = _new()
    assert len(c3.get_configuration()[0]) == len(config_keys.KEYS)
    assert c3.profiles == tuple(config_keys.PROFILES)


def test_supported_feature_profiles_checked():
    for bad in ("Reservation,SmartCharging", "Core,Foo", "Core,Core", ""):
        c = _new(prov={"keys": {"SupportedFeatureProfiles": bad}})
        assert c.profiles == tuple(config_keys.PROFILES), bad  # invalid: skipped
    c = _new(limits={"SupportedFeatureProfiles": "Core,SmartCharging"})
    assert c.profiles == ("Core", "SmartCharging")  # a board's own set
    assert c.get_configuration(["SupportedFileTransferProtocols"])[1] == \
        ["SupportedFileTransferProtocols"]
    assert c.change("SupportedFeatureProfiles", "Core") == "Rejected"  # read-only


def test_limits():
    c = _new(limits={"NumberOfConnectors": 2, "SendLocalListMaxLength": "100",
                     "GetConfigurationMaxKeys": 80, "LocalAuthListMaxLength": -1,
                     "maxCurrentA": 32, "HeartbeatInterval": 120})
    assert c.get("NumberOfConnectors") == 2 and c.get("SendLocalListMaxLength") == 100
    assert c.max_keys() == 80 and c.get("LocalAuthListMaxLength") == 1024
    assert c.get("HeartbeatInterval") == 120
    assert c.change("HeartbeatInterval", "121") == "Accepted"
    assert c.change("HeartbeatInterval", "120") == "Accepted"
    assert "HeartbeatInterval" not in _stored(c)["keys"]  # the board default is not stored


def test_memory_of_loaded_config():
    d = _tmpdir()
    prov = {
        "identity": {"chargePointVendor": "Acme", "chargePointModel": "Box"},
        "keys": {"HeartbeatInterval": 60},
        "settings": {"csmsUrl": "ws://h:1/o", "chargeBoxId": "CP1"},
    }
    _new(d, limits=_LIMITS, prov=prov)
    gc.collect()
    before = gc.mem_alloc()
    c = Config(d, _LIMITS)
    c.load()
    gc.collect()
    used = gc.mem_alloc() - before
    print("MEM loaded Config: %d bytes (64-bit unix port)" % used)
    assert used < 8000, used  # about half of that on the 32-bit boards
    assert c.get("HeartbeatInterval") == 60


def test_get_allocates_nothing_for_canonical_names():
    c = _new()
    names = [r[0] for r in config_keys.KEYS]
    for n in names:
        c.get(n)
    gc.collect()
    micropython.heap_lock()
    try:
        for n in names:
            c.get(n)
        v = c.get("HeartbeatInterval")
    finally:
        micropython.heap_unlock()
    assert v == 240
