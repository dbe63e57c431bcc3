# The central system's CALLs, one module per OCPP feature profile, each with
# the calls it answers and the messages it sends:
#   core.py           Core (ChangeAvailability ... UnlockConnector)
#   firmware.py       FirmwareManagement: UpdateFirmware, FirmwareStatusNotification,
#                     and the whitepaper's SignedUpdateFirmware,
#                     SignedFirmwareStatusNotification (its checks in
#                     signedfirmware.py, loaded by firmware.py for the CALL)
#   diagnostics.py    FirmwareManagement: GetDiagnostics, DiagnosticsStatusNotification,
#                     and the whitepaper's GetLog, LogStatusNotification
#   localauth.py      LocalAuthListManagement
#   reservation.py    Reservation
#   smartcharging.py  SmartCharging
#   remotetrigger.py  RemoteTrigger, and the whitepaper's ExtendedTriggerMessage
#   security.py       the security whitepaper's certificate management
#                     (InstallCertificate, GetInstalledCertificateIds,
#                     DeleteCertificate; no feature profile: always there)
#   certsigning.py    the charge point certificate: CertificateSigned, and
#                     SignCertificate (Charger.sign_certificate)
# A module is imported when its first CALL arrives and released after the
# answer (as MicroPython's asyncio package loads its parts), so the bytecode
# of an operation is in the heap only while it runs.
from mpocpp.util import modules

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
_ANY_PROFILE = ("ExtendedTriggerMessage", "GetLog")

# The answers of a profile SupportedFeatureProfiles leaves out, where the
# spec gives one (GetLocalListVersion §5.10, SendLocalList §5.15, ReserveNow
# §5.13); every other action of such a profile is a NotSupported CALLERROR
# (OCPP-J table of error codes, errata E3.39 for SmartCharging).
_ABSENT = {
    "GetLocalListVersion": {"listVersion": -1},
    "SendLocalList": {"status": "NotSupported"},
    "ReserveNow": {"status": "Rejected"},
}

_PKG = "mpocpp.operations."


class Dispatcher:
    # rpc.Rpc's dispatch: action -> the handler object the composition root
    # makes for its module (make(name, module) -> object with a method per
    # action), then the module is released. supports(profile) -> bool: the
    # profile is in SupportedFeatureProfiles; the module of a profile left
    # out is never imported.
    def __init__(self, make, supports):
        self._make = make
        self._supports = supports

    def serves(self, action):
        # rpc.Rpc's serves: the charge point's own messages are not served.
        return action in ACTIONS

    def __call__(self, action, payload):
        from mpocpp.protocol.rpc import Reply
        name = ACTIONS.get(action)
        if name is None:
            raise Reply("NotSupported", action + " not supported")
        if action not in _ANY_PROFILE and not self._supports(PROFILES[name]):
            res = _ABSENT.get(action)
            if res is None:
                raise Reply("NotSupported", PROFILES[name] + " not supported")
            return res
        try:
            h = self._make(name, modules.load(_PKG + name))
            if h is None:
                raise Reply("NotSupported", action + " not supported")
            return getattr(h, action)(payload)
        finally:
            modules.release(_PKG + name)
            # The crypto a handler imported goes too (the link's connect
            # imports the certificate store again when it needs it).
            modules.release_all("mpocpp.security")
