# Availability (OCPP 1.6 §5.2, §4.9): ChangeAvailability of a connector or
# of the whole charge point (connector 0), Scheduled while a transaction
# runs, and what the central system asked for kept in flash across reboots.
import json
from mpocpp.util import fsutil

ACCEPTED = "Accepted"
SCHEDULED = "Scheduled"
REJECTED = "Rejected"


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

    def change(self, cid, operative):
        # -> Accepted, Scheduled or Rejected.
        if cid < 0 or cid >= len(self._cons):
            return REJECTED
        cons = self._cons
        targets = cons if cid == 0 else [cons[cid]]
        busy = False
        for c in cons[1:]:
            if c.tx is not None:
                busy = True
        scheduled = False
        for c in targets:
            if not operative and (c.tx is not None or (c.id == 0 and busy)):
                # Inoperative waits for the transaction(s) to end.
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
        return SCHEDULED if scheduled else ACCEPTED

    def transaction_ended(self, conn):
        # A change answered Scheduled takes effect at the transaction's end;
        # connector 0's once no transaction is left.
        cons = self._cons
        for c in (conn, cons[0]):
            if c.scheduled is None:
                continue
            if c.id == 0:
                busy = False
                for x in cons[1:]:
                    if x.tx is not None:
                        busy = True
                if busy:
                    continue
            c.operative = c.scheduled
            c.scheduled = None
            c.update()
