# The message queue over both store backends: order, priorities, retry
# back-off, drop after attempts, placeholder transaction ids, space rules,
# recovery after a reboot.
from mpocpp_board.norflash import NorFlash
from fakes import fragmented_heap
from mpt_store import Rig, both
from mpocpp.queue.ring import RingStore
from mpocpp.queue.lfs import LfsStore
from mpocpp.queue.messages import MessageQueue


class QRig(Rig):
    # A queue with a transaction store and an "other" store on one flash;
    # power() (from Rig) starts a new power epoch and returns a new queue.
    def __init__(self, kind, txn_blocks=14, other_blocks=2, attempts=3, interval=10,
                 reserve=1024):
        self.tb = txn_blocks
        self.ob = other_blocks
        self.attempts = attempts
        self.interval = interval
        self.reserve = reserve
        self.on_txid = None  # what the charger does with a transactionId learnt
        Rig.__init__(self, kind, txn_blocks + other_blocks)

    def _txid(self, placeholder, txid):
        if self.on_txid is not None:
            self.on_txid(placeholder, txid)

    @property
    def q(self):
        return self.store

    def _new(self):
        if self.kind == "ring":
            stores = (RingStore(self.dev, 0, self.tb), RingStore(self.dev, self.tb, self.ob))
        else:
            stores = (LfsStore("/flash/qt", self.tb * 4096), LfsStore("/flash/qo", self.ob * 4096))
        q = MessageQueue(stores, lambda: self.attempts, lambda: self.interval, self.reserve,
                         on_transaction_id=self._txid)
        q.mount()
        return q


def mv(txid, wh):
    p = {"connectorId": 1, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z",
         "sampledValue": [{"value": str(wh)}]}]}
    if txid is not None:
        p["transactionId"] = txid
    return p


def start(n):
    return {"connectorId": 1, "idTag": "TAG%d" % n, "meterStart": n,
            "timestamp": "2026-01-01T00:00:00Z"}


def stop(txid, n):
    return {"transactionId": txid, "meterStop": n, "timestamp": "2026-01-01T01:00:00Z",
            "reason": "Local"}


def deliver(q, now=0, answer=None):
    h = q.peek(now)
    assert h is not None
    qid, action, payload = h.qid, h.action, h.payload
    q.delivered(qid, answer if answer is not None else {})
    return action, payload


