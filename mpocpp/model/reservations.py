# Reservations (OCPP 1.6 §3.11, §5.13): which connector is held for which
# idTag (or its group, parentIdTag) until when, how a presented identity
# matches, and expiry. The ReserveNow / CancelReservation handlers are in
# operations/reservation.py; sessions ask matches() and take().
from mpocpp.util import clock
from mpocpp.util import log

_TAG = "reservation"


class Reservation:
    def __init__(self, rid, id_tag, parent, expiry):
        self.id = rid  # reservationId
        self.id_tag = id_tag
        self.parent = parent  # parentIdTag, or None
        self.expiry = expiry  # unix s


def same_tag(a, b):
    # idTags are compared case-insensitively (IdToken is a CiString20).
    return a is not None and b is not None and a.upper() == b.upper()


class Reservations:
    def __init__(self, connectors):
        self._cons = connectors  # index 0 = the charge point

    def find(self, rid):
        for c in self._cons[1:]:
            r = c.reservation
            if r is not None and r.id == rid:
                return c
        return None

    def reserve(self, conn, rid, id_tag, parent, expiry):
        # Place (or replace, same reservationId) a reservation: the caller
        # checked the connector can take it.
        old = self.find(rid)
        if old is not None and old is not conn:
            old.reservation = None
            old.update()
        conn.reservation = Reservation(rid, id_tag, parent, expiry)
        log.info(_TAG, "connector %d reserved (%d) for %s until %s", conn.id, rid, id_tag,
                 clock.iso(expiry))
        conn.update()

    def cancel(self, rid):
        c = self.find(rid)
        if c is None:
            return False
        c.reservation = None
        c.update()
        return True

    @staticmethod
    def matches(conn, id_tag, parent):
        # May this identity use the connector? Yes when it is not reserved, or
        # the idTag is the reservation's, or its parent is the reservation's.
        r = conn.reservation
        if r is None:
            return True
        return same_tag(r.id_tag, id_tag) or (parent is not None and same_tag(r.parent, parent))

    @staticmethod
    def may_match(conn, id_tag):
        # Could this idTag use the connector once its parent is known? The
        # reservation's idTag, or a reservation with a parentIdTag (§5.13).
        r = conn.reservation
        return r is None or same_tag(r.id_tag, id_tag) or r.parent is not None

    @staticmethod
    def take(conn):
        # A transaction starts on the connector: its reservation ends; -> the
        # reservationId for StartTransaction, or None.
        r = conn.reservation
        conn.reservation = None
        return None if r is None else r.id

    def tick(self, now):
        # Expiry (unix s now); True when a reservation ended.
        ended = False
        for c in self._cons[1:]:
            r = c.reservation
            if r is not None and now >= r.expiry:
                log.info(_TAG, "connector %d: reservation %d expired", c.id, r.id)
                c.reservation = None
                ended = True
                c.update()
        return ended
