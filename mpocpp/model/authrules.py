# The rules of authorization (OCPP 1.6 §3.5, checklist §2.3): the local
# authorization list beats the cache; online, LocalPreAuthorize may skip the
# Authorize request; offline, LocalAuthorizeOffline and
# AllowOfflineTxForUnknownId decide. The list and the cache live in flash
# (authstore.py). Loaded with the store by authorization.py for each card,
# idTagInfo to cache, list or cache message, and let go with it after.
from mpocpp.util import clock
from mpocpp.util import log
# Every rule reads the store: the two come and go together (authorization.py).
from mpocpp.model.authstore import AuthStore, valid

_TAG = "auth"


def _answer(info, now):
    # A stored entry as an idTagInfo answer: expired by date reads Expired.
    st = info.get("status")
    if st == "Accepted" and not valid(info, now):
        st = "Expired"
    res = {"status": st}
    if info.get("parentIdTag"):
        res["parentIdTag"] = info["parentIdTag"]
    return res


class AuthRules:
    def __init__(self, cfg, registration, rpc, on_conflict):
        self._cfg = cfg
        self._reg = registration
        self._rpc = rpc
        self._on_conflict = on_conflict  # callable(errorCode): report LocalListConflict
        self._store = None
        # Without LocalAuthListManagement no local list is consulted.
        self._lal = cfg.supports("LocalAuthListManagement")

    def store(self):
        # The authstore.AuthStore, mounted on first use.
        if self._store is None:
            s = AuthStore(self._cfg.dir + "/auth",
                          list_max=self._cfg.get("LocalAuthListMaxLength"))
            s.mount()
            self._store = s
        return self._store

    def remember(self, id_tag, info):
        # Update the cache from an Authorize / StartTransaction /
        # StopTransaction answer, unless the tag is in the local list
        # (listed tags are never cached).
        cfg = self._cfg
        if not cfg.get("AuthorizationCacheEnabled") or not info:
            return
        st = self.store()
        if self._list_on() and st.list_lookup(id_tag) is not None:
            return
        try:
            st.cache_put(id_tag, info)
        except Exception as e:
            log.exc(_TAG, "cache write failed", e)

    def _list_on(self):
        return self._lal and self._cfg.get("LocalAuthListEnabled")

    def _conflict(self, id_tag, info):
        # The CSMS disagrees with the local list: LocalListConflict (§3.5.2).
        listed = self.store().list_lookup(id_tag)
        if listed is not None and listed.get("status") != info.get("status"):
            log.warn(_TAG, "local list conflict for %s", id_tag)
            self._on_conflict("LocalListConflict")

    def lookup(self, id_tag):
        # -> (entry, from_list) from the local list, else the cache, else (None, False)
        cfg = self._cfg
        st = self.store()
        if self._list_on():
            e = st.list_lookup(id_tag)
            if e is not None:
                return e, True
        if cfg.get("AuthorizationCacheEnabled"):
            e = st.cache_lookup(id_tag)
            if e is not None:
                return e, False
        return None, False

    def parent_of(self, id_tag):
        # The parentIdTag the list or the cache knows for a valid idTag, else None.
        e, _ = self.lookup(id_tag)
        if e is not None and valid(e, clock.now()):
            return e.get("parentIdTag")
        return None

    async def authorize(self, id_tag):
        """-> idTagInfo dict (status, optional parentIdTag); also sets
        info["offline"] = True when decided without the central system."""
        from mpocpp.protocol.rpc import Offline, CallError, CallTimeout
        cfg = self._cfg
        now = clock.now()
        entry, listed = self.lookup(id_tag)
        if listed and not valid(entry, now):
            # A list entry that is not Accepted or is expired MUST be rejected.
            return _answer(entry, now)
        if self._reg.accepted:
            if cfg.get("LocalPreAuthorize") and valid(entry, now):
                return _answer(entry, now)
            try:
                res = await self._rpc.call("Authorize", {"idTag": id_tag},
                                           cfg.get("MessageTimeout"))
            except (Offline, CallTimeout, CallError) as e:
                log.warn(_TAG, "Authorize failed (%r): deciding offline", e)
            else:
                info = res["idTagInfo"]
                if listed:
                    self._conflict(id_tag, info)
                else:
                    self.remember(id_tag, info)
                return info
        # Offline.
        if entry is not None and cfg.get("LocalAuthorizeOffline"):
            res = _answer(entry, now)
            res["offline"] = True
            return res
        if entry is None and cfg.get("AllowOfflineTxForUnknownId"):
            return {"status": "Accepted", "offline": True}
        return {"status": "Invalid", "offline": True}
