# Core profile: handlers for the central system's Core CALLs. Each function
# is named after its OCPP action and returns the response payload.
import log
from rpc import Reply

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
    prev_sp = cp.cfg.get("SecurityProfile")
    status = cp.cfg.change(key, req["value"])
    log.info(_TAG, "ChangeConfiguration %s -> %s" % (key, status))
    if status == "Accepted":
        name = key.lower()
        if name == "authorizationkey":
            return {"status": status}, cp.link.reconnect
        if name == "securityprofile":
            # Reconnect with the new profile; falls back if it cannot connect.
            cp.link._sp_fallback = prev_sp
            return {"status": status}, cp.link.reconnect
    return {"status": status}


def DataTransfer(cp, req):
    h = cp.vendor_handlers.get(req["vendorId"])
    if h is None:
        return {"status": "UnknownVendorId"}
    return h(req.get("messageId"), req.get("data"))
