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
#   table.py          which module answers each CALL, each module's profile
# A module is imported when its first CALL arrives and released after the
# answer (as MicroPython's asyncio package loads its parts), so the bytecode
# of an operation is in the heap only while it runs.
from mpocpp.util import modules

_PKG = "mpocpp.operations."
_TABLE = "mpocpp.operations.table"
_TIMEPARSE = "mpocpp.util.timeparse"  # a handler's dates


class Dispatcher:
    # rpc.Rpc's dispatch: action -> the handler object the composition root
    # makes for its module (make(name, module) -> object with a method per
    # action), then the module is released. supports(profile) -> bool: the
    # profile is in SupportedFeatureProfiles; the module of a profile left
    # out is never imported. The table of actions (table.py) is loaded for
    # each CALL and released with its module.
    def __init__(self, make, supports):
        self._make = make
        self._supports = supports

    def serves(self, action):
        # rpc.Rpc's serves: the charge point's own messages are not served
        # (then __call__ does not follow, and the table goes at once).
        if action in modules.load(_TABLE).ACTIONS:
            return True
        modules.release(_TABLE)
        return False

    def __call__(self, action, payload):
        from mpocpp.protocol.rpc import Reply
        name = None
        try:
            t = modules.load(_TABLE)
            name = t.ACTIONS.get(action)
            if name is None:
                raise Reply("NotSupported", action + " not supported")
            if action not in t.ANY_PROFILE and not self._supports(t.PROFILES[name]):
                res = t.ABSENT.get(action)
                if res is None:
                    raise Reply("NotSupported", t.PROFILES[name] + " not supported")
                return res
            h = self._make(name, modules.load(_PKG + name))
            if h is None:
                raise Reply("NotSupported", action + " not supported")
            return getattr(h, action)(payload)
        finally:
            modules.release(_TABLE)
            if name is not None:
                modules.release(_PKG + name)
                modules.release(_TIMEPARSE)
            # The crypto a handler imported goes too (the link's connect
            # imports the certificate store again when it needs it).
            modules.release_all("mpocpp.security")
