# The energy registers read back at boot (imported by Meter.load for it):
# of the two slots meter.0 and meter.1, which meter.py writes alternately
# (each with a sequence number and a CRC), the valid one written last.
import binascii
import json

from mpocpp.util import fsutil
from mpocpp.util import log

_TAG = "meter"


class _Saved:
    # One slot's content: its sequence number and {connector_id: Wh}.
    def __init__(self, seq, wh):
        self.seq = seq
        self.wh = wh


def newest(flash_dir):
    # -> the _Saved of the valid slot with the highest sequence, or None.
    best = None
    for slot in (0, 1):
        r = read_slot(flash_dir, slot)
        if r is not None and (best is None or r.seq > best.seq):
            best = r
    return best


def read_slot(flash_dir, slot):
    # -> _Saved, or None when the slot is missing or corrupt (logged).
    raw = fsutil.read("%s/meter.%d" % (flash_dir, slot))
    if raw is None:
        return None
    try:
        body, crc, _ = raw.decode().split("\n")
        if int(crc, 16) != binascii.crc32(body.encode()) & 0xFFFFFFFF:
            raise ValueError("crc")
        d = json.loads(body)
        seq = d["seq"]
        regs = {}
        for k, v in d["wh"].items():
            if not isinstance(v, int) or v < 0:
                raise ValueError("register %r" % (v,))
            regs[int(k)] = v
        if not isinstance(seq, int):
            raise ValueError("seq")
        return _Saved(seq, regs)
    except Exception as e:
        log.exc(_TAG, "slot %d unreadable", e, slot)
        return None
