# LocalAuthListManagement profile: GetLocalListVersion and SendLocalList over
# the local authorization list in flash (model/authstore.py). A SendLocalList
# too large for the receive buffer arrives as a file (ws.Spilled): it is
# read twice, entry by entry, never whole in RAM: once to check it (schema,
# SendLocalListMaxLength), once to write the entries to flash.
from mpocpp.util import log
from mpocpp.protocol.rpc import Reply

_TAG = "localauth"
_LIST = "localAuthorizationList"
_OCV = "OccurenceConstraintViolation"


class LocalAuthListManagement:
    def __init__(self, cfg, authorization):
        self._cfg = cfg
        self._auth = authorization

    def GetLocalListVersion(self, req):
        if not self._cfg.get("LocalAuthListEnabled"):
            return {"listVersion": -1}  # TC_042_1: not enabled
        try:
            return {"listVersion": self._auth.store().list_version()}
        finally:
            self._auth.done()

    def SendLocalList(self, req):
        cfg = self._cfg
        if isinstance(req, dict):
            top = req
            entries = req.get(_LIST) or []
            if len(entries) > cfg.get("SendLocalListMaxLength"):
                raise Reply(_OCV, "more than SendLocalListMaxLength entries")
        else:  # a ws.Spilled in flash
            top = _check(req.path, cfg.get("SendLocalListMaxLength"))
            entries = _Entries(req.path)
        if not cfg.get("LocalAuthListEnabled"):
            return {"status": "NotSupported"}
        try:
            st = self._auth.store().list_update(top["listVersion"], top["updateType"], entries)
        except Exception as e:
            log.exc(_TAG, "SendLocalList", e)
            st = "Failed"
        finally:
            self._auth.done()
        log.info(_TAG, "SendLocalList v%d %s -> %s", top["listVersion"], top["updateType"], st)
        return {"status": st}


def _check(path, max_len):
    # First pass over a SendLocalList in flash: the payload without its list
    # checked against the schema, then each entry; -> the payload's other
    # members. Raises Reply (the CALLERROR) on the first fault.
    from mpocpp.protocol import jsonstream
    from mpocpp.protocol import validate
    top = {}
    n = 0
    one = {"listVersion": 1, "updateType": "Full", _LIST: [None]}
    with open(path, "rb") as f:
        try:
            s = jsonstream.head(f).stream
            for key, v in jsonstream.members(s, _LIST):
                if key != _LIST:
                    top[key] = v
                    continue
                n += 1
                if n > max_len:
                    raise Reply(_OCV, "more than SendLocalListMaxLength entries")
                one[_LIST][0] = v
                err = validate.check("SendLocalList", False, one)
                if err:
                    raise Reply(err[0], err[1])
        except ValueError as e:
            raise Reply("FormationViolation", "SendLocalList: %s" % e)
    err = validate.check("SendLocalList", False, top)
    if err:
        raise Reply(err[0], err[1])
    return top


class _Entries:
    # Second pass: the entries, one at a time, for the store.
    def __init__(self, path):
        self._path = path

    def __iter__(self):
        from mpocpp.protocol import jsonstream
        with open(self._path, "rb") as f:
            s = jsonstream.head(f).stream
            for key, v in jsonstream.members(s, _LIST):
                if key == _LIST:
                    yield v
