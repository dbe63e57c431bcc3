# The configuration key table (OCPP 1.6 chapter 9, its errata, the security
# whitepaper and the vendor keys of the checklist). One tuple per key, no
# per-key objects:
#   (name, spec, default)            bool / CSL / string keys
#   (name, spec, default, lo, hi)    integer keys (inclusive range)
# spec = type | access | flags. Keys that are absent on purpose (BlinkRepeat,
# MaxEnergyOnInvalidId, ReserveConnectorZeroSupported,
# ConnectorSwitch3to1PhaseSupported, CpoName, CertificateStoreMaxLength,
# CertificateSignedMaxChainSize) are simply not listed: unknown, NotSupported.
from micropython import const

# type (bits 0-2)
BOOL = const(0)
INT = const(1)
STR = const(2)
CSL = const(3)  # read-only list, reported as is
MEAS = const(4)  # CSL of measurands, <= <name>MaxLength items
ROT = const(5)  # ConnectorPhaseRotation: CSL of <connector>.<rotation>
IDTAG = const(6)  # CiString20, non-empty
AUTHKEY = const(7)  # AuthorizationKey (write-only secret)
TYPE = const(7)
# access (bits 3-4)
R = const(0)
RW = const(8)
W = const(16)
ACCESS = const(24)
# flags
REBOOT = const(32)  # a change takes effect after a reboot: RebootRequired

_S = const(4294967)  # intervals in seconds: 0..4294967 (decision)

MEASURANDS = (
    "Energy.Active.Import.Register", "Energy.Active.Import.Interval",
    "Power.Active.Import", "Power.Offered", "Current.Import",
    "Current.Offered", "Voltage", "Temperature")

ROTATIONS = ("RST", "RTS", "SRT", "STR", "TRS", "TSR", "NotApplicable", "Unknown")

KEYS = (
    # Core (9.1)
    ("AllowOfflineTxForUnknownId", BOOL | RW, False),
    ("AuthorizationCacheEnabled", BOOL | RW, True),
    ("AuthorizeRemoteTxRequests", BOOL | RW, True),
    ("ClockAlignedDataInterval", INT | RW, 0, 0, _S),
    ("ConnectionTimeOut", INT | RW, 30, 0, _S),
    ("ConnectorPhaseRotation", ROT | RW, "1.RST"),
    ("ConnectorPhaseRotationMaxLength", INT | R, 2, 0, 255),
    ("GetConfigurationMaxKeys", INT | R, 0, 1, 1000),  # default: key count
    ("HeartbeatInterval", INT | RW, 240, 0, _S),
    ("LightIntensity", INT | RW, 100, 0, 100),
    ("LocalAuthorizeOffline", BOOL | RW, True),
    ("LocalPreAuthorize", BOOL | RW, False),
    ("MessageTimeout", INT | RW, 30, 1, _S),  # E3.83
    ("MeterValuesAlignedData", MEAS | RW, ""),
    ("MeterValuesAlignedDataMaxLength", INT | R, 8, 0, 64),
    ("MeterValuesSampledData", MEAS | RW,
     "Energy.Active.Import.Register,Current.Import,Current.Offered,Power.Active.Import"),
    ("MeterValuesSampledDataMaxLength", INT | R, 8, 0, 64),
    ("MeterValueSampleInterval", INT | RW, 180, 0, _S),
    ("MinimumStatusDuration", INT | RW, 0, 0, _S),
    ("NumberOfConnectors", INT | R, 1, 1, 255),
    ("ResetRetries", INT | RW, 1, 0, 255),
    ("StopTransactionMaxMeterValues", INT | R, 50, 2, 10000),  # E3.91
    ("StopTransactionOnEVSideDisconnect", BOOL | RW, True),  # only true (E3.80)
    ("StopTransactionOnInvalidId", BOOL | RW, True),
    ("StopTxnAlignedData", MEAS | RW, ""),
    ("StopTxnAlignedDataMaxLength", INT | R, 8, 0, 64),
    ("StopTxnSampledData", MEAS | RW, ""),
    ("StopTxnSampledDataMaxLength", INT | R, 8, 0, 64),
    ("SupportedFeatureProfiles", CSL | R,
     "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger"),
    ("SupportedFeatureProfilesMaxLength", INT | R, 6, 0, 6),  # E3.81: unneeded, kept
    ("TransactionMessageAttempts", INT | RW, 3, 0, 255),
    ("TransactionMessageRetryInterval", INT | RW, 60, 0, _S),
    ("UnlockConnectorOnEVSideDisconnect", BOOL | RW, True),  # R under LockCablePermanently
    ("WebSocketPingInterval", INT | RW, 0, 0, _S),
    # Local Auth List Management (9.2)
    ("LocalAuthListEnabled", BOOL | RW, True),
    ("LocalAuthListMaxLength", INT | R, 1024, 0, 100000),
    ("SendLocalListMaxLength", INT | R, 255, 0, 100000),
    # Smart Charging (9.4)
    ("ChargeProfileMaxStackLevel", INT | R, 8, 0, 1000),
    ("ChargingScheduleAllowedChargingRateUnit", CSL | R, "Current,Power"),  # E3.88
    ("ChargingScheduleMaxPeriods", INT | R, 24, 1, 1000),
    ("MaxChargingProfilesInstalled", INT | R, 10, 1, 1000),
    # Firmware Management (E3.90)
    ("SupportedFileTransferProtocols", CSL | R, "FTP,HTTP,HTTPS"),
    # Security whitepaper
    ("SecurityProfile", INT | RW, 0, 0, 3),
    ("AuthorizationKey", AUTHKEY | W, ""),
    ("AdditionalRootCertificateCheck", BOOL | R, False),
    # Vendor keys
    ("FreeCharging", BOOL | RW, False),
    ("FreeChargingIdTag", IDTAG | RW, "FFFFFFFF"),
    ("LockCablePermanently", BOOL | RW, False),
    ("AuthorisationTimeout", INT | RW, 120, 0, _S),
    ("PowerActiveImportDeltaForEagerMeterValueSample", INT | RW, 0, 0, _S),  # W
    ("UseAuthorizationKeyWithoutDecoding", BOOL | RW, False),
)
