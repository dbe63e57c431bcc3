# LocalAuthListManagement profile: GetLocalListVersion and SendLocalList over
# the local authorization list in flash (authstore.py). Loaded on first use.
from mpocpp.util import log
from mpocpp.protocol.rpc import Reply

_TAG = "localauth"


def GetLocalListVersion(cp, req):
    if not cp.cfg.get("LocalAuthListEnabled"):
        return {"listVersion": -1}  # TC_042_1: not enabled
    return {"listVersion": cp.auth_store().list_version()}


def SendLocalList(cp, req):
    cfg = cp.cfg
    entries = req.get("localAuthorizationList") or []
    if len(entries) > cfg.get("SendLocalListMaxLength"):
        raise Reply("OccurenceConstraintViolation",
                    "more than SendLocalListMaxLength entries")
    if not cfg.get("LocalAuthListEnabled"):
        return {"status": "NotSupported"}
    try:
        st = cp.auth_store().list_update(req["listVersion"], req["updateType"], entries)
    except Exception as e:
        log.exc(_TAG, "SendLocalList", e)
        st = "Failed"
    log.info(_TAG, "SendLocalList v%d %s (%d entries) -> %s" % (
        req["listVersion"], req["updateType"], len(entries), st))
    return {"status": st}
