# Which module of operations/ answers each of the central system's CALLs,
# and the feature profile of each module: loaded by the Dispatcher
# (operations/__init__.py) for a CALL and released after it, so that an idle
# charger's heap holds none of it.

ACTIONS = {
    "CancelReservation": "reservation",
    "CertificateSigned": "certsigning",
    "ChangeAvailability": "core",
    "ChangeConfiguration": "core",
    "ClearCache": "core",
    "DeleteCertificate": "security",
    "ClearChargingProfile": "smartcharging",
    "DataTransfer": "core",
    "ExtendedTriggerMessage": "remotetrigger",
    "GetCompositeSchedule": "smartcharging",
    "GetConfiguration": "core",
    "GetDiagnostics": "diagnostics",
    "GetInstalledCertificateIds": "security",
    "GetLog": "diagnostics",
    "InstallCertificate": "security",
    "GetLocalListVersion": "localauth",
    "RemoteStartTransaction": "core",
    "RemoteStopTransaction": "core",
    "ReserveNow": "reservation",
    "Reset": "core",
    "SendLocalList": "localauth",
    "SetChargingProfile": "smartcharging",
    "SignedUpdateFirmware": "firmware",
    "TriggerMessage": "remotetrigger",
    "UnlockConnector": "core",
    "UpdateFirmware": "firmware",
}

# The feature profile (SupportedFeatureProfiles) of each module.
PROFILES = {
    "core": "Core", "firmware": "FirmwareManagement", "diagnostics": "FirmwareManagement",
    "localauth": "LocalAuthListManagement", "reservation": "Reservation",
    "smartcharging": "SmartCharging", "remotetrigger": "RemoteTrigger",
    "security": "Core", "certsigning": "Core",
}

# The security whitepaper's calls that share a module with a feature
# profile's belong to no profile: always served.
ANY_PROFILE = ("ExtendedTriggerMessage", "GetLog")

# The answers of a profile SupportedFeatureProfiles leaves out, where the
# spec gives one (GetLocalListVersion §5.10, SendLocalList §5.15, ReserveNow
# §5.13); every other action of such a profile is a NotSupported CALLERROR
# (OCPP-J table of error codes, errata E3.39 for SmartCharging).
ABSENT = {
    "GetLocalListVersion": {"listVersion": -1},
    "SendLocalList": {"status": "NotSupported"},
    "ReserveNow": {"status": "Rejected"},
}
