# Reservation profile: ReserveNow and CancelReservation. The reservation
# lives on the connector; session.py honours it (only its idTag or parent may
# start, StartTransaction carries reservationId) and ends it on expiry.
from mpocpp.util import clock
from mpocpp.util import log

_TAG = "reservation"


def _find(cp, rid):
    for c in cp.connectors[1:]:
        if c.reservation is not None and c.reservation[0] == rid:
            return c
    return None


def ReserveNow(cp, req):
    cid = req["connectorId"]
    rid = req["reservationId"]
    if cp.cfg.get("FreeCharging"):
        return {"status": "Rejected"}  # no authorization, nothing to reserve for
    if cid < 1 or cid >= len(cp.connectors):
        return {"status": "Rejected"}  # connector 0: ReserveConnectorZeroSupported is absent
    try:
        expiry = clock.parse(req["expiryDate"])
    except ValueError:
        return {"status": "Rejected"}
    conn = cp.connectors[cid]
    old = _find(cp, rid)
    if conn.fault is not None:
        return {"status": "Faulted"}
    if not conn.operative:
        return {"status": "Unavailable"}
    if old is not conn and (conn.reservation is not None or conn.tx is not None
                            or conn.pending is not None or conn.plugged
                            or conn.status not in ("Available", "Reserved")):
        return {"status": "Occupied"}
    if expiry <= clock.now():
        return {"status": "Rejected"}
    if old is not None and old is not conn:
        old.reservation = None  # same reservationId: replaced
        old.update()
    conn.reservation = (rid, req["idTag"], req.get("parentIdTag"), expiry)
    log.info(_TAG, "connector %d reserved (%d) for %s until %s" % (
        cid, rid, req["idTag"], req["expiryDate"]))
    conn.update()
    return {"status": "Accepted"}


def CancelReservation(cp, req):
    conn = _find(cp, req["reservationId"])
    if conn is None:
        return {"status": "Rejected"}
    conn.reservation = None
    conn.update()
    return {"status": "Accepted"}
