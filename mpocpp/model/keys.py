# The configuration keys (OCPP 1.6 chapter 9, its errata, the security
# whitepaper and the vendor keys of the checklist): the table, the rules of
# ChangeConfiguration and GetConfiguration, provisioning, and config.json
# (written atomically: old or new, never a mix; only values that differ from
# the defaults). config.py holds the values and imports this module only
# while a key is read from or written to flash, changed or listed, then
# lets it go. See docs/configuration.md. One tuple per key, no per-key
# objects:
#   (name, spec, default)            bool / CSL / string keys
#   (name, spec, default, lo, hi)    integer keys (inclusive range)
# spec = type | access | flags. Keys that are absent on purpose (BlinkRepeat,
# MaxEnergyOnInvalidId, ConnectorSwitch3to1PhaseSupported) are simply not
# listed: unknown, NotSupported.
import json
from micropython import const

from mpocpp.util import fsutil
from mpocpp.util import log

_TAG = "cfg"

# type (bits 0-2)
_BOOL = const(0)
INT = const(1)
_STR = const(2)
_CSL = const(3)  # read-only list, reported as is
_MEAS = const(4)  # CSL of measurands, <= <name>MaxLength items
_ROT = const(5)  # ConnectorPhaseRotation: CSL of <connector>.<rotation>
_IDTAG = const(6)  # CiString20, non-empty
_AUTHKEY = const(7)  # AuthorizationKey (write-only secret)
TYPE = const(7)
# access (bits 3-4)
_R = const(0)
RW = const(8)
_W = const(16)
_ACCESS = const(24)
# flags
REBOOT = const(32)  # a change takes effect after a reboot: RebootRequired
# the feature profile of a key that only exists with it (bits 6-9): absent
# (unknown to GetConfiguration, NotSupported to ChangeConfiguration, skipped
# in provisioning) when SupportedFeatureProfiles leaves the profile out
_LAL = const(64)  # LocalAuthListManagement
_SC = const(128)  # SmartCharging
_FW = const(256)  # FirmwareManagement
_RSV = const(512)  # Reservation
_PROFILE = const(960)

_PROFILE_BITS = ((_LAL, "LocalAuthListManagement"), (_SC, "SmartCharging"),
                 (_FW, "FirmwareManagement"), (_RSV, "Reservation"))
PROFILES = ("Core", "FirmwareManagement", "LocalAuthListManagement", "Reservation",
            "SmartCharging", "RemoteTrigger")

_S = const(4294967)  # intervals in seconds: 0..4294967 (decision)

MEASURANDS = (
    "Energy.Active.Import.Register", "Energy.Active.Import.Interval",
    "Power.Active.Import", "Power.Offered", "Current.Import",
    "Current.Offered", "Voltage", "Temperature")

ROTATIONS = ("RST", "RTS", "SRT", "STR", "TRS", "TSR", "NotApplicable", "Unknown")

