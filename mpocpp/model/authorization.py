# Authorization of an idTag (OCPP 1.6 §3.5, checklist §2.3): the local
# authorization list beats the cache; online, LocalPreAuthorize may skip the
# Authorize request; offline, LocalAuthorizeOffline and
# AllowOfflineTxForUnknownId decide.
from mpocpp.util import clock
from mpocpp.util import log
from mpocpp.protocol.rpc import Offline, CallError, CallTimeout

_TAG = "auth"
ACCEPTED = "Accepted"


def valid(info, now):
    if info is None or info.get("status") != ACCEPTED:
        return False
    exp = info.get("expiryDate")
    return exp is None or exp > now


def _local_answer(info, now):
    # A stored entry as an idTagInfo answer: expired by date reads Expired.
    st = info.get("status")
    if st == ACCEPTED and not valid(info, now):
        st = "Expired"
    res = {"status": st}
    if info.get("parentIdTag"):
        res["parentIdTag"] = info["parentIdTag"]
    return res


def to_store(info):
    # OCPP idTagInfo JSON -> the dict the store keeps (expiryDate in unix seconds)
    out = {"status": info.get("status"), "parentIdTag": info.get("parentIdTag"),
           "expiryDate": None}
    e = info.get("expiryDate")
    if e:
        try:
            out["expiryDate"] = clock.parse(e)
        except ValueError:
            pass
    return out


def remember(cp, id_tag, info):
    # Update the cache from an Authorize / StartTransaction / StopTransaction
    # answer, unless the tag is in the local list (listed tags are never cached).
    cfg = cp.cfg
    if not cfg.get("AuthorizationCacheEnabled") or not info:
        return
    st = cp.auth_store()
    if cfg.get("LocalAuthListEnabled") and st.list_lookup(id_tag) is not None:
        return
    try:
        st.cache_put(id_tag, info)
    except Exception as e:
        log.exc(_TAG, "cache write failed", e)


def check_conflict(cp, id_tag, info):
    # The CSMS disagrees with the local list: report LocalListConflict (§3.5.2).
    cfg = cp.cfg
    if not cfg.get("LocalAuthListEnabled"):
        return
    listed = cp.auth_store().list_lookup(id_tag)
    if listed is not None and listed.get("status") != info.get("status"):
        log.warn(_TAG, "local list conflict for %s" % id_tag)
        cp.local_list_conflict()


def lookup(cp, id_tag):
    # -> (entry, from_list) from the local list, else the cache, else (None, False)
    cfg = cp.cfg
    st = cp.auth_store()
    if cfg.get("LocalAuthListEnabled"):
        e = st.list_lookup(id_tag)
        if e is not None:
            return e, True
    if cfg.get("AuthorizationCacheEnabled"):
        e = st.cache_lookup(id_tag)
        if e is not None:
            return e, False
    return None, False


async def authorize(cp, id_tag):
    """-> idTagInfo dict (status, optional parentIdTag); also sets
    info["offline"] = True when decided without the central system."""
    cfg = cp.cfg
    now = clock.now()
    entry, listed = lookup(cp, id_tag)
    if listed and not valid(entry, now):
        # A list entry that is not Accepted or is expired MUST be rejected.
        return _local_answer(entry, now)
    if cp.link.online and cp.link.registration == ACCEPTED:
        if cfg.get("LocalPreAuthorize") and valid(entry, now):
            return _local_answer(entry, now)
        try:
            res = await cp.call("Authorize", {"idTag": id_tag})
        except (Offline, CallTimeout, CallError) as e:
            log.warn(_TAG, "Authorize failed (%r): deciding offline" % e)
        else:
            info = res["idTagInfo"]
            if listed:
                check_conflict(cp, id_tag, info)
            else:
                remember(cp, id_tag, info)
            return info
    # Offline.
    if entry is not None and cfg.get("LocalAuthorizeOffline"):
        res = _local_answer(entry, now)
        res["offline"] = True
        return res
    if entry is None and cfg.get("AllowOfflineTxForUnknownId"):
        return {"status": ACCEPTED, "offline": True}
    return {"status": "Invalid", "offline": True}
