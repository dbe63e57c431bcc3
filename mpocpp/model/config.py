# The configuration in effect: the values of the OCPP keys, the
# BootNotification identity and the non-OCPP settings. Reading a key is a
# dictionary lookup; everything else about keys (the table, types and
# ranges, ChangeConfiguration and GetConfiguration, provisioning, flash) is
# in keys.py, imported for the moment it is needed. See docs/configuration.md.
from mpocpp.util import log
from mpocpp.util import modules

_TAG = "cfg"
_KEYS = "mpocpp.model.keys"
_UNLOCK = "UnlockConnectorOnEVSideDisconnect"
_LOCK = "LockCablePermanently"
_AKEY = "AuthorizationKey"
_RAW = "UseAuthorizationKeyWithoutDecoding"


class Setting:
    # A bound getter of one key (no closure): Setting(cfg, name)() -> value.
    def __init__(self, cfg, name):
        self.cfg = cfg
        self.name = name

    def __call__(self):
        return self.cfg.get(self.name)


class Config:
    def __init__(self, dir, limits=None):
        self.dir = dir.rstrip("/") if len(dir) > 1 else dir
        self.values = {}  # canonical key name -> typed value, every key
        self.defaults = {}  # the board's limits over the table's defaults
        self.identity = {}  # BootNotification fields
        self.settings = {}  # non-OCPP settings (csmsUrl, chargeBoxId, ...)
        self.profiles = ()  # SupportedFeatureProfiles, as a tuple (kept by keys.py)
        self.previous_security = None  # SecurityProfile before the last accepted change
        self.saved_ca = ""  # the CA certificate as in flash
        self.dir_ok = False
        self._call("init", limits)

    def _call(self, fn, *args):
        k = modules.load(_KEYS)
        try:
            return getattr(k, fn)(self, *args)
        finally:
            modules.release(_KEYS)

    # --- reading (resident, allocation-free for canonical names) ---
    def get(self, name):
        try:
            v = self.values[name]
        except (KeyError, TypeError):
            n = self.canonical(name)
            if n is None:
                raise KeyError(name)
            name = n
            v = self.values[name]
        if name == _UNLOCK and self.values[_LOCK]:
            return False  # the cable stays locked: reported false (E3.84)
        return v

    def canonical(self, name):
        # The key's own spelling (keys are case-insensitive), or None.
        if not isinstance(name, str):
            return None
        if name in self.values:
            return name
        low = name.lower()
        for k in self.values:
            if len(k) == len(name) and k.lower() == low:
                return k
        return None

    def supports(self, profile):
        # The feature profile is in SupportedFeatureProfiles (read-only: set by
        # the board's limits or the provisioning, never changed while running).
        return profile in self.profiles

    def max_keys(self):
        return self.values["GetConfigurationMaxKeys"]

    def auth_password(self):
        # Basic-auth password: the hex-decoded AuthorizationKey (OCPP-J 6.2.2),
        # or its literal bytes with UseAuthorizationKeyWithoutDecoding.
        k = self.values[_AKEY]
        if not k:
            return None
        if not self.values[_RAW]:
            import binascii
            try:
                return binascii.unhexlify(k)
            except ValueError:
                log.warn(_TAG, "AuthorizationKey is not hex: used literally")
        return k.encode()

    # --- through keys.py ---
    def load(self, provisioning=None):
        # Read the flash; on a new flash (or an unreadable file) apply the
        # provisioning and persist it. True when provisioning was applied.
        return self._call("load", provisioning)

    def change(self, name, value):
        # ChangeConfiguration -> Accepted / Rejected / RebootRequired / NotSupported.
        return self._call("change", name, value)

    def set(self, name, value):
        # Internal write: no access or policy checks, but the value must be
        # valid. True when applied and persisted; KeyError if unknown.
        return self._call("set", name, value)

    def fallback_security(self, previous=None):
        # The link could not connect with a new SecurityProfile: go back.
        return self._call("fallback_security", previous)

    def get_configuration(self, keys=None):
        # GetConfiguration: (configurationKey list, unknownKey list).
        return self._call("get_configuration", keys)

    def save(self):
        # Persist identity / settings edited in place by the firmware.
        return self._call("save")