KEYS = (
    # Core (9.1)
    ("AllowOfflineTxForUnknownId", _BOOL | RW, False),
    ("AuthorizationCacheEnabled", _BOOL | RW, True),
    ("AuthorizeRemoteTxRequests", _BOOL | RW, True),
    ("ClockAlignedDataInterval", INT | RW, 0, 0, _S),
    ("ConnectionTimeOut", INT | RW, 30, 0, _S),
    ("ConnectorPhaseRotation", _ROT | RW, "1.RST"),
    ("ConnectorPhaseRotationMaxLength", INT | _R, 2, 0, 255),
    ("GetConfigurationMaxKeys", INT | _R, 0, 1, 1000),  # default: key count
    ("HeartbeatInterval", INT | RW, 240, 0, _S),
    ("LightIntensity", INT | RW, 100, 0, 100),
    ("LocalAuthorizeOffline", _BOOL | RW, True),
    ("LocalPreAuthorize", _BOOL | RW, False),
    ("MessageTimeout", INT | RW, 30, 1, _S),  # E3.83
    ("MeterValuesAlignedData", _MEAS | RW, ""),
    ("MeterValuesAlignedDataMaxLength", INT | _R, 8, 0, 64),
    ("MeterValuesSampledData", _MEAS | RW,
     "Energy.Active.Import.Register,Current.Import,Current.Offered,Power.Active.Import"),
    ("MeterValuesSampledDataMaxLength", INT | _R, 8, 0, 64),
    ("MeterValueSampleInterval", INT | RW, 180, 0, _S),
    ("MinimumStatusDuration", INT | RW, 0, 0, _S),
    ("NumberOfConnectors", INT | _R, 1, 1, 255),
    ("ResetRetries", INT | RW, 1, 0, 255),
    ("StopTransactionMaxMeterValues", INT | _R, 50, 2, 10000),  # E3.91
    ("StopTransactionOnEVSideDisconnect", _BOOL | RW, True),  # only true (E3.80)
    ("StopTransactionOnInvalidId", _BOOL | RW, True),
    ("StopTxnAlignedData", _MEAS | RW, ""),
    ("StopTxnAlignedDataMaxLength", INT | _R, 8, 0, 64),
    ("StopTxnSampledData", _MEAS | RW, ""),
    ("StopTxnSampledDataMaxLength", INT | _R, 8, 0, 64),
    ("SupportedFeatureProfiles", _CSL | _R,
     "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger"),
    ("SupportedFeatureProfilesMaxLength", INT | _R, 6, 0, 6),  # E3.81: unneeded, kept
    ("TransactionMessageAttempts", INT | RW, 3, 0, 255),
    ("TransactionMessageRetryInterval", INT | RW, 60, 0, _S),
    ("UnlockConnectorOnEVSideDisconnect", _BOOL | RW, True),  # R under LockCablePermanently
    ("WebSocketPingInterval", INT | RW, 0, 0, _S),
    # Local Auth List Management (9.2)
    ("LocalAuthListEnabled", _BOOL | RW | _LAL, True),
    ("LocalAuthListMaxLength", INT | _R | _LAL, 1024, 0, 100000),
    ("SendLocalListMaxLength", INT | _R | _LAL, 255, 0, 100000),
    # Reservation (9.3): provisioned per board (true: ReserveNow for connector 0)
    ("ReserveConnectorZeroSupported", _BOOL | _R | _RSV, False),
    # Smart Charging (9.4)
    ("ChargeProfileMaxStackLevel", INT | _R | _SC, 8, 0, 1000),
    ("ChargingScheduleAllowedChargingRateUnit", _CSL | _R | _SC, "Current,Power"),  # E3.88
    ("ChargingScheduleMaxPeriods", INT | _R | _SC, 24, 1, 1000),
    ("MaxChargingProfilesInstalled", INT | _R | _SC, 10, 1, 1000),
    # Firmware Management (E3.90)
    ("SupportedFileTransferProtocols", _CSL | _R | _FW, "FTP,HTTP,HTTPS"),
    # Security whitepaper
    ("SecurityProfile", INT | RW, 0, 0, 3),
    ("AuthorizationKey", _AUTHKEY | _W, ""),
    ("AdditionalRootCertificateCheck", _BOOL | _R, False),
    ("CertificateSignedMaxChainSize", INT | _R, 10000, 0, 10000),
    ("CertificateStoreMaxLength", INT | _R, 8, 0, 100),
    ("CpoName", _STR | RW, ""),
    # Vendor keys
    ("FreeCharging", _BOOL | RW, False),
    ("FreeChargingIdTag", _IDTAG | RW, "FFFFFFFF"),
    ("LockCablePermanently", _BOOL | RW, False),
    ("AuthorisationTimeout", INT | RW, 120, 0, _S),
    ("PowerActiveImportDeltaForEagerMeterValueSample", INT | RW, 0, 0, _S),  # W
    ("UseAuthorizationKeyWithoutDecoding", _BOOL | RW, False),
)

