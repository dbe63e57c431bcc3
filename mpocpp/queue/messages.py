# Persistent queue of OCPP messages (CALLs the charger sends), over one or
# two record stores (store_lfs.LfsStore or store_ring.RingStore). No
# networking here: the sender (sender.py) peeks, sends, and reports back.
#
#   q = MessageQueue(stores, max_attempts_fn, retry_interval_fn, reserve=1024,
#                    on_transaction_id=None, wake=None)
#       stores: (txn_store, other_store), or one store for everything
#       on_transaction_id(placeholder, txid): a StartTransaction was answered
#       wake: an asyncio.Event set when a message is pushed (the sender's)
#   q.mount()
#   qid = q.push(action, payload, txn=True, placeholder=None)
#       persisted when it returns; None (logged) when refused for space
#   q.can_start_transaction() -> bool
#   q.peek(now_ms) -> Message (.qid .action .payload .txn) or None
#   q.due_in_ms(now_ms) -> ms until peek has something (0 now), None if empty
#   q.delivered(qid, response_payload)
#   q.failed(qid, now_ms) -> True when the message was dropped
#   q.new_placeholder() -> int;  q.resolve(txid) -> int
#   q.has_stop(txid, since=0) -> a StopTransaction of it is queued (boot check)
#   q.has_start(placeholder) -> its StartTransaction is queued or answered (boot check)
#   len(q), q.pending_txn()
#
# Transaction messages (StartTransaction, StopTransaction, MeterValues with a
# transactionId) live in the first store, strictly in order; the rest in the
# second store, whose oldest records are dropped when it is full. Both are
# FIFO logs, so acknowledging is always "everything up to this sequence".
# See docs/queue.md for the formats and rules.
from micropython import const
import json
import struct
import time
from mpocpp.util import log
from mpocpp.queue.record import StoreFull, HDR

_TAG = "queue"
_MSG = const(1)     # record kinds (first byte)
_MAP = const(2)     # placeholder -> transactionId, i32 each
_TRY = const(3)     # a failed attempt of the transaction message with sequence u32
_NAMED = const(0xFF)  # action byte: the action name follows (length byte + name)
_START_ROOM = const(512)  # bytes a StartTransaction record may take
_MAP_KEEP = const(16)     # mappings kept in RAM after their record is gone
_MAX_DELAY = const(0x1FFFFFFF)  # longest ticks_add delta (ms)
_REREAD_MS = const(1000)  # a head record not read for want of heap: tried again after,
_REREAD_MAX_MS = const(60000)  # doubling up to this

_ACTIONS = ("StartTransaction", "StopTransaction", "MeterValues", "StatusNotification",
            "DataTransfer", "Authorize", "Heartbeat", "BootNotification",
            "DiagnosticsStatusNotification", "FirmwareStatusNotification")


class Message:
    # The head of a stream, decoded: what the sender sends next.
    def __init__(self, qid, action, payload):
        self.qid = qid
        self.action = action
        self.payload = payload
        self.txn = not qid & 1  # the transaction stream (ordered, reserved)


