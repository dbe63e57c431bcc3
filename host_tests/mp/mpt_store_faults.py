# heap: 8M
# Power cuts at random points of every flash operation (record writes,
# acknowledgements, sector rotation / segment creation and deletion, erases)
# under both backends, the store and the queue on top. After each recovery:
# the store mounts, acknowledged records never come back, unacknowledged ones
# are all there exactly once and in order. STORE_FAULT_CUTS=N (per backend)
# raises the count for a long run, STORE_FAULT_SEED=N picks other cut points.
import gc
import os
import random
from mpt_store import Rig, rec, num
from mpt_msgqueue import QRig, start, stop, mv

_CUTS = int(os.getenv("STORE_FAULT_CUTS") or 3000)
_SEED = int(os.getenv("STORE_FAULT_SEED") or 0)  # another seed, other cut points


class Cutter:
    # on_op hook: after a random number of flash operations, cut the power
    # in the middle of the next one (a random prefix of it reaches the flash).
    def __init__(self, rnd, spread):
        self.rnd = rnd
        self.spread = spread
        self.kinds = {"w": 0, "e": 0}
        self.arm()

    def arm(self):
        self.left = self.rnd.randrange(1, self.spread)

    def __call__(self, kind, block, off, n):
        self.left -= 1
        if self.left:
            return None
        self.kinds[kind] += 1
        return self.rnd.randrange(n + 1)


def _recover(rig, cutter):
    # power up again until the recovery itself is not cut
    while True:
        cutter.arm()
        try:
            rig.dev.on_op = None
            s = rig.power()
            rig.dev.on_op = cutter
            return s
        except OSError:
            pass


def _store_faults(kind, seed):
    rnd = random.Random(seed) if hasattr(random, "Random") else random
    if rnd is random:
        random.seed(seed)
    rig = Rig(kind, blocks=4, capacity=4 * 4096)
    cutter = Cutter(rnd, 40)
    rig.dev.on_op = cutter
    s = rig.store
    live = []      # [(seq, num)] appended (returned) and not acknowledged
    nxt = 0        # next payload number
    cuts = 0
    during = {"append": 0, "ack": 0}
    while cuts < _CUTS:
        op = None
        try:
            if live and (rnd.randrange(3) == 0 or s.free() < 400):
                k = rnd.randrange(1, min(len(live), 8) + 1)
                op = ("ack", live[k - 1][0], k)
                s.ack(op[1])
                live = live[k:]
            else:
                op = ("append", nxt)
                q = s.append(rec(nxt, rnd.randrange(20, 400)))
                live.append((q, nxt))
                nxt += 1
            continue
        except OSError:
            cuts += 1
            during[op[0]] += 1
        s = _recover(rig, cutter)
        got = [(q, num(d)) for q, d in s.records()]
        nums = [x for _, x in got]
        exp = [x for _, x in live]
        if op[0] == "append":
            ok = nums == exp or nums == exp + [op[1]]
        else:
            ok = any(nums == exp[i:] for i in range(op[2] + 1))
        assert ok, (kind, cuts, op, exp, nums)
        assert s.count() == len(got)
        for i in range(1, len(got)):
            assert got[i][0] > got[i - 1][0]
        live = got
        if op[0] == "append" and nums and nums[-1] == op[1]:
            nxt += 1
        elif op[0] == "append":
            nxt += 1  # numbers need not be dense, only unique
        gc.collect()
    if kind == "ring":
        assert rig.dev.violations == 0
    print("%s store: %d cuts (during append %d, ack %d; in a program %d, in an erase %d), "
          "%d records, %d erases" % (kind, cuts, during["append"], during["ack"],
                                     cutter.kinds["w"], cutter.kinds["e"], nxt, rig.dev.erases))
    assert cutter.kinds["e"] > 0 and during["ack"] > 0


def test_ring_store_power_cuts():
    _store_faults("ring", _SEED + 1)


def test_lfs_store_power_cuts():
    _store_faults("lfs", _SEED + 2)


