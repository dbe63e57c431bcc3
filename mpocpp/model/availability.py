# Availability (OCPP 1.6 §5.2, §4.9): ChangeAvailability of a connector or
# of the whole charge point (connector 0), Scheduled while a transaction
# runs or a connector is Preparing (the §4.9 table has no Preparing ->
# Unavailable), and what the central system asked for kept in flash across
# reboots.
import json
from mpocpp.util import fsutil



class Availability:
    def __init__(self, flash_dir, connectors):
        self._path = flash_dir + "/availability"
        self._cons = connectors  # index 0 = the charge point

    def load(self):
        data = fsutil.read(self._path)
        if not data:
            return
        try:
            flags = json.loads(data)
        except ValueError:
            flags = None
        if not isinstance(flags, list):
            from mpocpp.util import log
            log.error("avail", "availability unreadable: every connector operative")
            return
        for c in self._cons:
            if c.id < len(flags):
                c.operative = bool(flags[c.id])

    def _save(self):
        # Scheduled changes included: a reboot applies them.
        flags = []
        for c in self._cons:
            flags.append(1 if (c.operative if c.scheduled is None else c.scheduled) else 0)
        fsutil.write_atomic(self._path, json.dumps(flags).encode())

    @staticmethod
    def _busy(c):
        # A transaction runs, or a session is being prepared (Preparing):
        # Inoperative waits.
        return c.tx is not None or c.derive() == "Preparing"

    def _any_busy(self):
        for c in self._cons[1:]:
            if self._busy(c):
                return True
        return False

    def change(self, cid, operative):
        # -> Accepted, Scheduled or Rejected.
        if cid < 0 or cid >= len(self._cons):
            return "Rejected"
        cons = self._cons
        targets = cons if cid == 0 else [cons[cid]]
        busy = self._any_busy()
        scheduled = False
        for c in targets:
            if not operative and (self._busy(c) or (c.id == 0 and busy)):
                # Inoperative waits for the transaction(s) to end, or for
                # a Preparing connector to be Available again.
                if c.operative:
                    c.scheduled = False
                    scheduled = True
                continue
            c.scheduled = None
            if c.operative != operative:
                c.operative = operative
                if not operative:
                    c.pending = None
        self._save()
        for c in targets:
            c.update()
        return "Scheduled" if scheduled else "Accepted"

    def settle(self, conn):
        # A change answered Scheduled takes effect once the connector has
        # neither a transaction nor a session being prepared (the end of the
        # transaction, or Preparing -> Available); connector 0's once no
        # connector is left busy. Called after every event of conn.
        cons = self._cons
        c0 = cons[0]
        if conn.scheduled is None and c0.scheduled is None:
            return
        for c in (conn, c0):
            if c.scheduled is None:
                continue
            if (c.id == 0 and self._any_busy()) or (c.id and self._busy(c)):
                continue
            c.operative = c.scheduled
            c.scheduled = None
            if not c.operative:
                c.pending = None
            c.update()
