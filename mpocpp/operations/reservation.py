# Reservation profile: ReserveNow and CancelReservation (OCPP 1.6 §5.13,
# §5.3); connector 0 when ReserveConnectorZeroSupported is true. The
# reservations themselves (matching, expiry) are in model/reservations.py.
from mpocpp.util import clock

_ACCEPTED = {"status": "Accepted"}
_REJECTED = {"status": "Rejected"}


class Reservation:
    def __init__(self, cfg, connectors, reservations):
        self._cfg = cfg
        self._cons = connectors
        self._res = reservations

    def ReserveNow(self, req):
        cid = req["connectorId"]
        rid = req["reservationId"]
        cons = self._cons
        res = self._res
        if self._cfg.get("FreeCharging"):
            return _REJECTED  # no authorization, nothing to reserve for
        if cid < 0 or cid >= len(cons) or \
                (cid == 0 and not self._cfg.get("ReserveConnectorZeroSupported")):
            return _REJECTED
        from mpocpp.util import timeparse
        try:
            expiry = timeparse.parse(req["expiryDate"])
        except ValueError:
            return _REJECTED
        conn = cons[cid]
        old = res.find(rid)
        if conn.fault is not None:
            return {"status": "Faulted"}
        if not conn.operative:
            return {"status": "Unavailable"}
        c0 = cons[0]
        if cid == 0:
            # The charge point: one connector must be free for it now.
            if old is not conn and (conn.reservation is not None or not res.free()):
                return self._none_free()
        elif old is not conn and (conn.reservation is not None or conn.tx is not None
                                  or conn.pending is not None or conn.plugged
                                  or conn.status not in ("Available", "Reserved")
                                  or (c0.reservation is not None and old is not c0
                                      and not res.free(conn))):
            # (the last free connector stays for connector 0's reservation)
            return {"status": "Occupied"}
        if expiry <= clock.now():
            return _REJECTED
        res.reserve(conn, rid, req["idTag"], req.get("parentIdTag"), expiry)
        return _ACCEPTED

    def _none_free(self):
        # Why connector 0 cannot be reserved: every connector Faulted, or
        # every one Unavailable, else Occupied.
        cons = self._cons[1:]
        faulted = unavailable = 0
        for c in cons:
            if c.fault is not None:
                faulted += 1
            elif not c.operative:
                unavailable += 1
        if faulted == len(cons):
            return {"status": "Faulted"}
        if unavailable == len(cons):
            return {"status": "Unavailable"}
        return {"status": "Occupied"}

    def CancelReservation(self, req):
        return _ACCEPTED if self._res.cancel(req["reservationId"]) else _REJECTED
