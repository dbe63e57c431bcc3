# Authorization of an idTag, as the charger keeps it between cards: a handle
# on the rules (authrules.py) and the local list and cache in flash
# (authstore.py), both loaded on the first card, list or cache message, not
# at boot, and let go when the connectors are idle (sessions.py), so that an
# idle charger's heap holds none of their code.
from mpocpp.util import modules

_RULES = "mpocpp.model.authrules"
_STORE = "mpocpp.model.authstore"


def same_tag(a, b):
    # idTags are compared case-insensitively (IdToken is a CiString20).
    return a is not None and b is not None and a.upper() == b.upper()


class Authorization:
    def __init__(self, cfg, registration, rpc, on_conflict):
        # on_conflict: callable(errorCode), reports LocalListConflict
        self._cfg = cfg
        self._reg = registration
        self._rpc = rpc
        self._on_conflict = on_conflict
        self._rules = None  # authrules.AuthRules while loaded

    def _use(self):
        r = self._rules
        if r is None:
            r = self._rules = modules.load(_RULES).AuthRules(
                self._cfg, self._reg, self._rpc, self._on_conflict)
        return r

    def store(self):
        # The authstore.AuthStore (the local list and the cache), mounted.
        return self._use().store()

    def mounted(self):
        return self._rules is not None

    def release(self):
        # The rules and the store leave the heap (the store's RAM index is
        # rebuilt from flash by the next mount).
        self._rules = None
        modules.release(_RULES)
        modules.release(_STORE)

    def remember(self, id_tag, info):
        # An Authorize / StartTransaction / StopTransaction answer's
        # idTagInfo, for the cache (unless the tag is in the local list).
        if info and self._cfg.get("AuthorizationCacheEnabled"):
            self._use().remember(id_tag, info)

    def parent_of(self, id_tag):
        # The parentIdTag the list or the cache knows for a valid idTag, else None.
        return self._use().parent_of(id_tag)

    def authorize(self, id_tag):
        # A coroutine: -> idTagInfo dict (status, optional parentIdTag); with
        # info["offline"] = True when decided without the central system.
        return self._use().authorize(id_tag)