_VALUE_MAX = const(500)  # CiString500 (ChangeConfiguration.value)
_KEY_MAX = const(50)  # CiString50 (key names)
_IDTAG_MAX = const(20)
_VERSION = const(1)



# BootNotification fields and their CiString lengths.
_IDENTITY = (
    ("chargePointVendor", 20), ("chargePointModel", 20),
    ("chargePointSerialNumber", 25), ("chargeBoxSerialNumber", 25),
    ("firmwareVersion", 50), ("iccid", 20), ("imsi", 20),
    ("meterType", 25), ("meterSerialNumber", 25))

# Non-OCPP settings and their defaults (the type of the default is enforced).
_SETTINGS = (
    ("csmsUrl", ""), ("chargeBoxId", ""), ("caCert", ""),
    ("reconnectMinMs", 2000), ("reconnectMaxMs", 30000), ("bootRetryS", 30),
    ("connectTimeoutMs", 10000), ("pongTimeoutMs", 10000), ("maxMessage", 65536),
    ("rxBuffer", 2048), ("certRenewCheckS", 86400), ("idleReleaseMs", 30000))

_MISSING = object()


def _int(s):
    # Strict decimal: optional "-", 1..10 digits (int() would also take
    # "+1", " 1" and "1_0").
    # Bytes: iterating or indexing a str interns each character, for good.
    b = s.encode()
    n = len(b)
    i = 1 if n and b[0] == 45 else 0
    if n - i < 1 or n - i > 10:
        raise ValueError("not an integer")
    while i < n:
        if not 48 <= b[i] <= 57:
            raise ValueError("not an integer")
        i += 1
    return int(s)


