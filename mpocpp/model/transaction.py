# A running transaction, persisted in flash (tx<connector id>) so that a
# power cut can be reported with StopTransaction(PowerLoss) at the next boot.
import json
from mpocpp.util import fsutil
from mpocpp.util import log

_TAG = "tx"


class Transaction:
    def __init__(self, cid, txid, id_tag, parent, meter_start, start, reservation=None):
        self.cid = cid
        self.id = txid  # a local placeholder until StartTransaction is answered
        self.id_tag = id_tag
        self.parent = parent  # parentIdTag: the group that may stop it
        self.meter_start = meter_start
        self.start = start  # unix s
        self.reservation = reservation  # reservationId it was started on
        # StartTransaction.conf not Accepted and StopTransactionOnInvalidId false:
        self.invalid = False

    def to_json(self):
        return json.dumps({"cid": self.cid, "id": self.id, "idTag": self.id_tag,
                           "parent": self.parent, "meterStart": self.meter_start,
                           "start": self.start, "res": self.reservation,
                           "invalid": self.invalid})

    @staticmethod
    def from_json(data):
        d = json.loads(data)
        t = Transaction(d["cid"], d["id"], d["idTag"], d.get("parent"), d["meterStart"],
                        d["start"], d.get("res"))
        t.invalid = d.get("invalid", False)
        return t


def _path(flash_dir, cid):
    return "%s/tx%d" % (flash_dir, cid)


def save(flash_dir, tx):
    fsutil.write_atomic(_path(flash_dir, tx.cid), tx.to_json().encode())


def load(flash_dir, cid):
    data = fsutil.read(_path(flash_dir, cid))
    if not data:
        return None
    try:
        return Transaction.from_json(data)
    except (ValueError, KeyError, TypeError):
        log.warn(_TAG, "connector %d: unreadable transaction record dropped", cid)
        return None


def exists(flash_dir, cid):
    return fsutil.exists(_path(flash_dir, cid))


def drop(flash_dir, cid):
    fsutil.remove(_path(flash_dir, cid))

