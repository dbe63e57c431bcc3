# Reservation profile: ReserveNow and CancelReservation (OCPP 1.6 §5.13,
# §5.3). The reservations themselves (matching, expiry) are in
# model/reservations.py.
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
        if self._cfg.get("FreeCharging"):
            return _REJECTED  # no authorization, nothing to reserve for
        if cid < 1 or cid >= len(self._cons):
            return _REJECTED  # connector 0: ReserveConnectorZeroSupported is absent
        try:
            expiry = clock.parse(req["expiryDate"])
        except ValueError:
            return _REJECTED
        conn = self._cons[cid]
        old = self._res.find(rid)
        if conn.fault is not None:
            return {"status": "Faulted"}
        if not conn.operative:
            return {"status": "Unavailable"}
        if old is not conn and (conn.reservation is not None or conn.tx is not None
                                or conn.pending is not None or conn.plugged
                                or conn.status not in ("Available", "Reserved")):
            return {"status": "Occupied"}
        if expiry <= clock.now():
            return _REJECTED
        self._res.reserve(conn, rid, req["idTag"], req.get("parentIdTag"), expiry)
        return _ACCEPTED

    def CancelReservation(self, req):
        return _ACCEPTED if self._res.cancel(req["reservationId"]) else _REJECTED