def _fmt(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    return v if isinstance(v, str) else str(v)


def _setting_default(name):
    for k, v in _SETTINGS:
        if k == name:
            return v
    return _MISSING


def _ca_value(data):
    # PEM as text (what the TLS setup expects), anything else as DER bytes.
    if not data.startswith(b"-----"):
        return data
    try:
        return data.decode()
    except UnicodeError:
        log.error(_TAG, "caCert: PEM is not text: ignored")
        return None


def get_configuration(cfg, keys=None):
    # GetConfiguration: (configurationKey list, unknownKey list).
    out = []
    unknown = []
    if not keys:
        for row in KEYS:
            if not _absent(cfg, row):
                out.append(_entry(cfg, row))
        return out, unknown
    seen = []
    for k in keys:
        row = _row(cfg, k)
        if row is None:
            k = k if isinstance(k, str) else str(k)
            if k not in unknown:
                unknown.append(k)
        elif row[0] not in seen:
            seen.append(row[0])
            out.append(_entry(cfg, row))
    return out, unknown


def _entry(cfg, row):
    name = row[0]
    if row[1] & _ACCESS == _W:
        return {"key": name, "readonly": False}  # write-only: no value
    return {"key": name, "readonly": _readonly(cfg, row), "value": _fmt(cfg.get(name))}


def change(cfg, name, value):
    # ChangeConfiguration. Values are never logged (AuthorizationKey).
    row = _row(cfg, name)
    if row is None:
        return "NotSupported"
    key = row[0]
    if _readonly(cfg, row):
        log.info(_TAG, "ChangeConfiguration %s: read-only", key)
        return "Rejected"
    if not isinstance(value, str) or len(value) > _VALUE_MAX:
        log.info(_TAG, "ChangeConfiguration %s: value not a string of <= 500", key)
        return "Rejected"
    try:
        v = _parse(cfg, row, value)
        _policy(cfg, key, v)
    except ValueError as e:
        log.info(_TAG, "ChangeConfiguration %s rejected: %s", key, e)
        return "Rejected"
    prev = cfg.values[key]
    if not _put(cfg, key, v):
        return "Rejected"
    if key == "SecurityProfile":
        cfg.previous_security = prev
    return "RebootRequired" if row[1] & REBOOT else "Accepted"


def set(cfg, name, value):
    # Internal write: no access or policy checks, but the value must be
    # valid. Returns True when applied and persisted; KeyError if unknown.
    row = _row(cfg, name)
    if row is None:
        raise KeyError(name)
    try:
        v = _parse(cfg, row, value)
    except ValueError as e:
        log.error(_TAG, "set %s: %s", row[0], e)
        return False
    return _put(cfg, row[0], v)


def fallback_security(cfg, previous=None):
    # The link could not connect with a new SecurityProfile: go back.
    if previous is None:
        previous = cfg.previous_security
    if not isinstance(previous, int) or isinstance(previous, bool) \
            or not 0 <= previous <= 3:
        log.error(_TAG, "fallback_security: no previous profile")
        return False
    log.warn(_TAG, "SecurityProfile back to %d", previous)
    cfg.previous_security = None
    return _put(cfg, "SecurityProfile", previous)


def save(cfg):
    # Persist identity / settings edited in place by the firmware.
    try:
        _save(cfg)
        return True
    except OSError as e:
        log.exc(_TAG, "save failed", e)
        return False


def _put(cfg, key, v):
    old = cfg.values[key]
    if old == v and type(old) is type(v):
        return True
    _store(cfg, key, v)
    try:
        _save(cfg)
    except OSError as e:
        _store(cfg, key, old)
        log.exc(_TAG, "persist %s failed", e, key)
        return False
    return True


def _row(cfg, name, every=False):
    # Canonical or case-insensitive (CiString50) match; None if unknown or
    # (unless every) absent with its feature profile.
    if not isinstance(name, str) or len(name) > _KEY_MAX:
        return None
    n = len(name)
    low = None
    for row in KEYS:
        k = row[0]
        if k == name:
            return row if every or not _absent(cfg, row) else None
        if len(k) == n:
            if low is None:
                low = name.lower()
            if k.lower() == low:
                return row if every or not _absent(cfg, row) else None
    return None


def _absent(cfg, row):
    # The key belongs to a feature profile SupportedFeatureProfiles leaves out.
    bit = row[1] & _PROFILE
    if not bit:
        return False
    for b, name in _PROFILE_BITS:
        if b == bit:
            return name not in cfg.profiles
    return False


def _store(cfg, key, v):
    cfg.values[key] = v
    if key == "SupportedFeatureProfiles":
        cfg.profiles = tuple(v.split(","))


def _readonly(cfg, row):
    if row[1] & _ACCESS == _R:
        return True
    return row[0] == "UnlockConnectorOnEVSideDisconnect" and cfg.values["LockCablePermanently"]


def _parse(cfg, row, val, loading=False):
    # Value of a ChangeConfiguration (string) or of provisioning / flash
    # / set() (JSON type or string) -> typed value; ValueError if invalid.
    t = row[1] & TYPE
    if t == _BOOL:
        if val is True or val is False:
            return val
        if isinstance(val, str):
            s = val.lower()
            if s == "true":
                return True
            if s == "false":
                return False
        raise ValueError("not true/false")
    if t == INT:
        if isinstance(val, str):
            n = _int(val)
        elif isinstance(val, int) and not isinstance(val, bool):
            n = val
        else:
            raise ValueError("not an integer")
        if not row[3] <= n <= row[4]:
            raise ValueError("out of range %d..%d" % (row[3], row[4]))
        return n
    if isinstance(val, (list, tuple)) and (t == _CSL or t == _MEAS or t == _ROT):
        try:
            val = ",".join(val)
        except TypeError:
            raise ValueError("list of non-strings")
    if not isinstance(val, str):
        raise ValueError("not a string")
    if len(val) > _VALUE_MAX:
        raise ValueError("longer than 500")
    if t == _MEAS:
        return _measurands(cfg, row[0], val)
    if row[0] == "SupportedFeatureProfiles":
        return _profiles(val)
    if t == _ROT:
        return _rotation(cfg, val)
    if t == _IDTAG:
        if not 0 < len(val) <= _IDTAG_MAX:
            raise ValueError("not a CiString20")
    elif t == _AUTHKEY:
        _check_authkey(val, None if loading else cfg.values["UseAuthorizationKeyWithoutDecoding"])
    return val


def _measurands(cfg, name, s):
    items = s.split(",")
    if len(items) == 1 and not items[0].strip():
        return ""
    limit = cfg.values.get(name + "MaxLength", 1)
    if len(items) > limit:
        raise ValueError("more than %d items" % limit)
    for i in range(len(items)):
        m = items[i].strip()
        if m not in MEASURANDS:
            raise ValueError("unsupported measurand %s" % m[:40])
        items[i] = m
    return ",".join(items)


def _profiles(s):
    # SupportedFeatureProfiles: known profiles, Core among them, each once.
    items = s.split(",")
    for i in range(len(items)):
        p = items[i].strip()
        if p not in PROFILES or p in items[:i]:
            raise ValueError("unknown or repeated profile %s" % p[:40])
        items[i] = p
    if "Core" not in items:
        raise ValueError("Core is required")
    return ",".join(items)


def _rotation(cfg, s):
    items = s.split(",")
    limit = cfg.values["ConnectorPhaseRotationMaxLength"]
    if len(items) > limit:
        raise ValueError("more than %d items" % limit)
    conns = cfg.values["NumberOfConnectors"]
    seen = []
    for i in range(len(items)):
        item = items[i].strip()
        dot = item.find(".")
        if dot < 1:
            raise ValueError("item not <connector>.<rotation>")
        c = _int(item[:dot])
        if not 0 <= c <= conns or c in seen:
            raise ValueError("bad or repeated connector %d" % c)
        seen.append(c)
        if item[dot + 1:] not in ROTATIONS:
            raise ValueError("unknown rotation")
        items[i] = item
    return ",".join(items)


def _check_authkey(k, raw):
    # raw None (loading from flash): either form. The key itself never
    # goes into an error message.
    n = len(k)
    hexok = 32 <= n <= 40 and not n & 1
    b = k.encode()  # bytes: iterating a str interns each character, for good
    if hexok:
        for c in b:
            if not (48 <= c <= 57 or 97 <= c | 32 <= 102):
                hexok = False
                break
    if hexok and not raw:
        return
    if raw is not False and 16 <= n <= 40:
        for c in b:
            if c < 32 or c > 126:
                break
        else:
            return
    if raw:
        raise ValueError("AuthorizationKey: 16..40 printable characters required")
    raise ValueError("AuthorizationKey: 32..40 hex digits (16..20 bytes) required")


def _policy(cfg, key, v):
    # ChangeConfiguration rules beyond type and range.
    if key == "StopTransactionOnEVSideDisconnect" and not v:
        raise ValueError("only true is supported")
    if key == "CpoName" and len(v) > 64:
        raise ValueError("longer than 64 (the CSR's organizationName)")
    if key == "SecurityProfile":
        cur = cfg.values["SecurityProfile"]
        if v <= cur:
            raise ValueError("may only increase (now %d)" % cur)
        if v <= 2 and not cfg.values["AuthorizationKey"]:  # A05.FR.02
            raise ValueError("needs an AuthorizationKey")
        if v >= 2:
            if not cfg.settings.get("caCert") and not _installed_ca(cfg):  # A05.FR.03
                raise ValueError("profile %d needs a CentralSystemRootCertificate" % v)
            # A ws:// csmsUrl is fine: profiles 2 and 3 connect with wss:// to
            # the same host, port and path (link.py), and fall back if they cannot.
            url = cfg.settings.get("csmsUrl")
            if not isinstance(url, str) or (url[:6].lower() != "wss://"
                                            and url[:5].lower() != "ws://"):
                raise ValueError("profile %d needs a ws:// or wss:// csmsUrl" % v)
        if v == 3 and not _client_cert_valid(cfg):  # A05.FR.04
            raise ValueError("profile 3 needs a valid charge point certificate")


def _client_cert_valid(cfg):
    # A charge point certificate installed (CertificateSigned) and valid now.
    from mpocpp.security import store, x509
    from mpocpp.util import clock
    cc = store.client_cert(cfg.dir)
    try:
        return cc is not None and x509.Certificate(cc.leaf).valid_at(clock.now())
    except ValueError:
        return False


def _installed_ca(cfg):
    from mpocpp.security import store
    return bool(store.names(cfg.dir, store.PRIMARY))


def load(cfg, provisioning=None):
    # Read the flash; on a new flash (or an unreadable file) apply the
    # provisioning and persist it. Returns True when provisioning was applied.
    fsutil.remove((cfg.dir + "/config.json") + ".tmp")  # leftover of a cut write: ignored
    doc = None
    raw = fsutil.read((cfg.dir + "/config.json"))
    if raw is not None:
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict):
                raise ValueError
        except ValueError:
            log.error(_TAG, "config.json unreadable: using defaults")
            doc = None
    _load_ca(cfg)
    if doc is not None:
        _restore(cfg, doc)
        return False
    if provisioning is None:
        return False
    _provision(cfg, provisioning)
    return True


