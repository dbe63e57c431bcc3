"""SupportedFeatureProfiles is obeyed end to end (checklist, decisions): a
charger provisioned without a feature profile answers that profile's
operations as the spec says for a charge point without it (GetLocalListVersion
-1, SendLocalList NotSupported, ReserveNow Rejected, the rest a NotSupported
CALLERROR), does not report or accept the profile's keys, and never loads the
profile's code."""
import pytest
from csms_lib import CallErrorResult

from test_sessions import boot, wait_sn

ALL = ("Core", "FirmwareManagement", "LocalAuthListManagement", "Reservation",
       "SmartCharging", "RemoteTrigger")
LAL_KEYS = ("LocalAuthListEnabled", "LocalAuthListMaxLength", "SendLocalListMaxLength")
SC_KEYS = ("ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit",
           "ChargingScheduleMaxPeriods", "MaxChargingProfilesInstalled")
FW_KEYS = ("SupportedFileTransferProtocols",)
TX_PROFILE = {"chargingProfileId": 5, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
              "chargingProfileKind": "Relative",
              "chargingSchedule": {"chargingRateUnit": "A",
                                   "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6}]}}


def without(*left_out):
    return {"SupportedFeatureProfiles": ",".join(p for p in ALL if p not in left_out)}


def call(csms, action, payload):
    return csms.call("CP1", action, payload)


def callerror(csms, action, payload):
    with pytest.raises(CallErrorResult) as e:
        call(csms, action, payload)
    return e.value.code


def all_keys(csms):
    r = call(csms, "GetConfiguration", {})
    return {k["key"]: k for k in r["configurationKey"]}


def assert_keys_absent(csms, names):
    keys = all_keys(csms)
    for k in names:
        assert k not in keys, k
        assert call(csms, "ChangeConfiguration", {"key": k, "value": "1"})["status"] == \
            "NotSupported", k
    r = call(csms, "GetConfiguration", {"key": list(names) + ["HeartbeatInterval"]})
    assert [k["key"] for k in r["configurationKey"]] == ["HeartbeatInterval"]
    assert sorted(r["unknownKey"]) == sorted(names)


def test_without_local_auth_list(csms, charger_factory):
    boot(charger_factory, csms, keys=without("LocalAuthListManagement"))
    assert all_keys(csms)["SupportedFeatureProfiles"]["value"] == \
        "Core,FirmwareManagement,Reservation,SmartCharging,RemoteTrigger"
    assert call(csms, "GetLocalListVersion", {}) == {"listVersion": -1}
    r = call(csms, "SendLocalList", {
        "listVersion": 3, "updateType": "Full",
        "localAuthorizationList": [{"idTag": "LISTED", "idTagInfo": {"status": "Accepted"}}]})
    assert r == {"status": "NotSupported"}
    assert_keys_absent(csms, LAL_KEYS)
    # The profiles kept still work.
    assert call(csms, "GetCompositeSchedule", {"connectorId": 1, "duration": 60})["status"] == \
        "Accepted"


def test_core_only(csms, charger_factory):
    ch = boot(charger_factory, csms, keys={"SupportedFeatureProfiles": "Core"})
    assert all_keys(csms)["SupportedFeatureProfiles"]["value"] == "Core"
    assert call(csms, "ReserveNow", {"connectorId": 1, "expiryDate": "2099-01-01T00:00:00Z",
                                     "idTag": "R1", "reservationId": 7}) == {"status": "Rejected"}
    assert ch.connector(1)["status"] == "Available"
    for action, payload in (
            ("CancelReservation", {"reservationId": 7}),
            ("SetChargingProfile", {"connectorId": 0, "csChargingProfiles": dict(
                TX_PROFILE, chargingProfilePurpose="TxDefaultProfile")}),
            ("GetCompositeSchedule", {"connectorId": 1, "duration": 60}),
            ("ClearChargingProfile", {}),
            ("UpdateFirmware", {"location": "http://127.0.0.1:1/fw.img",
                                "retrieveDate": "2020-01-01T00:00:00Z"}),
            ("SignedUpdateFirmware", {"requestId": 1, "firmware": {
                "location": "http://127.0.0.1:1/fw.img",
                "retrieveDateTime": "2020-01-01T00:00:00Z",
                "signingCertificate": "x", "signature": "AA=="}}),
            ("GetDiagnostics", {"location": "http://127.0.0.1:1/up"}),
            ("TriggerMessage", {"requestedMessage": "Heartbeat"})):
        assert callerror(csms, action, payload) == "NotSupported", action
    assert call(csms, "GetLocalListVersion", {}) == {"listVersion": -1}
    assert_keys_absent(csms, LAL_KEYS + SC_KEYS + FW_KEYS)
    # A RemoteStart's chargingProfile is ignored (§5.11), the start goes on.
    m = csms.mark()
    r = call(csms, "RemoteStartTransaction",
             {"idTag": "REMOTE1", "connectorId": 1, "chargingProfile": TX_PROFILE})
    assert r == {"status": "Accepted"}
    ch.ok("plug_in", connector=1)
    wait_sn(csms, 1, "Charging", m)
    # No code of the profiles left out was loaded.
    mods = ch.ok("heap")["modules"]
    for name in ("mpocpp.model.smartcharging", "mpocpp.model.chargingprofiles",
                 "mpocpp.operations.smartcharging",
                 "mpocpp.operations.firmware", "mpocpp.operations.signedfirmware",
                 "mpocpp.operations.diagnostics",
                 "mpocpp.operations.reservation", "mpocpp.operations.remotetrigger",
                 "mpocpp.operations.localauth"):
        assert name not in mods, name
    assert "chargingProfile ignored" in ch.log_text()


def test_remote_trigger_without_firmware_management(csms, charger_factory):
    boot(charger_factory, csms, keys={"SupportedFeatureProfiles": "Core,RemoteTrigger"})
    for what in ("FirmwareStatusNotification", "DiagnosticsStatusNotification"):
        r = call(csms, "TriggerMessage", {"requestedMessage": what})
        assert r == {"status": "NotImplemented"}, what
    m = csms.mark()
    assert call(csms, "TriggerMessage", {"requestedMessage": "Heartbeat"}) == \
        {"status": "Accepted"}
    csms.wait_for("Heartbeat", after=m)


def test_invalid_profile_list_is_ignored(csms, charger_factory):
    # Provisioning a list without Core (or with an unknown profile) is
    # skipped: the charger keeps all six.
    ch = boot(charger_factory, csms, keys={"SupportedFeatureProfiles": "Reservation,Foo"})
    assert set(all_keys(csms)["SupportedFeatureProfiles"]["value"].split(",")) == set(ALL)
    assert "SupportedFeatureProfiles" in ch.log_text()