class MessageQueue:
    def __init__(self, stores, max_attempts_fn, retry_interval_fn, reserve=1024,
                 on_transaction_id=None, wake=None):
        if isinstance(stores, (tuple, list)):
            self._s = (stores[0], stores[1] if len(stores) > 1 else None)
        else:
            self._s = (stores, None)
        self._attempts_fn = max_attempts_fn
        self._interval_fn = retry_interval_fn
        self._reserve = reserve
        self._on_txid = on_transaction_id
        self._wake = wake
        self._map = {}          # placeholder -> transactionId (-1: none to be had)
        self._maps = 0          # _MAP records in the transaction store
        self._tries = 0         # _TRY records in the transaction store
        self._ph = -1           # lowest placeholder handed out or seen
        self._head = [None, None]  # per stream: the Message at its head
        self._hph = 0           # placeholder of the transaction head if a Start
        self._att = [0, 0]      # failed attempts of each head
        self._due = [0, 0]      # ticks_ms when a failed head may go again
        self._wait = [False, False]
        self._unread = [0, 0]  # failed reads of a head left in flash for want of heap

    # --- start-up

    def mount(self):
        for s in self._s:
            if s:
                s.mount()
        self._map = {}
        self._maps = self._tries = 0
        self._head = [None, None]
        self._att = [0, 0]
        self._wait = [False, False]
        self._unread = [0, 0]
        ph = -1
        tried = None  # (sequence, failed attempts) of the latest _TRY
        for seq, data in self._s[0].records():  # one record in RAM at a time
            if len(data) >= 9 and data[0] == _MAP:
                p, t = struct.unpack_from("<ii", data, 1)
                self._map[p] = t
                self._maps += 1
                ph = min(ph, p)
            elif len(data) >= 6 and data[0] == _MSG and data[1] == 0:
                ph = min(ph, struct.unpack_from("<i", data, 2)[0])
            elif len(data) >= 5 and data[0] == _TRY:
                q = struct.unpack_from("<I", data, 1)[0]
                tried = (q, tried[1] + 1 if tried and tried[0] == q else 1)
                self._tries += 1
        self._ph = ph
        self._load(0)
        self._load(1)
        h = self._head[0]
        if h is not None and tried is not None and tried[0] == h.qid >> 1:
            self._att[0] = tried[1]  # its attempts before the reboot count
        log.info(_TAG, "%d messages queued (%d transaction)", len(self), self.pending_txn())

    # --- transaction ids

    def new_placeholder(self):
        # A local id (<= -2) for a transaction whose StartTransaction is not
        # answered yet. Derived from the store's next sequence, which only
        # grows across reboots, so a placeholder is not handed out twice.
        p = min(self._ph - 1, -2 - self._s[0].next_seq())
        self._ph = p
        return p

    def resolve(self, txid):
        return self._map.get(txid, txid)

    def has_stop(self, txid, since=0):
        # True when a StopTransaction of this transaction (by its id or its
        # placeholder, stamped at or after `since`, unix s) is still queued:
        # the power went after the Stop was queued and before the charger
        # forgot the transaction. Reads the records one at a time (boot only).
        from mpocpp.util import timeparse
        want = self.resolve(txid)
        ix = _ACTIONS.index("StopTransaction")
        for seq, data in self._s[0].records():
            if len(data) < 3 or data[0] != _MSG or data[1] != ix:
                continue
            try:
                p = json.loads(bytes(data[2:]))
                t = p.get("transactionId")
                if (t == txid or self.resolve(t) == want) and \
                        timeparse.parse(p["timestamp"]) >= since:
                    return True
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        return False

    def has_start(self, ph):
        # True when the StartTransaction of placeholder ph is still queued,
        # or was answered (its mapping is known): False means the power went
        # after the charger wrote the transaction down and before it queued
        # the Start (boot only: reads the records one at a time).
        if ph in self._map:
            return True
        for seq, data in self._s[0].records():
            if len(data) >= 6 and data[0] == _MSG and data[1] == 0 and \
                    struct.unpack_from("<i", data, 2)[0] == ph:
                return True
        return False

    # --- filling

    def push(self, action, payload, txn=True, placeholder=None):
        if action == "StartTransaction":
            if placeholder is None:
                placeholder = self.new_placeholder()
            txn = True
        elif action == "StopTransaction":
            txn = True
        st = 0 if txn or not self._s[1] else 1
        s = self._s[st]
        try:
            t = payload.get("transactionId")
            if type(t) is int and t <= -2 and t in self._map:
                payload = dict(payload)
                payload["transactionId"] = self._map[t]
            data = self._encode(action, payload, placeholder)
        except (TypeError, ValueError, AttributeError) as e:
            log.exc(_TAG, "cannot queue %s", e, action)
            return None
        need = len(data) + HDR
        if st == 0 and action != "StopTransaction":
            # Keep room for the StopTransactions of running transactions:
            # other transaction messages give way first.
            if s.free() - need < self._reserve:
                log.error(_TAG, "queue full: %s refused (%d bytes free)", action, s.free())
                return None
        while True:
            try:
                seq = s.append(data)
                break
            except StoreFull:
                if st == 1 and s.count():
                    self._drop(1, "queue full")
                    continue
                log.error(_TAG, "queue full: %s refused", action)
                return None
            except ValueError as e:
                log.exc(_TAG, "cannot queue %s", e, action)
                return None
        if self._head[st] is None and not self._unread[st]:
            self._load(st)
        if self._wake is not None:
            self._wake.set()
        return seq << 1 | st

    def can_start_transaction(self):
        # Room for a StartTransaction and its StopTransaction on top of the
        # reserve kept for the transactions already running.
        return self._s[0].free() >= _START_ROOM + 2 * self._reserve

    def _encode(self, action, payload, placeholder):
        js = json.dumps(payload, separators=(",", ":"))
        try:
            a = _ACTIONS.index(action)
            hdr = bytes((_MSG, a))
        except ValueError:
            if not 0 < len(action) < 64:
                raise ValueError("bad action")
            hdr = bytes((_MSG, _NAMED, len(action))) + action.encode()
        if action == "StartTransaction":
            hdr += struct.pack("<i", placeholder)
        return hdr + js.encode()

    # --- sending

    def peek(self, now_ms):
        for st in (0, 1):
            if self._unread[st] and time.ticks_diff(now_ms, self._due[st]) >= 0:
                self._load(st)
            h = self._head[st]
            if h is None:
                continue
            if self._wait[st] and time.ticks_diff(now_ms, self._due[st]) < 0:
                continue
            return h
        return None

    def due_in_ms(self, now_ms):
        # ms until peek() has something (0: now), None when nothing is queued:
        # how long the sender may sleep.
        d = None
        for st in (0, 1):
            if self._head[st] is None and not self._unread[st]:
                continue
            w = time.ticks_diff(self._due[st], now_ms) if self._wait[st] or \
                self._unread[st] else 0
            w = max(0, w)
            d = w if d is None else min(d, w)
        return d

    def delivered(self, qid, response_payload):
        st = qid & 1
        h = self._head[st]
        if h is None or h.qid != qid:
            log.warn(_TAG, "delivered: %d is not being sent", qid)
            return
        if h.action == "StartTransaction":
            t = None
            if isinstance(response_payload, dict):
                t = response_payload.get("transactionId")
            if type(t) is not int:
                log.error(_TAG, "StartTransaction answer without transactionId: -1")
                t = -1
            self._set_map(self._hph, t)
        self._drop(st, None)

    def failed(self, qid, now_ms):
        st = qid & 1
        h = self._head[st]
        if h is None or h.qid != qid:
            log.warn(_TAG, "failed: %d is not being sent", qid)
            return False
        n = self._att[st] + 1
        if n >= max(1, self._attempts_fn()):
            if h.action == "StartTransaction":
                self._set_map(self._hph, -1)
            self._drop(st, "no success after %d attempts" % n)
            return True
        self._att[st] = n
        if st == 0:
            self._tried(h.qid >> 1)
        d = min(max(0, self._interval_fn()) * n * 1000, _MAX_DELAY)
        self._due[st] = time.ticks_add(now_ms, d)
        self._wait[st] = True
        return False

    # --- figures

    def __len__(self):
        n = self._s[0].count() - self._maps - self._tries
        if self._s[1]:
            n += self._s[1].count()
        return n

    def pending_txn(self):
        return self._s[0].count() - self._maps - self._tries

    # --- internals

    def _set_map(self, ph, txid):
        self._map[ph] = txid
        if len(self._map) > max(_MAP_KEEP, self._maps + 1):
            del self._map[max(self._map)]  # the oldest placeholder
        try:
            self._s[0].append(struct.pack("<Bii", _MAP, ph, txid))
            self._maps += 1
        except StoreFull as e:  # the reserve should prevent it
            log.exc(_TAG, "transactionId %d for %d not persisted", e, txid, ph)
        log.info(_TAG, "transaction %d is %d", ph, txid)
        cb = self._on_txid
        if cb is not None:
            cb(ph, txid)

    def _tried(self, seq):
        # A failed attempt persisted (TransactionMessageAttempts counts across
        # reboots), unless that would eat into the StopTransaction reserve:
        # then it is counted in RAM only.
        s = self._s[0]
        if s.free() - 5 - HDR < self._reserve:
            return
        try:
            s.append(struct.pack("<BI", _TRY, seq))
            self._tries += 1
        except StoreFull:
            pass

    def _drop(self, st, why):
        # Remove the head of stream st (acknowledge it in its store).
        h = self._head[st]
        s = self._s[st]
        if h is None:
            r = s.first()
            seq = r[0] if r else 0
        else:
            seq = h.qid >> 1
        if why:
            log.warn(_TAG, "dropped %s: %s", h.action if h else seq, why)
        s.ack(seq)
        self._head[st] = None
        self._att[st] = 0
        self._wait[st] = False
        self._load(st)

    def _load(self, st):
        # Read and decode the head record of stream st (skipping mappings
        # whose messages are all gone, and records that do not decode). Out
        # of heap, the record stays in flash and is read again a moment
        # later (peek), then less often: the heap's state, not the record's.
        s = self._s[st]
        if s is None:
            return
        n = self._unread[st]
        self._unread[st] = 0
        seq = None
        try:
            while True:
                r = s.first()
                if r is None:
                    return
                seq, data = r
                if data and data[0] == _MAP and st == 0:
                    s.ack(seq)
                    self._maps -= 1
                    continue
                if data and data[0] == _TRY and st == 0:
                    s.ack(seq)
                    self._tries -= 1
                    continue
                try:
                    h = self._decode(seq << 1 | st, data)
                    if h.action == "StartTransaction":
                        self._hph = struct.unpack_from("<i", data, 2)[0]
                    self._head[st] = h
                    return
                except MemoryError:
                    raise
                except Exception as e:  # a record that does not decode is dropped
                    log.exc(_TAG, "bad record %d dropped", e, seq)
                    s.ack(seq)
        except MemoryError as e:
            n += 1
            self._unread[st] = n
            self._due[st] = time.ticks_add(time.ticks_ms(),
                                           min(_REREAD_MS << min(n - 1, 6), _REREAD_MAX_MS))
            if n == 1:  # counted toward the restart out of heap (charger.py)
                log.exc(_TAG, "next record kept in flash", e)
            else:
                # Not counted again: were the record too large for any heap
                # this board has, each boot would restart the charger.
                log.warn(_TAG, "next record kept in flash: no heap to read it (%d tries)", n)

    def _decode(self, qid, data):
        if data[0] != _MSG:
            raise ValueError("record kind %d" % data[0])
        a = data[1]
        off = 2
        if a == _NAMED:
            n = data[2]
            action = bytes(data[3:3 + n]).decode()
            off = 3 + n
        else:
            action = _ACTIONS[a]
        if action == "StartTransaction":
            off += 4  # the placeholder, read by _load
        payload = json.loads(bytes(data[off:]))
        if type(payload) is not dict:
            raise ValueError("payload not an object")
        t = payload.get("transactionId")
        if type(t) is int and t <= -2:
            # its StartTransaction went before it: the id it got, or -1
            payload["transactionId"] = self._map.get(t, -1)
        return Message(qid, action, payload)
