# SmartCharging profile: SetChargingProfile, ClearChargingProfile and
# GetCompositeSchedule. The installed profiles and the limits they impose
# are in model/smartcharging.py, the schedule maths in
# model/chargingprofiles.py.
from mpocpp.util import clock
from mpocpp.util import log
from mpocpp.protocol.rpc import Reply

_TAG = "smart"
_PCV = "PropertyConstraintViolation"
_ACCEPTED = {"status": "Accepted"}
_REJECTED = {"status": "Rejected"}


def _rejected(why):
    log.info(_TAG, "SetChargingProfile rejected: %s", why)
    return _REJECTED


class SmartCharging:
    def __init__(self, connectors, sessions, smart):
        self._cons = connectors
        self._sessions = sessions
        self._smart = smart  # model.smartcharging.SmartCharging

    def SetChargingProfile(self, req):
        cid = req["connectorId"]
        if cid < 0 or cid >= len(self._cons):
            raise Reply(_PCV, "connectorId %d out of range" % cid)  # E3.39
        s = self._smart
        chp = s.chp
        try:
            p = s.check(cid, req["csChargingProfiles"])
        except ValueError as e:
            return _rejected(str(e))
        if p.purpose == chp.CP_MAX and cid != 0:
            return _rejected("ChargePointMaxProfile only on connector 0")
        if p.purpose == chp.TX:
            if cid == 0:
                return _rejected("TxProfile needs a connector")
            conn = self._cons[cid]
            if conn.tx is None:
                return _rejected("no transaction on connector %d" % cid)
            if p.txid is not None and self._sessions.find_tx(p.txid) is not conn:
                return _rejected("transaction %d is not running on connector %d" % (p.txid, cid))
        if not s.room_for(p):
            return _rejected("MaxChargingProfilesInstalled reached")
        gone = s.set.install(p)
        log.info(_TAG, "profile %d (%s, stack %d) set on connector %d", p.id,
                 chp.PURPOSES[p.purpose], p.stack, cid)
        s.save_if_stored(p.purpose, gone)
        s.apply()
        return _ACCEPTED

    def ClearChargingProfile(self, req):
        s = self._smart
        chp = s.chp
        purpose = req.get("chargingProfilePurpose")
        removed = s.set.clear(req.get("id"), req.get("connectorId"),
                              None if purpose is None else chp.PURPOSES.index(purpose),
                              req.get("stackLevel"))
        if not removed:
            return {"status": "Unknown"}
        log.info(_TAG, "%d charging profiles cleared", len(removed))
        s.save_if_stored(chp.TX, removed)
        s.apply()
        return _ACCEPTED

    def GetCompositeSchedule(self, req):
        cid = req["connectorId"]
        dur = req["duration"]
        unit = req.get("chargingRateUnit") or "A"
        if unit != "A" and unit != "W":
            raise Reply(_PCV, "chargingRateUnit must be A or W")  # E3.24
        if cid < 0 or cid >= len(self._cons) or dur < 0:
            return _REJECTED
        s = self._smart
        t0 = clock.now()
        active = s.fill_rels(t0)
        share = active if cid == 0 or self._cons[cid].tx is not None else active + 1
        periods = s.set.composite(cid, t0, dur, s.rels, share, unit == "W")
        # E3.57: no startSchedule; scheduleStart says when it begins.
        return {"status": "Accepted", "connectorId": cid, "scheduleStart": clock.iso(t0),
                "chargingSchedule": {"duration": dur, "chargingRateUnit": unit,
                                     "chargingSchedulePeriod": periods}}
