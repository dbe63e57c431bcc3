# Core profile: handlers for the central system's Core CALLs. Each function
# is named after its OCPP action and returns the response payload.
from mpocpp.util import log
from mpocpp.protocol.rpc import Reply

_TAG = "core"


def GetConfiguration(cp, req):
    keys = req.get("key")
    cfg = cp.cfg
    if keys and len(keys) > cfg.max_keys():
        raise Reply("OccurenceConstraintViolation", "more than GetConfigurationMaxKeys keys")
    known, unknown = cfg.get_configuration(keys)
    res = {"configurationKey": known}
    if unknown:
        res["unknownKey"] = unknown
    return res


def ChangeConfiguration(cp, req):
    key = req["key"]
    status = cp.cfg.change(key, req["value"])
    log.info(_TAG, "ChangeConfiguration %s -> %s" % (key, status))
    if status == "Accepted":
        name = key.lower()
        if name == "authorizationkey":
            return {"status": status}, cp.link.reconnect
        if name == "securityprofile":
            # Reconnect with the new profile; falls back if it cannot connect.
            return {"status": status}, cp.link.try_security_profile
    return {"status": status}


def DataTransfer(cp, req):
    h = cp.vendor_handlers.get(req["vendorId"])
    if h is None:
        return {"status": "UnknownVendorId"}
    return h(req.get("messageId"), req.get("data"))


def ClearCache(cp, req):
    if not cp.cfg.get("AuthorizationCacheEnabled"):
        return {"status": "Rejected"}  # no cache in use (errata E3.23)
    try:
        cp.auth_store().cache_clear()
    except Exception as e:
        log.exc(_TAG, "ClearCache", e)
        return {"status": "Rejected"}
    return {"status": "Accepted"}


def ChangeAvailability(cp, req):
    cid = req["connectorId"]
    if cid < 0 or cid >= len(cp.connectors):
        return {"status": "Rejected"}
    st = cp.sessions.change_availability(cid, req["type"] == "Operative")
    log.info(_TAG, "ChangeAvailability %d %s -> %s" % (cid, req["type"], st))
    return {"status": st}


def RemoteStartTransaction(cp, req):
    if cp.link.registration != "Accepted":
        return {"status": "Rejected"}  # Pending: no remote control (§4.2)
    st = cp.sessions.remote_start(req["idTag"], req.get("connectorId"), req.get("chargingProfile"))
    log.info(_TAG, "RemoteStartTransaction %s -> %s" % (req["idTag"], st))
    return {"status": st}


def RemoteStopTransaction(cp, req):
    if cp.link.registration != "Accepted":
        return {"status": "Rejected"}
    conn = cp.sessions.find_tx(req["transactionId"])
    if conn is None:
        return {"status": "Rejected"}
    return {"status": "Accepted"}, _Stop(cp, conn, "Remote")


def Reset(cp, req):
    return {"status": "Accepted"}, _Reset(cp, req["type"] == "Hard")


async def UnlockConnector(cp, req):
    cid = req["connectorId"]
    if cid < 1 or cid >= len(cp.connectors):
        return {"status": "NotSupported"}  # errata E3.87
    conn = cp.connectors[cid]
    if conn.hw is None or conn.hw.lock is None:
        return {"status": "NotSupported"}
    if conn.tx is not None:
        cp.sessions.stop(conn, "UnlockCommand")
    conn.keep_locked_for = None
    ok = await conn.hw.lock.unlock()
    conn.update()
    return {"status": "Unlocked" if ok else "UnlockFailed"}


class _Stop:
    # Follow-up run once the answer has been sent.
    def __init__(self, cp, conn, reason):
        self.cp = cp
        self.conn = conn
        self.reason = reason

    def __call__(self):
        self.cp.sessions.stop(self.conn, self.reason)


class _Reset:
    def __init__(self, cp, hard):
        self.cp = cp
        self.hard = hard

    def __call__(self):
        log.info(_TAG, "Reset %s" % ("Hard" if self.hard else "Soft"))
        self.cp.sessions.reset(self.hard)
