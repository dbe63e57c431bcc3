# Configuration store: the OCPP keys of config_keys.KEYS, the BootNotification
# identity and the non-OCPP settings, persisted in one small JSON file written
# atomically (old or new, never a mix). Only values that differ from the
# defaults are stored. See docs/configuration.md.
import json
from micropython import const

from mpocpp.util import fsutil
from mpocpp.util import log
from mpocpp.model import keys as config_keys
from mpocpp.model.keys import (BOOL, INT, CSL, MEAS, ROT, IDTAG, AUTHKEY, TYPE,
                         R, W, ACCESS, REBOOT, MEASURANDS, ROTATIONS)

_TAG = "cfg"
_VALUE_MAX = const(500)  # CiString500 (ChangeConfiguration.value)
_KEY_MAX = const(50)  # CiString50 (key names)
_IDTAG_MAX = const(20)
_VERSION = const(1)

ACCEPTED = "Accepted"
REJECTED = "Rejected"
REBOOT_REQUIRED = "RebootRequired"
NOT_SUPPORTED = "NotSupported"

_UNLOCK = "UnlockConnectorOnEVSideDisconnect"
_LOCK = "LockCablePermanently"
_SP = "SecurityProfile"
_AKEY = "AuthorizationKey"
_RAW = "UseAuthorizationKeyWithoutDecoding"
_MAXKEYS = "GetConfigurationMaxKeys"

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
    ("connectTimeoutMs", 10000), ("pongTimeoutMs", 10000), ("maxMessage", 16384))

_MISSING = object()


def _int(s):
    # Strict decimal: optional "-", 1..10 digits (int() would also take
    # "+1", " 1" and "1_0").
    n = len(s)
    i = 1 if n and s[0] == "-" else 0
    if n - i < 1 or n - i > 10:
        raise ValueError("not an integer")
    while i < n:
        c = s[i]
        if c < "0" or c > "9":
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