def _restore(cfg, doc):
    idn = doc.get("identity")
    if isinstance(idn, dict):
        _apply_identity(cfg, idn)
    s = doc.get("settings")
    if isinstance(s, dict):
        _apply_settings(cfg, s)
    k = doc.get("keys")
    if isinstance(k, dict):
        _apply_keys(cfg, k, "flash", True)


def _provision(cfg, p):
    if not isinstance(p, dict):
        log.error(_TAG, "provisioning is not an object: ignored")
        return
    log.info(_TAG, "applying provisioning")
    idn = p.get("identity")
    if isinstance(idn, dict):
        _apply_identity(cfg, idn)
    for k in ("chargePointVendor", "chargePointModel"):
        if k not in cfg.identity:
            log.warn(_TAG, "provisioning: no %s", k)
    s = p.get("settings")
    if isinstance(s, dict):
        _apply_settings(cfg, s)
    keys = {}
    k = p.get("keys")
    if isinstance(k, dict):
        keys.update(k)
    sec = p.get("security")
    if isinstance(sec, dict):
        for name, v in sec.items():
            if name == "caCert":
                _set_ca(cfg, v)
            else:
                keys[name] = v
    _apply_keys(cfg, keys, "provisioning", False)
    sp = cfg.values["SecurityProfile"]
    if 1 <= sp <= 2 and not cfg.values["AuthorizationKey"]:
        log.warn(_TAG, "provisioning: SecurityProfile %d without AuthorizationKey", sp)
    if sp >= 2 and not cfg.settings["caCert"]:
        log.warn(_TAG, "provisioning: SecurityProfile %d without caCert", sp)
    save(cfg)


