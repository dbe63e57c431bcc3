# Authorization of an idTag, as the charger keeps it between cards: a handle
# on the rules (authrules.py) and the local list and cache in flash
# (authstore.py), both loaded for each use (a card, an idTagInfo to cache, a
# list or cache message) and let go after it, so that neither an idle
# charger's heap nor a running transaction's holds their code: they are
# used a few times a session, and everything they know is in flash.
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
        self._asking = 0  # authorize() calls awaiting the central system

    def _use(self):
        r = self._rules
        if r is None:
            r = self._rules = modules.load(_RULES).AuthRules(
                self._cfg, self._reg, self._rpc, self._on_conflict)
        return r

    def store(self):
        # The authstore.AuthStore (the local list and the cache), mounted,
        # for use at once: done() after it.
        return self._use().store()

    def done(self):
        # A use is over: the rules and the store leave the heap (the store's
        # RAM index is rebuilt from flash by the next mount), unless a card
        # is still being authorized with the central system.
        if not self._asking:
            self._rules = None
            modules.release(_RULES)
            modules.release(_STORE)

    def remember(self, id_tag, info):
        # An Authorize / StartTransaction / StopTransaction answer's
        # idTagInfo, for the cache (unless the tag is in the local list).
        if info and self._cfg.get("AuthorizationCacheEnabled"):
            try:
                self._use().remember(id_tag, info)
            finally:
                self.done()

    def parent_of(self, id_tag):
        # The parentIdTag the list or the cache knows for a valid idTag, else None.
        try:
            return self._use().parent_of(id_tag)
        finally:
            self.done()

    async def authorize(self, id_tag):
        # -> idTagInfo dict (status, optional parentIdTag); with
        # info["offline"] = True when decided without the central system.
        rules = self._use()
        self._asking += 1
        try:
            return await rules.authorize(id_tag)
        finally:
            self._asking -= 1
            self.done()
