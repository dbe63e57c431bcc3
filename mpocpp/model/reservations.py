# Reservations (OCPP 1.6 §3.11, §5.13): which connector is held for which
# idTag (or its group, parentIdTag) until when, how a presented identity
# matches, and expiry. A reservation of connector 0 (ReserveConnectorZero-
# Supported) holds no connector in particular: any connector serves its
# identity, and another identity may take a connector only while one more
# stays free. The ReserveNow / CancelReservation handlers are in
# operations/reservation.py; sessions ask matches() and take().
from mpocpp.util import clock
from mpocpp.util import log
from mpocpp.model.authorization import same_tag

_TAG = "reservation"


class Reservation:
    def __init__(self, rid, id_tag, parent, expiry):
        self.id = rid  # reservationId
        self.id_tag = id_tag
        self.parent = parent  # parentIdTag, or None
        self.expiry = expiry  # unix s


def _is_for(r, id_tag, parent):
    # The reservation's idTag, or its group.
    return same_tag(r.id_tag, id_tag) or (parent is not None and same_tag(r.parent, parent))


class Reservations:
    def __init__(self, connectors):
        self._cons = connectors  # index 0 = the charge point

    def find(self, rid):
        for c in self._cons:
            r = c.reservation
            if r is not None and r.id == rid:
                return c
        return None

    def free(self, other_than=None):
        # Connectors a connector-0 reservation could use now: no transaction,
        # no reservation of their own, nobody waiting or locked, no fault,
        # operative, no EV left after a session.
        n = 0
        for c in self._cons[1:]:
            if c is not other_than and c.tx is None and c.reservation is None and \
                    c.pending is None and c.locked_for is None and c.fault is None and \
                    c.operative and not c.ev_error and not (c.finishing and c.plugged):
                n += 1
        return n

    def reserve(self, conn, rid, id_tag, parent, expiry):
        # Place (or replace, same reservationId) a reservation: the caller
        # checked the connector (0: the charge point) can take it.
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

    def matches(self, conn, id_tag, parent):
        # May this identity use the connector? Its own reservation decides;
        # else a reservation of connector 0 for another identity leaves it
        # only while another connector stays free.
        r = conn.reservation
        if r is not None:
            return _is_for(r, id_tag, parent)
        r = self._cons[0].reservation
        if r is None or _is_for(r, id_tag, parent):
            return True
        return self.free(conn) > 0

    def may_match(self, conn, id_tag):
        # Could this idTag use the connector once its parent is known? Not
        # reserved for another, or reserved with a parentIdTag (§5.13).
        r = conn.reservation
        if r is not None:
            return same_tag(r.id_tag, id_tag) or r.parent is not None
        r = self._cons[0].reservation
        if r is None or same_tag(r.id_tag, id_tag) or r.parent is not None:
            return True
        return self.free(conn) > 0

    def take(self, conn, id_tag, parent):
        # A transaction starts on the connector for this identity: the
        # reservation it used ends (the connector's own, else connector 0's
        # when it is for this identity); -> the reservationId for
        # StartTransaction, or None.
        r = conn.reservation
        if r is not None:
            conn.reservation = None
            return r.id
        c0 = self._cons[0]
        r = c0.reservation
        if r is not None and _is_for(r, id_tag, parent):
            log.info(_TAG, "connector 0 reservation %d used on connector %d", r.id, conn.id)
            c0.reservation = None
            c0.update()
            return r.id
        return None

    def tick(self, now):
        # Expiry (unix s now); True when a reservation ended.
        ended = False
        for c in self._cons:
            r = c.reservation
            if r is not None and now >= r.expiry:
                log.info(_TAG, "connector %d: reservation %d expired", c.id, r.id)
                c.reservation = None
                ended = True
                c.update()
        return ended