class Config:
    def __init__(self, dir, limits=None):
        self.dir = dir.rstrip("/") if len(dir) > 1 else dir
        self._path = self.dir.rstrip("/") + "/config.json"
        self._ca_path = self.dir.rstrip("/") + "/ca.crt"
        self._keys = config_keys.KEYS
        self._v = {}  # canonical name -> typed value, every key
        self._lim = {_MAXKEYS: len(self._keys)}  # board defaults over the table
        self.identity = {}
        self.settings = {}
        self.previous_security = None  # SecurityProfile before the last accepted change
        self._ca_saved = ""
        self._dir_ok = False
        for k, v in _SETTINGS:
            self.settings[k] = v
        for row in self._keys:
            self._v[row[0]] = row[2]
        self._v[_MAXKEYS] = len(self._keys)
        if isinstance(limits, dict):
            self._apply_keys(limits, "limits", True)
        elif limits is not None:
            log.error(_TAG, "limits is not a dict: ignored")

    # --- reading ---
    def get(self, name):
        try:
            v = self._v[name]
        except (KeyError, TypeError):
            row = self._row(name)
            if row is None:
                raise KeyError(name)
            name = row[0]
            v = self._v[name]
        if name == _UNLOCK and self._v[_LOCK]:
            return False  # the cable stays locked: reported false (E3.84)
        return v

    def canonical(self, name):
        # The key's own spelling (keys are case-insensitive), or None.
        row = self._row(name)
        return None if row is None else row[0]

    def max_keys(self):
        return self._v[_MAXKEYS]

    def csl(self, name):
        # A comma-separated key as a list of items ([] when empty).
        out = []
        for item in self.get(name).split(","):
            item = item.strip()
            if item:
                out.append(item)
        return out

    def auth_password(self):
        # Basic-auth password: the hex-decoded AuthorizationKey (OCPP-J 6.2.2),
        # or its literal bytes with UseAuthorizationKeyWithoutDecoding.
        k = self._v[_AKEY]
        if not k:
            return None
        if not self._v[_RAW]:
            import binascii
            try:
                return binascii.unhexlify(k)
            except ValueError:
                log.warn(_TAG, "AuthorizationKey is not hex: used literally")
        return k.encode()

    def get_configuration(self, keys=None):
        # GetConfiguration: (configurationKey list, unknownKey list).
        out = []
        unknown = []
        if not keys:
            for row in self._keys:
                out.append(self._entry(row))
            return out, unknown
        seen = []
        for k in keys:
            row = self._row(k)
            if row is None:
                k = k if isinstance(k, str) else str(k)
                if k not in unknown:
                    unknown.append(k)
            elif row[0] not in seen:
                seen.append(row[0])
                out.append(self._entry(row))
        return out, unknown

    def _entry(self, row):
        name = row[0]
        if row[1] & ACCESS == W:
            return {"key": name, "readonly": False}  # write-only: no value
        return {"key": name, "readonly": self._readonly(row), "value": _fmt(self.get(name))}

    # --- writing ---
    def change(self, name, value):
        # ChangeConfiguration. Values are never logged (AuthorizationKey).
        row = self._row(name)
        if row is None:
            return NOT_SUPPORTED
        key = row[0]
        if self._readonly(row):
            log.info(_TAG, "ChangeConfiguration %s: read-only", key)
            return REJECTED
        if not isinstance(value, str) or len(value) > _VALUE_MAX:
            log.info(_TAG, "ChangeConfiguration %s: value not a string of <= 500", key)
            return REJECTED
        try:
            v = self._parse(row, value)
            self._policy(key, v)
        except ValueError as e:
            log.info(_TAG, "ChangeConfiguration %s rejected: %s", key, e)
            return REJECTED
        prev = self._v[key]
        if not self._put(key, v):
            return REJECTED
        if key == _SP:
            self.previous_security = prev
        return REBOOT_REQUIRED if row[1] & REBOOT else ACCEPTED

    def set(self, name, value):
        # Internal write: no access or policy checks, but the value must be
        # valid. Returns True when applied and persisted; KeyError if unknown.
        row = self._row(name)
        if row is None:
            raise KeyError(name)
        try:
            v = self._parse(row, value)
        except ValueError as e:
            log.error(_TAG, "set %s: %s", row[0], e)
            return False
        return self._put(row[0], v)

    def fallback_security(self, previous=None):
        # The link could not connect with a new SecurityProfile: go back.
        if previous is None:
            previous = self.previous_security
        if not isinstance(previous, int) or isinstance(previous, bool) \
                or not 0 <= previous <= 3:
            log.error(_TAG, "fallback_security: no previous profile")
            return False
        log.warn(_TAG, "SecurityProfile back to %d", previous)
        self.previous_security = None
        return self._put(_SP, previous)

    def save(self):
        # Persist identity / settings edited in place by the firmware.
        try:
            self._save()
            return True
        except OSError as e:
            log.exc(_TAG, "save failed", e)
            return False

    def _put(self, key, v):
        old = self._v[key]
        if old == v and type(old) is type(v):
            return True
        self._v[key] = v
        try:
            self._save()
        except OSError as e:
            self._v[key] = old
            log.exc(_TAG, "persist %s failed" % key, e)
            return False
        return True

    # --- rules ---
    def _row(self, name):
        # Canonical or case-insensitive (CiString50) match; None if unknown.
        if not isinstance(name, str) or len(name) > _KEY_MAX:
            return None
        n = len(name)
        low = None
        for row in self._keys:
            k = row[0]
            if k == name:
                return row
            if len(k) == n:
                if low is None:
                    low = name.lower()
                if k.lower() == low:
                    return row
        return None

    def _readonly(self, row):
        if row[1] & ACCESS == R:
            return True
        return row[0] == _UNLOCK and self._v[_LOCK]

    def _parse(self, row, val, loading=False):
        # Value of a ChangeConfiguration (string) or of provisioning / flash
        # / set() (JSON type or string) -> typed value; ValueError if invalid.
        t = row[1] & TYPE
        if t == BOOL:
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
        if isinstance(val, (list, tuple)) and (t == CSL or t == MEAS or t == ROT):
            try:
                val = ",".join(val)
            except TypeError:
                raise ValueError("list of non-strings")
        if not isinstance(val, str):
            raise ValueError("not a string")
        if len(val) > _VALUE_MAX:
            raise ValueError("longer than 500")
        if t == MEAS:
            return self._measurands(row[0], val)
        if t == ROT:
            return self._rotation(val)
        if t == IDTAG:
            if not 0 < len(val) <= _IDTAG_MAX:
                raise ValueError("not a CiString20")
        elif t == AUTHKEY:
            self._check_authkey(val, None if loading else self._v[_RAW])
        return val

    def _measurands(self, name, s):
        items = s.split(",")
        if len(items) == 1 and not items[0].strip():
            return ""
        limit = self._v.get(name + "MaxLength", 1)
        if len(items) > limit:
            raise ValueError("more than %d items" % limit)
        for i in range(len(items)):
            m = items[i].strip()
            if m not in MEASURANDS:
                raise ValueError("unsupported measurand %s" % m[:40])
            items[i] = m
        return ",".join(items)

    def _rotation(self, s):
        items = s.split(",")
        limit = self._v["ConnectorPhaseRotationMaxLength"]
        if len(items) > limit:
            raise ValueError("more than %d items" % limit)
        conns = self._v["NumberOfConnectors"]
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

    @staticmethod
    def _check_authkey(k, raw):
        # raw None (loading from flash): either form. The key itself never
        # goes into an error message.
        n = len(k)
        hexok = 32 <= n <= 40 and not n & 1
        if hexok:
            for c in k:
                if c not in "0123456789abcdefABCDEF":
                    hexok = False
                    break
        if hexok and not raw:
            return
        if raw is not False and 16 <= n <= 40:
            for c in k:
                if c < " " or c > "~":
                    break
            else:
                return
        if raw:
            raise ValueError("AuthorizationKey: 16..40 printable characters required")
        raise ValueError("AuthorizationKey: 32..40 hex digits (16..20 bytes) required")

    def _policy(self, key, v):
        # ChangeConfiguration rules beyond type and range.
        if key == "StopTransactionOnEVSideDisconnect" and not v:
            raise ValueError("only true is supported")
        if key == _SP:
            cur = self._v[_SP]
            if v <= cur:
                raise ValueError("may only increase (now %d)" % cur)
            if v >= 3:
                raise ValueError("profile 3 not supported")
            if not self._v[_AKEY]:
                raise ValueError("needs an AuthorizationKey")
            if v == 2:
                if not self.settings.get("caCert"):
                    raise ValueError("profile 2 needs a provisioned CA certificate")
                url = self.settings.get("csmsUrl")
                if not isinstance(url, str) or not url.startswith("wss://"):
                    raise ValueError("profile 2 needs a wss:// csmsUrl")

    # --- persistence and provisioning ---
    def load(self, provisioning=None):
        # Read the flash; on a new flash (or an unreadable file) apply the
        # provisioning and persist it. Returns True when provisioning was applied.
        fsutil.remove(self._path + ".tmp")  # leftover of a cut write: ignored
        doc = None
        raw = fsutil.read(self._path)
        if raw is not None:
            try:
                doc = json.loads(raw)
                if not isinstance(doc, dict):
                    raise ValueError
            except ValueError:
                log.error(_TAG, "config.json unreadable: using defaults")
                doc = None
        self._load_ca()
        if doc is not None:
            self._restore(doc)
            return False
        if provisioning is None:
            return False
        self._provision(provisioning)
        return True

    def _restore(self, doc):
        idn = doc.get("identity")
        if isinstance(idn, dict):
            self._apply_identity(idn)
        s = doc.get("settings")
        if isinstance(s, dict):
            self._apply_settings(s)
        k = doc.get("keys")
        if isinstance(k, dict):
            self._apply_keys(k, "flash", True)

    def _provision(self, p):
        if not isinstance(p, dict):
            log.error(_TAG, "provisioning is not an object: ignored")
            return
        log.info(_TAG, "applying provisioning")
        idn = p.get("identity")
        if isinstance(idn, dict):
            self._apply_identity(idn)
        for k in ("chargePointVendor", "chargePointModel"):
            if k not in self.identity:
                log.warn(_TAG, "provisioning: no %s", k)
        s = p.get("settings")
        if isinstance(s, dict):
            self._apply_settings(s)
        keys = {}
        k = p.get("keys")
        if isinstance(k, dict):
            keys.update(k)
        sec = p.get("security")
        if isinstance(sec, dict):
            for name, v in sec.items():
                if name == "caCert":
                    self._set_ca(v)
                else:
                    keys[name] = v
        self._apply_keys(keys, "provisioning", False)
        sp = self._v[_SP]
        if sp >= 1 and not self._v[_AKEY]:
            log.warn(_TAG, "provisioning: SecurityProfile %d without AuthorizationKey", sp)
        if sp >= 2 and not self.settings["caCert"]:
            log.warn(_TAG, "provisioning: SecurityProfile %d without caCert", sp)
        self.save()

    def _apply_identity(self, d):
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
            self.identity[name] = v

    def _apply_settings(self, d):
        for name, v in d.items():
            if name == "caCert":
                self._set_ca(v)
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
            self.settings[name] = v

    def _set_ca(self, v):
        # PEM text, or the path of a PEM / DER file; kept in flash as ca.crt.
        if v is None or v == "":
            self.settings["caCert"] = ""
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
        self.settings["caCert"] = v

    def _load_ca(self):
        data = fsutil.read(self._ca_path)
        v = _ca_value(data) if data else None
        if v is not None:
            self.settings["caCert"] = v
            self._ca_saved = v

    def _apply_keys(self, d, src, loading):
        # Read-only integers (NumberOfConnectors, *MaxLength) first: the lists
        # are checked against them; AuthorizationKey after
        # UseAuthorizationKeyWithoutDecoding, SecurityProfile after the key.
        ranked = {}
        for name, v in d.items():
            row = self._row(name)
            if row is None:
                if src != "limits":  # boards may hand in other limits too
                    log.warn(_TAG, "%s: unknown key %s ignored", src, name)
                continue
            spec = row[1]
            if row[0] == _SP:
                rank = 3
            elif spec & TYPE == AUTHKEY:
                rank = 2
            elif spec & TYPE == INT and spec & ACCESS == R:
                rank = 0
            else:
                rank = 1
            ranked[row[0]] = (rank, row, v)
        for rank in range(4):
            for key, item in ranked.items():
                if item[0] != rank:
                    continue
                try:
                    v = self._parse(item[1], item[2], loading)
                except ValueError as e:
                    log.error(_TAG, "%s: %s %s", src, key, e)
                    continue
                self._v[key] = v
                if src == "limits":
                    self._lim[key] = v

    def _save(self):
        if not self._dir_ok:
            fsutil.makedirs(self.dir)
            self._dir_ok = True
        ca = self.settings.get("caCert") or ""
        if ca != self._ca_saved:
            if ca:
                fsutil.write_atomic(self._ca_path, ca.encode() if isinstance(ca, str) else ca)
            else:
                fsutil.remove(self._ca_path)
            self._ca_saved = ca
        keys = {}
        for row in self._keys:
            k = row[0]
            v = self._v[k]
            d = self._lim.get(k, row[2])
            if v != d or type(v) is not type(d):
                keys[k] = v
        s = {}
        for k, v in self.settings.items():
            if k != "caCert" and _setting_default(k) != v:
                s[k] = v
        doc = {"v": _VERSION, "identity": self.identity, "settings": s, "keys": keys}
        fsutil.write_atomic(self._path, json.dumps(doc).encode())