def _pending(q):
    # transaction messages still queued, read raw from the store:
    # (tag, placeholder of a Start / transactionId of the others), in order
    import json
    import struct
    out = []
    for seq, data in q._s[0].records():
        if data[0] != 1:
            continue
        if data[1] == 0:  # StartTransaction: placeholder, then the payload
            p = json.loads(bytes(data[6:]))
            out.append(("S%d" % p["meterStart"], struct.unpack_from("<i", data, 2)[0]))
            continue
        p = json.loads(bytes(data[2:]))
        if data[1] == 1:
            out.append(("T%d" % p["meterStop"], p["transactionId"]))
        else:
            out.append(("M%s" % p["meterValue"][0]["sampledValue"][0]["value"],
                        p["transactionId"]))
    return out


def _queue_faults(kind, seed, cuts_wanted):
    rnd = random.Random(seed) if hasattr(random, "Random") else random
    if rnd is random:
        random.seed(seed)
    rig = QRig(kind, txn_blocks=4, other_blocks=2, attempts=3, interval=0)
    cutter = Cutter(rnd, 30)
    rig.dev.on_op = cutter
    model = []     # tags of queued transaction messages, in order
    ph = None      # the open transaction's id (placeholder until answered)

    def learned(p, t):
        # the charger takes the real id as soon as it is known (contract)
        nonlocal ph
        if ph == p:
            ph = t

    rig.on_txid = learned
    q = rig.q
    n = 0
    txid = 100
    cuts = 0
    refused = 0
    unsure = set()
    while cuts < cuts_wanted:
        op = None
        try:
            if model and rnd.randrange(3) == 0:
                m = q.peek(0)
                qid, a = m.qid, m.action
                op = ("send", model[0])
                if a == "StartTransaction":
                    if q._s[0].free() < 64:  # cuts ate the reserve: the id may
                        unsure.add(q._hph)   # not be persisted (logged)
                    txid += 1
                    q.delivered(qid, {"transactionId": txid, "idTagInfo": {"status": "Accepted"}})
                elif rnd.randrange(4) == 0:
                    if q.failed(qid, 0):
                        model.pop(0)
                    continue
                else:
                    q.delivered(qid, {})
                model.pop(0)
            elif ph is None:
                if not q.can_start_transaction():
                    ph = "refused"
                    continue
                ph = q.new_placeholder()
                n += 1
                op = ("push", "S%d" % n)
                if q.push("StartTransaction", start(n), placeholder=ph) is None:
                    # only when cuts ate the reserve (a cut sector takes no more)
                    assert q._s[0].free() < 700
                    ph = "refused"
                    continue
                model.append(op[1])
            elif rnd.randrange(4) == 0:
                n += 1
                op = ("push", "T%d" % n)
                if ph != "refused":
                    if q.push("StopTransaction", stop(ph, n)) is not None:
                        model.append(op[1])
                    else:
                        assert q._s[0].free() < 700
                        refused += 1
                ph = None
            else:
                n += 1
                op = ("push", "M%d" % n)
                if ph != "refused" and q.push("MeterValues", mv(ph, n)) is not None:
                    model.append(op[1])
            continue
        except OSError:
            cuts += 1
        q = _recover(rig, cutter)
        rig.dev.on_op = None  # inspect without cuts
        got = _pending(q)
        rig.dev.on_op = cutter
        tags = [t for t, _ in got]
        if op[0] == "push":
            ok = tags == model or tags == model + [op[1]]
        else:
            ok = tags == model or tags == model[1:]
        assert ok, (kind, cuts, op, model, tags)
        # a Start gone means its id is known (persisted before it was acked)
        for t, i in got:
            if t[0] != "S" and i is not None and i <= -2 and i not in unsure:
                assert q.resolve(i) != i or any(g[1] == i for g in got if g[0][0] == "S"), (t, i)
        model = tags
        if type(ph) is int and ph <= -2 and not any(g[0][0] == "S" and g[1] == ph for g in got) \
                and q.resolve(ph) == ph:
            ph = "refused"  # its Start was cut before it was durable
    print("%s queue: %d cuts, %d messages, %d StopTransaction refused after cuts" % (
        kind, cuts, n, refused))
    return cuts


def test_queue_power_cuts_both_backends():
    c = _queue_faults("ring", _SEED + 3, _CUTS // 5) + _queue_faults("lfs", _SEED + 4, _CUTS // 5)
    print("queue: %d cuts" % c)