def _apply_identity(cfg, d):
    for name, v in d.items():
        size = 0
        for k, n in _IDENTITY:
            if k == name:
                size = n
        if not size:
            log.warn(_TAG, "identity: unknown field %s ignored", name)
            continue
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str) or not v:
            log.warn(_TAG, "identity: %s empty or not a string: dropped", name)
            continue
        if len(v) > size:
            log.warn(_TAG, "identity: %s cut to %d characters", name, size)
            v = v[:size]
        cfg.identity[name] = v


def _apply_settings(cfg, d):
    for name, v in d.items():
        if name == "caCert":
            _set_ca(cfg, v)
            continue
        dv = _setting_default(name)
        if dv is not _MISSING:
            if isinstance(dv, int):
                ok = isinstance(v, int) and not isinstance(v, bool) and v >= 0
            else:
                ok = isinstance(v, str)
            if not ok:
                log.error(_TAG, "setting %s: bad value ignored", name)
                continue
        cfg.settings[name] = v


def _set_ca(cfg, v):
    # PEM text, or the path of a PEM / DER file; kept in flash as ca.crt.
    if v is None or v == "":
        cfg.settings["caCert"] = ""
        return
    if not isinstance(v, str):
        log.error(_TAG, "caCert: not a string ignored")
        return
    if not v.startswith("-----BEGIN"):
        data = fsutil.read(v)
        if data is None:
            log.error(_TAG, "caCert: cannot read %s", v)
            return
        v = _ca_value(data)
        if v is None:
            return
    cfg.settings["caCert"] = v