def test_transaction_messages_first_and_in_order():
    def t(kind):
        q = QRig(kind).q
        q.push("MeterValues", mv(None, 1), txn=False)
        ph = q.new_placeholder()
        assert ph <= -2
        q.push("StartTransaction", start(1), placeholder=ph)
        q.push("MeterValues", mv(ph, 2))
        q.push("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                      "status": "Charging"}, txn=False)
        q.push("StopTransaction", stop(ph, 3))
        q.push("DataTransferX", {"a": 1}, txn=False)  # an action not in the table
        assert len(q) == 6 and q.pending_txn() == 3
        got = [deliver(q, answer={"transactionId": 77, "idTagInfo": {"status": "Accepted"}})[0]]
        got += [deliver(q)[0] for _ in range(5)]
        assert got == ["StartTransaction", "MeterValues", "StopTransaction",
                       "MeterValues", "StatusNotification", "DataTransferX"], got
        assert q.peek(0) is None and len(q) == 0 and q.due_in_ms(0) is None
    both(t)


def test_placeholder_resolved_after_start_answer():
    def t(kind):
        r = QRig(kind)
        q = r.q
        ph = q.new_placeholder()
        q.push("StartTransaction", start(1), placeholder=ph)
        q.push("MeterValues", mv(ph, 2))
        q.push("StopTransaction", stop(ph, 3))
        # the head is the Start; nothing else may go before its answer
        assert q.peek(0).action == "StartTransaction"
        seen = []
        r.on_txid = lambda p, t: seen.append((p, t))
        deliver(q, answer={"transactionId": 4242, "idTagInfo": {"status": "Accepted"}})
        assert seen == [(ph, 4242)] and q.resolve(ph) == 4242 and q.resolve(5) == 5
        # the mapping is persisted: a reboot keeps it
        q = r.power()
        assert q.resolve(ph) == 4242
        a, p = deliver(q)
        assert (a, p["transactionId"]) == ("MeterValues", 4242)
        # a message pushed now with the placeholder is stored with the real id
        q.push("MeterValues", mv(ph, 4))
        a, p = deliver(q)
        assert (a, p["transactionId"]) == ("StopTransaction", 4242)
        a, p = deliver(q)
        assert p["transactionId"] == 4242
        assert len(q) == 0 and q.pending_txn() == 0
    both(t)


def test_retry_back_off_and_drop():
    def t(kind):
        q = QRig(kind, attempts=3, interval=10).q
        q.push("StopTransaction", stop(5, 10))
        q.push("StopTransaction", stop(6, 20))
        q.push("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                      "status": "Available"}, txn=False)
        assert q.due_in_ms(1000) == 0
        qid = q.peek(1000).qid
        assert q.failed(qid, 1000) is False
        # waiting 10 s: the other queued message may go meanwhile, not the next Stop
        assert q.peek(1000).action == "StatusNotification"
        deliver(q, 1000)
        assert q.due_in_ms(4000) == 7000
        assert q.peek(10999) is None
        assert q.peek(11000).qid == qid
        assert q.failed(qid, 11000) is False  # second failure: 2 x 10 s
        assert q.peek(30999) is None
        assert q.peek(31000).qid == qid
        assert q.failed(qid, 31000) is True  # third: dropped
        m = q.peek(31000)
        a, p = m.action, m.payload
        assert a == "StopTransaction" and p["transactionId"] == 6
        assert q.failed(q.peek(31000).qid, 31000) is False
        assert q.peek(31001) is None
        assert q.due_in_ms(31001) == 9999
        # a stale or unknown qid is ignored
        assert q.failed(12345, 0) is False
        q.delivered(12345, {})
        assert len(q) == 1
    both(t)


def test_attempts_survive_a_reboot():
    # TransactionMessageAttempts counts the attempts made before a power
    # cut too (issue 12): 2 failures, a reboot, 1 more drops the message.
    # The attempt records are not messages and go once read past.
    def t(kind):
        r = QRig(kind, attempts=3, interval=10)
        q = r.q
        q.push("StopTransaction", stop(5, 10))
        q.push("StopTransaction", stop(6, 20))
        assert q.failed(q.peek(0).qid, 0) is False
        q = r.power()
        assert len(q) == 2 and q.pending_txn() == 2
        assert q.failed(q.peek(0).qid, 0) is False  # the second attempt
        q = r.power()
        assert q.failed(q.peek(0).qid, 0) is True  # the third: dropped
        assert q.peek(0).payload["transactionId"] == 6
        q = r.power()  # the next head starts from 0 (the old records are not its)
        assert q.failed(q.peek(0).qid, 0) is False
        q = r.power()
        assert q.failed(q.peek(0).qid, 0) is False
        deliver(q, 10 ** 6)
        assert len(q) == 0 and q.pending_txn() == 0
        q = r.power()
        assert len(q) == 0 and q.peek(0) is None
    both(t)


def test_attempt_records_never_eat_the_reserve():
    # With the store down to its StopTransaction reserve, failed attempts
    # are counted in RAM only: the reserve stays whole for the Stops.
    def t(kind):
        r = QRig(kind, txn_blocks=4, other_blocks=2, attempts=1000, interval=0, reserve=1024)
        q = r.q
        n = 0
        while q.push("MeterValues", mv(7, n)) is not None:
            n += 1
        for i in range(200):
            assert q.failed(q.peek(10 ** 9).qid, 10 ** 9) is False
        assert q._s[0].free() >= 1024  # the records stopped at the reserve
        assert q.push("StopTransaction", stop(7, 99)) is not None
    both(t)


def test_has_start_for_the_boot_check():
    # A placeholder whose Start is queued, or answered (mapped), is known
    # after a reboot; one whose Start never reached the queue is not.
    def t(kind):
        r = QRig(kind)
        q = r.q
        ph = q.new_placeholder()
        q.push("StartTransaction", start(1), placeholder=ph)
        other = q.new_placeholder()
        q = r.power()
        assert q.has_start(ph) and not q.has_start(other)
        q.push("MeterValues", mv(ph, 1))  # keeps the mapping record in the store
        deliver(q, 0, {"transactionId": 42, "idTagInfo": {"status": "Accepted"}})
        assert q.has_start(ph)
        q = r.power()
        assert q.has_start(ph) and not q.has_start(other)
        # (once the mapping is read past, the transaction's file holds 42:
        # sessions.recover asks only about placeholders)
    both(t)


def test_start_dropped_gives_minus_one():
    def t(kind):
        r = QRig(kind, attempts=1)
        q = r.q
        ph = q.new_placeholder()
        q.push("StartTransaction", start(1), placeholder=ph)
        q.push("MeterValues", mv(ph, 2))
        q.push("StopTransaction", stop(ph, 3))
        assert q.failed(q.peek(0).qid, 0) is True
        assert q.resolve(ph) == -1
        q = r.power()
        a, p = deliver(q)
        assert (a, p["transactionId"]) == ("MeterValues", -1)
        a, p = deliver(q)
        assert (a, p["transactionId"]) == ("StopTransaction", -1)
    both(t)


def test_answer_without_transaction_id_and_unknown_placeholder():
    def t(kind):
        q = QRig(kind).q
        ph = q.new_placeholder()
        q.push("StartTransaction", start(1), placeholder=ph)
        q.push("StopTransaction", stop(ph, 3))
        q.push("StopTransaction", stop(-99, 3))  # its Start was never queued
        deliver(q, answer={"idTagInfo": {"status": "Accepted"}})
        assert deliver(q)[1]["transactionId"] == -1
        assert deliver(q)[1]["transactionId"] == -1
    both(t)


def test_placeholders_unique_across_reboots():
    def t(kind):
        r = QRig(kind)
        seen = set()
        for boot in range(3):
            q = r.q
            for i in range(3):
                ph = q.new_placeholder()
                assert ph <= -2 and ph not in seen
                seen.add(ph)
                q.push("StartTransaction", start(i), placeholder=ph)
            if boot == 1:  # everything delivered: the store is empty
                while q.peek(0):
                    deliver(q, answer={"transactionId": 1})
                    while q.peek(0) and q.peek(0).action != "StartTransaction":
                        deliver(q)
            r.power()
        # a Start pushed without a placeholder gets a fresh one
        q = r.q
        q.push("StartTransaction", start(9))
        assert q.new_placeholder() not in seen
    both(t)


def test_survives_power_cycle_with_queue():
    def t(kind):
        r = QRig(kind)
        q = r.q
        for n in range(3):  # three offline transactions
            ph = q.new_placeholder()
            q.push("StartTransaction", start(n), placeholder=ph)
            for k in range(4):
                q.push("MeterValues", mv(ph, n * 100 + k))
            q.push("StopTransaction", stop(ph, n * 100 + 99))
        q.push("MeterValues", mv(None, 5), txn=False)
        q = r.power()
        assert len(q) == 19 and q.pending_txn() == 18
        order = []
        txid = 1000
        while q.peek(0):
            m = q.peek(0)
            qid, a, p = m.qid, m.action, m.payload
            if a == "StartTransaction":
                txid += 1
                q.delivered(qid, {"transactionId": txid, "idTagInfo": {"status": "Accepted"}})
                order.append((a, p["meterStart"]))
            else:
                q.delivered(qid, {})
                order.append((a, p.get("transactionId")))
            if len(order) == 8:
                q = r.power()  # reboot half-way
        exp = []
        for n in range(3):
            exp.append(("StartTransaction", n))
            exp += [("MeterValues", 1001 + n)] * 4 + [("StopTransaction", 1001 + n)]
        exp.append(("MeterValues", None))
        assert order == exp, order
    both(t)


def test_other_messages_dropped_oldest_first_when_full():
    def t(kind):
        q = QRig(kind, txn_blocks=4, other_blocks=2).q
        for i in range(200):  # ~140 bytes each: far more than 8 KiB
            assert q.push("MeterValues", mv(None, i), txn=False) is not None
        n = len(q)
        assert 25 < n <= 62, n  # between one and two sectors or segments
        first = q.peek(0).payload["meterValue"][0]["sampledValue"][0]["value"]
        assert int(first) == 200 - n  # the newest ones are kept
    both(t)


def test_transaction_space_rules():
    def t(kind):
        q = QRig(kind, txn_blocks=3, other_blocks=2, reserve=1024).q
        assert q.can_start_transaction()
        ph = q.new_placeholder()
        assert q.push("StartTransaction", start(1), placeholder=ph) is not None
        i = 0
        while q.push("MeterValues", mv(ph, i)) is not None:
            i += 1
        assert i > 10
        # the reserve is kept: no new transaction, but the Stop still fits
        assert not q.can_start_transaction()
        assert q.push("StartTransaction", start(2)) is None
        assert q.push("StopTransaction", stop(ph, 9)) is not None
        # other messages still go to their own store
        assert q.push("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                             "status": "Finishing"}, txn=False) is not None
        # bad input is refused, not a crash
        assert q.push("MeterValues", "not a dict") is None
        assert q.push("MeterValues", {"v": object()}) is None
        assert q.push("x" * 100, {}) is None
        # delivering makes room again
        deliver(q, answer={"transactionId": 3})
        while q.pending_txn():
            deliver(q)
        assert q.can_start_transaction()
    both(t)


def test_single_store_and_bad_records():
    d = NorFlash(8 * 4096)
    s = RingStore(d, 0, 8)
    q = MessageQueue(s, lambda: 3, lambda: 10)
    q.mount()
    q.push("StatusNotification", {"connectorId": 0, "errorCode": "NoError",
                                  "status": "Available"}, txn=False)
    s.append(b"\x01\x02{not json")   # records that do not decode
    s.append(b"\x07junk")
    q.push("StopTransaction", stop(3, 1))
    assert len(q) == 4
    d = d.reopen()
    s = RingStore(d, 0, 8)
    q = MessageQueue(s, lambda: 3, lambda: 10)
    q.mount()
    assert deliver(q)[0] == "StatusNotification"  # one store: plain FIFO
    assert deliver(q)[0] == "StopTransaction"      # bad ones dropped and logged
    assert len(q) == 0


def _big_behind_a_status():
    # A queue holding a StatusNotification, then a MeterValues of 60 values
    # (a record of about 2 KB): -> (queue, the MeterValues payload).
    d = NorFlash(8 * 4096)
    q = MessageQueue(RingStore(d, 0, 8), lambda: 3, lambda: 10)
    q.mount()
    big = mv(7, 1)
    big["meterValue"][0]["sampledValue"] = [{"value": "%d" % i, "measurand": "Voltage"}
                                            for i in range(60)]
    q.push("StatusNotification", {"connectorId": 0, "errorCode": "NoError",
                                  "status": "Available"})
    q.push("MeterValues", big)
    return q, big


def test_out_of_heap_a_record_stays_in_flash():
    # Reading the next record needs a block of its size: when the heap has
    # none, the record is neither dropped nor skipped; it is read again a
    # moment later, and sent as it was queued.
    import gc
    import time
    q, big = _big_behind_a_status()
    assert q.peek(0).action == "StatusNotification"
    kept = fragmented_heap(200)  # no block for the record
    try:
        deliver(q)
        ok = q.peek(time.ticks_ms()) is None  # not read yet, nothing dropped
        n = len(q)
    finally:
        del kept  # the heap given back
        gc.collect()
    assert ok and n == 1
    assert q.due_in_ms(time.ticks_ms()) > 0  # the sender looks again later
    later = time.ticks_add(time.ticks_ms(), 1500)
    assert deliver(q, later) == ("MeterValues", big)
    assert len(q) == 0


def test_a_record_the_heap_never_fits_is_counted_once_and_read_less_often():
    # Only the first failed read of a record counts toward the charger's
    # restart out of heap (log.oom): a record too large for any heap the
    # board has would otherwise restart the charger at every boot. The
    # reads back off (1, 2, 4 ... 60 s); new messages wait behind it.
    import gc
    import time
    from mpocpp.util import log
    q, big = _big_behind_a_status()
    counted = []
    waits = []
    got = []
    log.oom = counted.append
    kept = fragmented_heap(200)  # no block for the record
    try:
        deliver(q)  # the next record cannot be read: counted
        for _ in range(6):
            w = q.due_in_ms(time.ticks_ms())
            waits.append(w)
            t = time.ticks_add(time.ticks_ms(), w)
            got.append(q.peek(t))  # read again when due: still no heap
        q.push("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                      "status": "Available"})
        n = len(q)
    finally:
        log.oom = None
        del kept
        gc.collect()
    assert got == [None] * 6 and n == 2, (got, n)
    assert len(counted) == 1, counted
    assert all(0 <= e - w < 200 for w, e in zip(waits, (1000, 2000, 4000, 8000, 16000,
                                                        32000))), waits
    later = time.ticks_add(t, 60000)
    assert deliver(q, later) == ("MeterValues", big)  # the heap back: in order
    assert deliver(q, later)[0] == "StatusNotification"
    assert len(q) == 0
