# Core profile: the central system's Core CALLs. The messages Core sends
# are made where they happen: BootNotification and Heartbeat in
# protocol/registration.py, Authorize in model/authrules.py,
# Start/StopTransaction in model/sessionflow.py, MeterValues in
# metering/metervalues.py, StatusNotification in model/connector.py (through
# queue/outbox.py).
from mpocpp.util import log
from mpocpp.util import modules
from mpocpp.protocol.rpc import Reply

_TAG = "core"
# The rules of ChangeAvailability (no state of their own: it is in the
# connectors and in flash), loaded for that CALL only.
_AVAILABILITY = "mpocpp.model.availability"
_ACCEPTED = {"status": "Accepted"}
_REJECTED = {"status": "Rejected"}


class Core:
    # smart(): the model.smartcharging.SmartCharging (made on first use);
    # configured(name): a key changed (its effects on the rest);
    # reset(hard): the Reset procedure, run after the answer.
    def __init__(self, cfg, connectors, sessions, authorization, registration,
                 link, smart, configured, reset):
        self._cfg = cfg
        self._cons = connectors
        self._sessions = sessions
        self._auth = authorization
        self._reg = registration
        self._link = link
        self._smart = smart
        self._configured = configured
        self._reset = reset

    def GetConfiguration(self, req):
        keys = req.get("key")
        cfg = self._cfg
        if keys and len(keys) > cfg.max_keys():
            raise Reply("OccurenceConstraintViolation", "more than GetConfigurationMaxKeys keys")
        known, unknown = cfg.get_configuration(keys)
        res = {"configurationKey": known}
        if unknown:
            res["unknownKey"] = unknown
        return res

    def ChangeConfiguration(self, req):
        key = req["key"]
        status = self._cfg.change(key, req["value"])
        log.info(_TAG, "ChangeConfiguration %s -> %s", key, status)
        if status != "Accepted" and status != "RebootRequired":
            return {"status": status}
        name = self._cfg.canonical(key)
        self._configured(name)
        if name == "AuthorizationKey":
            return {"status": status}, self._link.reconnect
        if name == "SecurityProfile":
            # Reconnect with the new profile; falls back if it cannot connect.
            return {"status": status}, self._link.try_security_profile
        return {"status": status}

    def DataTransfer(self, req):
        # No vendor extensions in this firmware.
        return {"status": "UnknownVendorId"}

    def ClearCache(self, req):
        if not self._cfg.get("AuthorizationCacheEnabled"):
            return _REJECTED  # no cache in use (errata E3.23)
        try:
            self._auth.store().cache_clear()
        except Exception as e:
            log.exc(_TAG, "ClearCache", e)
            return _REJECTED
        finally:
            self._auth.done()
        return _ACCEPTED

    def ChangeAvailability(self, req):
        cid = req["connectorId"]
        try:
            av = modules.load(_AVAILABILITY).Availability(self._cfg.dir, self._cons)
            st = av.change(cid, req["type"] == "Operative")
        finally:
            modules.release(_AVAILABILITY)
        log.info(_TAG, "ChangeAvailability %d %s -> %s", cid, req["type"], st)
        return {"status": st}

    def RemoteStartTransaction(self, req):
        if not self._reg.accepted:
            return _REJECTED  # Pending: no remote control (§4.2)
        cid = req.get("connectorId")
        tag = req["idTag"]
        if cid is not None and (cid < 1 or cid >= len(self._cons)):
            return _REJECTED
        profile = req.get("chargingProfile")
        if profile is not None and not self._cfg.supports("SmartCharging"):
            log.info(_TAG, "RemoteStartTransaction: chargingProfile ignored (no SmartCharging)")
            profile = None  # §5.11: ignored by a charge point without smart charging
        if profile is not None and (profile.get("chargingProfilePurpose") != "TxProfile" or
                                    not self._smart().remote_profile_ok(profile, cid)):
            return _REJECTED
        st = self._sessions.remote_start(tag, cid, profile)
        log.info(_TAG, "RemoteStartTransaction %s -> %s", tag, st)
        return {"status": st}

    def RemoteStopTransaction(self, req):
        if not self._reg.accepted:
            return _REJECTED
        conn = self._sessions.find_tx(req["transactionId"])
        if conn is None:
            return _REJECTED
        return _ACCEPTED, _Stop(self._sessions, conn)

    def Reset(self, req):
        hard = req["type"] == "Hard"
        log.info(_TAG, "Reset %s", req["type"])
        return _ACCEPTED, _Reset(self._reset, hard)

    async def UnlockConnector(self, req):
        cid = req["connectorId"]
        if cid < 1 or cid >= len(self._cons):
            return {"status": "NotSupported"}  # errata E3.87
        conn = self._cons[cid]
        if not conn.has_lock:
            return {"status": "NotSupported"}
        ok = await self._sessions.unlock(conn)
        return {"status": "Unlocked" if ok else "UnlockFailed"}


class _Stop:
    # Follow-up run once the answer has been sent.
    def __init__(self, sessions, conn):
        self.sessions = sessions
        self.conn = conn

    def __call__(self):
        self.sessions.stop(self.conn, "Remote")


class _Reset:
    def __init__(self, reset, hard):
        self.reset = reset
        self.hard = hard

    def __call__(self):
        self.reset(self.hard)
