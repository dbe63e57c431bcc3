# LocalAuthListManagement profile: GetLocalListVersion and SendLocalList over
# the local authorization list in flash (model/authstore.py).
from mpocpp.util import log
from mpocpp.protocol.rpc import Reply

_TAG = "localauth"


class LocalAuthListManagement:
    def __init__(self, cfg, authorization):
        self._cfg = cfg
        self._auth = authorization

    def GetLocalListVersion(self, req):
        if not self._cfg.get("LocalAuthListEnabled"):
            return {"listVersion": -1}  # TC_042_1: not enabled
        return {"listVersion": self._auth.store().list_version()}

    def SendLocalList(self, req):
        cfg = self._cfg
        entries = req.get("localAuthorizationList") or []
        if len(entries) > cfg.get("SendLocalListMaxLength"):
            raise Reply("OccurenceConstraintViolation",
                        "more than SendLocalListMaxLength entries")
        if not cfg.get("LocalAuthListEnabled"):
            return {"status": "NotSupported"}
        try:
            st = self._auth.store().list_update(req["listVersion"], req["updateType"], entries)
        except Exception as e:
            log.exc(_TAG, "SendLocalList", e)
            st = "Failed"
        log.info(_TAG, "SendLocalList v%d %s (%d entries) -> %s", req["listVersion"],
                 req["updateType"], len(entries), st)
        return {"status": st}