def _load_ca(cfg):
    data = fsutil.read((cfg.dir + "/ca.crt"))
    v = _ca_value(data) if data else None
    if v is not None:
        cfg.settings["caCert"] = v
        cfg.saved_ca = v


def _apply_keys(cfg, d, src, loading):
    # Read-only integers (NumberOfConnectors, *MaxLength) first: the lists
    # are checked against them; AuthorizationKey after
    # UseAuthorizationKeyWithoutDecoding, SecurityProfile after the key.
    # SupportedFeatureProfiles before everything: the keys of a profile left
    # out are skipped.
    ranked = {}
    for name, v in d.items():
        row = _row(cfg, name, True)
        if row is None:
            if src != "limits":  # boards may hand in other limits too
                log.warn(_TAG, "%s: unknown key %s ignored", src, name)
            continue
        spec = row[1]
        if row[0] == "SupportedFeatureProfiles":
            rank = 0
        elif row[0] == "SecurityProfile":
            rank = 4
        elif spec & TYPE == _AUTHKEY:
            rank = 3
        elif spec & TYPE == INT and spec & _ACCESS == _R:
            rank = 1
        else:
            rank = 2
        ranked[row[0]] = (rank, row, v)
    for rank in range(5):
        for key, item in ranked.items():
            if item[0] != rank:
                continue
            if _absent(cfg, item[1]):
                log.warn(_TAG, "%s: %s ignored: its feature profile is not supported", src, key)
                continue
            try:
                v = _parse(cfg, item[1], item[2], loading)
            except ValueError as e:
                log.error(_TAG, "%s: %s %s", src, key, e)
                continue
            _store(cfg, key, v)
            if src == "limits":
                cfg.defaults[key] = v


def _save(cfg):
    if not cfg.dir_ok:
        fsutil.makedirs(cfg.dir)
        cfg.dir_ok = True
    ca = cfg.settings.get("caCert") or ""
    if ca != cfg.saved_ca:
        if ca:
            fsutil.write_atomic((cfg.dir + "/ca.crt"), ca.encode() if isinstance(ca, str) else ca)
        else:
            fsutil.remove((cfg.dir + "/ca.crt"))
        cfg.saved_ca = ca
    keys = {}
    for row in KEYS:
        k = row[0]
        v = cfg.values[k]
        d = cfg.defaults.get(k, row[2])
        if v != d or type(v) is not type(d):
            keys[k] = v
    s = {}
    for k, v in cfg.settings.items():
        if k != "caCert" and _setting_default(k) != v:
            s[k] = v
    doc = {"v": _VERSION, "identity": cfg.identity, "settings": s, "keys": keys}
    fsutil.write_atomic((cfg.dir + "/config.json"), json.dumps(doc).encode())


def init(cfg, limits):
    # Every key at its default, the board's limits over the table.
    for k, v in _SETTINGS:
        cfg.settings[k] = v
    for row in KEYS:
        _store(cfg, row[0], row[2])
    cfg.values["GetConfigurationMaxKeys"] = cfg.defaults["GetConfigurationMaxKeys"] = len(KEYS)
    if isinstance(limits, dict):
        _apply_keys(cfg, limits, "limits", True)
    elif limits is not None:
        log.error(_TAG, "limits is not a dict: ignored")
