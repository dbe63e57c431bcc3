"""GetConfiguration / ChangeConfiguration end to end (checklist §3,
scenarios 37-38): values survive a restart of the process."""

REQUIRED = ["AuthorizeRemoteTxRequests", "ClockAlignedDataInterval", "ConnectionTimeOut",
            "GetConfigurationMaxKeys", "HeartbeatInterval", "LocalAuthorizeOffline",
            "LocalPreAuthorize", "MeterValuesAlignedData", "MeterValuesSampledData",
            "MeterValueSampleInterval", "NumberOfConnectors", "ResetRetries",
            "ConnectorPhaseRotation", "StopTransactionOnEVSideDisconnect",
            "StopTransactionOnInvalidId", "StopTxnAlignedData", "StopTxnSampledData",
            "SupportedFeatureProfiles", "TransactionMessageAttempts",
            "TransactionMessageRetryInterval", "UnlockConnectorOnEVSideDisconnect",
            "LocalAuthListEnabled", "LocalAuthListMaxLength", "SendLocalListMaxLength",
            "ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit",
            "ChargingScheduleMaxPeriods", "MaxChargingProfilesInstalled"]
READ_ONLY = ["GetConfigurationMaxKeys", "NumberOfConnectors", "SupportedFeatureProfiles",
             "LocalAuthListMaxLength", "SendLocalListMaxLength", "ChargeProfileMaxStackLevel",
             "ChargingScheduleAllowedChargingRateUnit", "ChargingScheduleMaxPeriods",
             "MaxChargingProfilesInstalled"]


def get(csms, *keys):
    r = csms.call("CP1", "GetConfiguration", {"key": list(keys)} if keys else {})
    return {k["key"]: k for k in r["configurationKey"]}, r.get("unknownKey", [])


def change(csms, key, value):
    return csms.call("CP1", "ChangeConfiguration", {"key": key, "value": value})["status"]


def test_get_all_keys(csms, charger):
    keys, unknown = get(csms)
    assert unknown == []
    for k in REQUIRED:
        assert k in keys, k
    for k in READ_ONLY:
        assert keys[k]["readonly"] is True, k
    assert keys["HeartbeatInterval"]["readonly"] is False
    assert "value" not in keys["AuthorizationKey"]
    profiles = keys["SupportedFeatureProfiles"]["value"].split(",")
    assert set(profiles) == {"Core", "FirmwareManagement", "LocalAuthListManagement",
                             "Reservation", "SmartCharging", "RemoteTrigger"}
    assert keys["NumberOfConnectors"]["value"] == "1"


def test_unknown_key_reported(csms, charger):
    keys, unknown = get(csms, "Foo", "HeartbeatInterval")
    assert unknown == ["Foo"]
    assert list(keys) == ["HeartbeatInterval"]


def test_change_rules(csms, charger):
    assert change(csms, "HeartbeatInterval", "60") == "Accepted"
    assert change(csms, "Testing", "1") == "NotSupported"
    assert change(csms, "NumberOfConnectors", "2") == "Rejected"
    assert change(csms, "HeartbeatInterval", "abc") == "Rejected"
    assert (
        change(csms, "MeterValuesSampledData", "Energy.Active.Import.Register,RPM") == "Rejected"
    )
    assert change(csms, "WebSocketPingInterval", "-5") == "Rejected"
    assert change(csms, "StopTransactionOnEVSideDisconnect", "false") == "Rejected"
    keys, _ = get(csms, "HeartbeatInterval", "NumberOfConnectors", "MeterValuesSampledData")
    assert keys["HeartbeatInterval"]["value"] == "60"
    assert keys["NumberOfConnectors"]["value"] == "1"
    assert "RPM" not in keys["MeterValuesSampledData"]["value"]


def test_key_names_case_insensitive(csms, charger):
    assert change(csms, "connectiontimeout", "45") == "Accepted"
    keys, unknown = get(csms, "CONNECTIONTIMEOUT")
    assert unknown == [] and keys["ConnectionTimeOut"]["value"] == "45"


def test_changes_survive_restart(csms, charger):
    assert change(csms, "HeartbeatInterval", "77") == "Accepted"
    assert (
        change(csms, "MeterValuesSampledData", "Energy.Active.Import.Register,Voltage")
        == "Accepted"
    )
    assert change(csms, "LocalPreAuthorize", "true") == "Accepted"
    mark = csms.mark()
    charger.restart()
    csms.wait_for("StatusNotification", after=mark, timeout=15)
    keys, _ = get(csms, "HeartbeatInterval", "MeterValuesSampledData", "LocalPreAuthorize")
    # BootNotification's interval (300 from the bench CSMS) overrides HeartbeatInterval.
    assert keys["HeartbeatInterval"]["value"] == "300"
    assert keys["MeterValuesSampledData"]["value"] == "Energy.Active.Import.Register,Voltage"
    assert keys["LocalPreAuthorize"]["value"] == "true"


def test_heartbeat_interval_change_applies(csms, charger):
    assert change(csms, "HeartbeatInterval", "1") == "Accepted"
    mark = csms.mark()
    a = csms.wait_for("Heartbeat", after=mark, timeout=4)
    b = csms.wait_for("Heartbeat", after=csms.messages.index(a) + 1, timeout=4)
    assert 0.8 <= b.t - a.t <= 2.5
