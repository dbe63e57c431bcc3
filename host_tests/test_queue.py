"""The persistent message queue end to end (checklist §2.1, §2.2 "After
offline", scenarios 40-48, issue 3): the firmware in micropython against the
bench CSMS, with network outages, CALLERRORs, unanswered CALLs and power
cuts; every scenario that touches flash runs with both queue backends
(littlefs segment log and raw flash ring)."""
import time

import pytest

from csms_lib import CallErrorReply, NoReply

pytestmark = pytest.mark.unix32  # also on the 32-bit unix port

QUEUES = pytest.mark.parametrize("queue", ["lfs", "ring"])
TXN = ("StartTransaction", "StopTransaction", "MeterValues")


# --- helpers ---------------------------------------------------------------

def boot(factory, csms, n=1, keys=None, settings=None, queue="lfs", after=0):
    """A booted charger; returns it once every connector's first
    StatusNotification is in."""
    ch = factory(connectors=n, config={"keys": keys or {}, "settings": settings or {}},
                 queue=queue)
    for cid in range(n + 1):
        last = wait_sn(csms, cid, None, after, timeout=15)
    answer(csms, last)
    time.sleep(0.2)  # the charger has the answer: nothing in flight
    return ch


def is_sn(cid, status=None, error=None):
    def pred(m):
        p = m.payload
        return p["connectorId"] == cid and (status is None or p["status"] == status) \
            and (error is None or p["errorCode"] == error)
    return pred


def wait_sn(csms, cid, status, after=0, timeout=10):
    return csms.wait_for("StatusNotification", pred=is_sn(cid, status), after=after,
                         timeout=timeout)


def sns(csms, cid, after=0):
    return [m for m in csms.calls("StatusNotification", after=after)
            if m.payload["connectorId"] == cid]


def calls_in(csms, after=0, actions=None):
    """The charger's CALLs from index `after` on (optionally only `actions`)."""
    return [m for m in csms.messages[after:] if m.direction == "in" and m.type == 2
            and (actions is None or m.action in actions)]


def answer(csms, call):
    """The CSMS's answer to one of the charger's CALLs."""
    return csms.wait_for(call.action, direction="out", pred=lambda x: x.id == call.id,
                         after=csms.messages.index(call))


def go_offline(ch, csms):
    ch.ok("network", up=False)
    csms.wait_disconnected("CP1", timeout=5)
    ch.wait_state(lambda s: s["connection"] != "online", timeout=5, what="offline")


def go_online(ch, csms):
    """Network back; returns the mark taken before the reconnection."""
    n = csms.connections("CP1")
    m = csms.mark()
    ch.ok("network", up=True)
    csms.wait_connected("CP1", timeout=10, count=n + 1)
    return m


def plug_and_swipe(ch, cid=1, tag="TAG1"):
    ch.ok("plug_in", connector=cid)
    ch.ok("swipe", idTag=tag)
    ch.wait_state(lambda s: s["connectors"][cid - 1]["transaction"] is not None,
                  timeout=10, what="transaction on %d" % cid)


def start_online(ch, csms, cid=1, tag="TAG1"):
    m = csms.mark()
    plug_and_swipe(ch, cid, tag)
    st = csms.wait_for("StartTransaction", after=m, pred=lambda x: x.payload["idTag"] == tag)
    txid = answer(csms, st).payload["transactionId"]
    ch.wait_state(lambda s: s["connectors"][cid - 1]["transaction"]["id"] == txid,
                  what="transaction id")
    return txid


def stop_by_unplug(ch, cid=1):
    ch.ok("plug_out", connector=cid)
    ch.wait_state(lambda s: s["connectors"][cid - 1]["transaction"] is None,
                  timeout=10, what="transaction stopped on %d" % cid)


def wait_calls(csms, action, n, after, timeout=15, settle=0.3):
    """Wait until the charger has sent `n` CALLs `action` after `after`."""
    deadline = time.time() + timeout
    while len(csms.calls(action, after=after)) < n and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(settle)
    return csms.calls(action, after=after)


def ts(m):
    return m.payload.get("timestamp") or m.payload["meterValue"][0]["timestamp"]


def assert_time_order(msgs):
    stamps = [ts(m) for m in msgs]
    assert stamps == sorted(stamps), stamps


def assert_once(msgs, in_flight=()):
    """Every message content once, except those named in `in_flight` (the
    one being sent at a cut), which may come twice, back to back."""
    seen = {}
    for m in msgs:
        key = (m.action, repr(sorted(m.payload.items())))
        seen[key] = seen.get(key, 0) + 1
    dup = {k: n for k, n in seen.items() if n > 1 and not (n == 2 and k[0] in in_flight)}
    assert not dup, dup


OFFLINE_KEYS = {"AllowOfflineTxForUnknownId": True, "MeterValueSampleInterval": 1}


def unix(iso):
    # The charger's clock takes the CSMS time without its milliseconds and
    # stamps whole seconds: its stamps lag the host clock by up to 2 s.
    from datetime import datetime
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# --- outage during a transaction (issue 3; scenarios 40, 48) ----------------

@QUEUES
def test_outage_during_transaction(csms, charger_factory, queue):
    ch = boot(charger_factory, csms, keys={"MeterValueSampleInterval": 1}, queue=queue)
    ch.ok("load", connector=1, amps=[10, 10, 10])
    begin = csms.mark()
    txid = start_online(ch, csms)
    csms.wait_for(
        "MeterValues", after=begin, pred=lambda m: m.payload.get("transactionId") == txid
    )
    go_offline(ch, csms)
    time.sleep(2.5)
    stop_by_unplug(ch)
    down = time.time()
    time.sleep(2.5)  # offline changes well before the reconnection
    up = time.time()
    m = go_online(ch, csms)
    stop = csms.wait_for("StopTransaction", after=m, timeout=15)
    wait_sn(csms, 1, "Available", after=m)
    time.sleep(0.5)
    after = calls_in(csms, m)
    # Queued transaction messages first, then the status.
    assert after[0].action in TXN, [x.action for x in after]
    txn = calls_in(csms, m, TXN)
    assert [x.action for x in txn][-1] == "StopTransaction"
    mvs = [x for x in txn if x.action == "MeterValues"]
    assert len(mvs) >= 2  # sampled while offline
    assert all(x.payload["transactionId"] == txid for x in mvs)
    assert stop.payload["transactionId"] == txid and stop.payload["reason"] == "EVDisconnected"
    assert unix(stop.payload["timestamp"]) <= down + 1
    # The whole transaction: in time order, each message once (the one in
    # flight at the cut may come twice).
    whole = calls_in(csms, begin, TXN)
    assert_time_order(whole)
    assert_once(whole, in_flight=("MeterValues",))
    # Offline changes (Finishing, Available): once, as the current state,
    # stamped at the reconnection.
    s1 = sns(csms, 1, m)
    assert [x.payload["status"] for x in s1] == ["Available"], [x.payload for x in s1]
    assert unix(s1[0].payload["timestamp"]) >= up - 2


# --- scenarios 40 and 42: a transaction started and stopped offline --------

@QUEUES
def test_offline_transaction_start_first_then_stop_with_real_id(csms, charger_factory, queue):
    ch = boot(charger_factory, csms, keys={"AllowOfflineTxForUnknownId": True}, queue=queue)
    go_offline(ch, csms)
    t0 = time.time()
    plug_and_swipe(ch, tag="OFF1")
    local = ch.connector(1)["transaction"]["id"]
    assert local <= -2  # a placeholder until StartTransaction is answered
    time.sleep(1.1)
    ch.ok("swipe", idTag="OFF1")  # the same card stops it (Local), cable still in
    ch.wait_state(lambda s: s["connectors"][0]["transaction"] is None, what="stopped")
    time.sleep(2.5)
    up = time.time()
    m = go_online(ch, csms)
    stop = csms.wait_for("StopTransaction", after=m, timeout=10)
    wait_sn(csms, 1, "Finishing", after=m)
    time.sleep(0.3)
    after = calls_in(csms, m)
    assert [x.action for x in after[:2]] == ["StartTransaction", "StopTransaction"], \
        [x.action for x in after]
    st = after[0]
    assert t0 - 2 <= unix(st.payload["timestamp"]) <= up - 2  # the original time
    assert stop.payload["transactionId"] == answer(csms, st).payload["transactionId"]
    assert stop.payload["reason"] == "Local"  # always sent, Local included
    assert calls_in(csms, m, ("Authorize",)) == []  # decided offline
    # Only the current status, stamped at the reconnection.
    s1 = sns(csms, 1, m)
    assert [x.payload["status"] for x in s1] == ["Finishing"], [x.payload for x in s1]
    assert unix(s1[0].payload["timestamp"]) >= up - 2


# --- scenario 43: three transactions during one outage ----------------------

@QUEUES
def test_three_offline_transactions_in_time_order(csms, charger_factory, queue):
    ch = boot(charger_factory, csms, keys=OFFLINE_KEYS, queue=queue)
    ch.ok("load", connector=1, amps=[16, 16, 16])
    csms.next_transaction_id = 100
    go_offline(ch, csms)
    for tag in ("OFF1", "OFF2", "OFF3"):
        q0 = ch.state()["queue_depth"]
        plug_and_swipe(ch, tag=tag)
        # its StartTransaction and at least one periodic MeterValues queued
        ch.wait_state(lambda st: st["queue_depth"] >= q0 + 2, timeout=15,
                      what="a MeterValues of the transaction queued")
        stop_by_unplug(ch)
    m = go_online(ch, csms)
    wait_calls(csms, "StopTransaction", 3, m)
    txn = calls_in(csms, m, TXN)
    assert txn[0].action == "StartTransaction"
    assert_time_order(txn)
    assert_once(txn)
    # Each Stop and MeterValues carries the id its own Start got.
    cur = None
    tags = []
    for x in txn:
        if x.action == "StartTransaction":
            cur = answer(csms, x).payload["transactionId"]
            tags.append(x.payload["idTag"])
        else:
            assert x.payload["transactionId"] == cur, (x.action, x.payload, cur)
    assert tags == ["OFF1", "OFF2", "OFF3"]
    assert [x.payload["transactionId"] for x in txn if x.action == "StopTransaction"] == \
        [100, 101, 102]
    assert sum(1 for x in txn if x.action == "MeterValues") >= 3


# --- scenario 44: CALLERROR to StopTransaction --------------------------------

def test_stop_callerror_retried_then_dropped(csms, charger_factory):
    ch = boot(charger_factory, csms, queue="ring",
              keys={"TransactionMessageAttempts": 3, "TransactionMessageRetryInterval": 2})
    txid = start_online(ch, csms)
    csms.set_handler("StopTransaction", lambda cp, p: CallErrorReply("InternalError", "db down"))
    m = csms.mark()
    stop_by_unplug(ch)
    stops = wait_calls(csms, "StopTransaction", 3, m, settle=0)
    assert len(stops) == 3, [x.t for x in stops]
    assert all(x.payload == stops[0].payload for x in stops)
    assert stops[0].payload["transactionId"] == txid
    g1, g2 = stops[1].t - stops[0].t, stops[2].t - stops[1].t
    assert 1.8 <= g1 <= 3.5 and 3.8 <= g2 <= 5.5, (g1, g2)  # R x 1, then R x 2
    ch.wait_log("dropped StopTransaction", timeout=3)
    csms.clear_handler("StopTransaction")
    # The queue goes on: the next transaction's messages are delivered.
    m = csms.mark()
    txid2 = start_online(ch, csms, tag="TAG2")
    stop_by_unplug(ch)
    stop2 = csms.wait_for("StopTransaction", after=m)
    assert stop2.payload["transactionId"] == txid2 != txid
    time.sleep(0.5)
    assert len(csms.calls("StopTransaction", after=m)) == 1
    assert all(x.payload["transactionId"] == txid2
               for x in csms.calls("StopTransaction", after=m))


def test_offline_is_not_a_failure(csms, charger_factory):
    # One attempt only, and the link drops while the StopTransaction waits
    # for its answer: it is sent again after the reconnection, not dropped.
    ch = boot(charger_factory, csms, keys={"TransactionMessageAttempts": 1, "MessageTimeout": 30})
    txid = start_online(ch, csms)
    csms.set_handler("StopTransaction", lambda cp, p: NoReply())
    m = csms.mark()
    stop_by_unplug(ch)
    first = csms.wait_for("StopTransaction", after=m)
    go_offline(ch, csms)
    csms.clear_handler("StopTransaction")
    m2 = go_online(ch, csms)
    again = csms.wait_for("StopTransaction", after=m2)
    assert again.payload == first.payload and again.payload["transactionId"] == txid
    answer(csms, again)
    assert "dropped" not in ch.log_text()


# --- scenario 45: StartTransaction never answered -----------------------------

def test_start_never_answered_later_messages_use_minus_one(csms, charger_factory):
    keys = {"MessageTimeout": 2, "TransactionMessageAttempts": 2,
            "TransactionMessageRetryInterval": 1, "MeterValueSampleInterval": 1}
    ch = boot(charger_factory, csms, keys=keys)
    ch.ok("load", connector=1, amps=[10, 10, 10])
    csms.set_handler("StartTransaction", lambda cp, p: NoReply())
    m = csms.mark()
    plug_and_swipe(ch)
    csms.wait_for("StartTransaction", after=m)
    ch.wait_log("dropped StartTransaction", timeout=10)
    csms.clear_handler("StartTransaction")
    ch.wait_state(lambda s: s["connectors"][0]["transaction"]["id"] == -1, what="id -1")
    time.sleep(1.2)
    stop_by_unplug(ch)
    stop = csms.wait_for("StopTransaction", after=m)
    assert stop.payload["transactionId"] == -1
    starts = csms.calls("StartTransaction", after=m)
    assert len(starts) == 2 and starts[0].payload == starts[1].payload
    mvs = csms.calls("MeterValues", after=m)
    assert mvs and all(x.payload["transactionId"] == -1 for x in mvs)
    # None of them overtook the StartTransaction.
    assert min(x.t for x in mvs) > starts[-1].t


# --- scenario 46: power cut during a transaction ------------------------------

@QUEUES
def test_power_cut_mid_transaction(csms, charger_factory, queue):
    ch = boot(charger_factory, csms, keys={"MeterValueSampleInterval": 1}, queue=queue)
    ch.ok("load", connector=1, amps=[16, 16, 16])
    begin = csms.mark()
    txid = start_online(ch, csms)
    mv = csms.wait_for("MeterValues", after=begin, timeout=10, pred=lambda x: int(
        x.payload["meterValue"][0]["sampledValue"][0]["value"]) > 0)
    time.sleep(1.2)
    ch.power_cut()
    last = max(int(v["value"]) for x in csms.calls("MeterValues", after=begin)
               for v in x.payload["meterValue"][0]["sampledValue"]
               if v.get("measurand") == "Energy.Active.Import.Register")
    assert last >= int(mv.payload["meterValue"][0]["sampledValue"][0]["value"])
    m = csms.mark()
    ch.start()
    stop = csms.wait_for("StopTransaction", after=m, timeout=15)
    # (the boot's StartupOfTheDevice security event goes in the same stream)
    acts = [x.action for x in calls_in(csms, m) if x.action != "SecurityEventNotification"]
    assert acts[:4] == ["BootNotification", "StatusNotification", "StatusNotification",
                        "StopTransaction"], acts
    assert "StartTransaction" not in acts
    assert stop.payload["transactionId"] == txid
    assert stop.payload["reason"] == "PowerLoss"
    assert stop.payload["meterStop"] >= last
    time.sleep(0.5)
    assert len(csms.calls("StopTransaction", after=m)) == 1
    assert ch.connector(1)["transaction"] is None


# --- scenario 47: power cut while offline with a queue -------------------------

@QUEUES
def test_power_cut_offline_queue_survives(csms, charger_factory, queue):
    ch = boot(charger_factory, csms, keys={"AllowOfflineTxForUnknownId": True}, queue=queue)
    csms.next_transaction_id = 7
    go_offline(ch, csms)
    plug_and_swipe(ch, tag="OFF1")
    time.sleep(1.1)
    stop_by_unplug(ch)
    plug_and_swipe(ch, tag="OFF2")
    time.sleep(1.1)
    ch.power_cut()
    m = csms.mark()
    ch.start()  # the network is up again after the restart
    wait_calls(csms, "StopTransaction", 2, m)
    acts = [x.action for x in calls_in(csms, m)]
    assert acts[:3] == ["BootNotification", "StatusNotification", "StatusNotification"], acts
    txn = calls_in(csms, m, TXN)
    assert [x.action for x in txn] == ["StartTransaction", "StopTransaction",
                                       "StartTransaction", "StopTransaction"]
    assert_time_order(txn)
    assert [x.payload["idTag"] for x in txn if x.action == "StartTransaction"] == ["OFF1", "OFF2"]
    assert [x.payload["transactionId"] for x in txn if x.action == "StopTransaction"] == [7, 8]
    assert txn[1].payload["reason"] == "EVDisconnected"
    assert txn[3].payload["reason"] == "PowerLoss"


# --- a cut with a message in flight -------------------------------------------

@QUEUES
def test_power_cut_with_start_in_flight(csms, charger_factory, queue):
    # The CSMS never answers StartTransaction; the power goes while it waits.
    ch = boot(charger_factory, csms, keys={"MessageTimeout": 30}, queue=queue)
    csms.set_handler("StartTransaction", lambda cp, p: NoReply())
    m0 = csms.mark()
    plug_and_swipe(ch)
    csms.wait_for("StartTransaction", after=m0)
    ch.power_cut()
    csms.clear_handler("StartTransaction")
    csms.next_transaction_id = 42
    m = csms.mark()
    ch.start()
    stop = csms.wait_for("StopTransaction", after=m, timeout=15)
    # (the boot's StartupOfTheDevice security event goes in the same stream)
    acts = [x.action for x in calls_in(csms, m) if x.action != "SecurityEventNotification"]
    assert acts[:5] == ["BootNotification", "StatusNotification", "StatusNotification",
                        "StartTransaction", "StopTransaction"], acts
    starts = csms.calls("StartTransaction", after=m0)
    assert len(starts) == 2 and starts[0].payload == starts[1].payload  # in flight: twice
    assert stop.payload["transactionId"] == 42 and stop.payload["reason"] == "PowerLoss"
    assert_once(calls_in(csms, m0, TXN), in_flight=("StartTransaction",))


# --- scenario 48: StatusNotification offline rules ----------------------------

def test_status_notification_offline_rules(csms, charger_factory):
    ch = boot(charger_factory, csms, n=2)
    # Hold the link busy so that a status generated online waits in the outbox.
    csms.set_handler("Heartbeat", lambda cp, p: NoReply())
    m0 = csms.mark()
    csms.call("CP1", "TriggerMessage", {"requestedMessage": "Heartbeat"})
    csms.wait_for("Heartbeat", after=m0)
    ch.ok("plug_in", connector=1)
    pre = time.time()
    time.sleep(0.3)
    assert sns(csms, 1, m0) == []
    go_offline(ch, csms)
    csms.clear_handler("Heartbeat")
    # Offline: an error that comes and goes, and changes on both connectors.
    ch.ok("raise_error", connector=2, code="GroundFailure")
    ch.wait_state(lambda s: s["connectors"][1]["status"] == "Faulted", what="faulted")
    ch.ok("clear_error", connector=2)
    ch.ok("plug_in", connector=2)
    ch.ok("plug_out", connector=1)
    time.sleep(2.5)
    up = time.time()
    m = go_online(ch, csms)
    wait_sn(csms, 1, "Available", after=m)
    wait_sn(csms, 2, "Preparing", after=m)
    time.sleep(0.5)
    s1 = [x.payload for x in sns(csms, 1, m)]
    s2 = [x.payload for x in sns(csms, 2, m)]
    # The notification from before the drop is kept, with its own time...
    assert [p["status"] for p in s1] == ["Preparing", "Available"], s1
    assert unix(s1[0]["timestamp"]) <= pre + 1
    # ...the offline change comes once, as the current state, at the reconnection...
    assert unix(s1[1]["timestamp"]) >= up - 2
    assert [p["status"] for p in s2] == ["Preparing"], s2
    assert unix(s2[0]["timestamp"]) >= up - 2
    # ...and the error raised and cleared offline is not replayed.
    assert all(
        x.payload["errorCode"] == "NoError" for x in csms.calls("StatusNotification", after=m0)
    )


# --- a full queue ---------------------------------------------------------------

ALL = ("Energy.Active.Import.Register,Energy.Active.Import.Interval,Power.Active.Import,"
       "Power.Offered,Current.Import,Current.Offered,Voltage,Temperature")
SMALL = {"queueBytes": 16384}  # 4 sectors of the ring, 16 KiB of littlefs


@QUEUES
def test_full_queue_refuses_new_transaction_keeps_running_one(csms, charger_factory, queue):
    keys = dict(OFFLINE_KEYS, MeterValuesSampledData=ALL)
    ch = boot(charger_factory, csms, keys=keys, settings=SMALL, queue=queue)
    ch.ok("load", connector=1, amps=[16, 16, 16])
    go_offline(ch, csms)
    plug_and_swipe(ch, tag="OFF1")
    # MeterValues fill the transaction store up to the reserve kept for Stops.
    ch.wait_log("queue full: MeterValues refused", timeout=30)
    ch.ok("swipe", idTag="OFF1")  # its StopTransaction still fits
    ch.wait_state(lambda s: s["connectors"][0]["transaction"] is None, what="stopped")
    ch.ok("plug_out", connector=1)
    ch.ok("plug_in", connector=1)
    pos = len(ch.log_text())
    ch.ok("swipe", idTag="OFF2")
    ch.wait_log("message queue full: new transaction refused", after=pos)
    time.sleep(0.5)
    assert ch.connector(1)["transaction"] is None
    assert not ch.connector(1)["relay"]
    assert "StopTransaction refused" not in ch.log_text()
    m = go_online(ch, csms)
    stop = csms.wait_for("StopTransaction", after=m, timeout=20)
    txn = calls_in(csms, m, TXN)
    assert txn[0].action == "StartTransaction" and txn[0].payload["idTag"] == "OFF1"
    assert txn[-1] is stop
    assert len(txn) >= 4
    assert_time_order(txn)
    assert_once(txn)
    assert stop.payload["transactionId"] == answer(csms, txn[0]).payload["transactionId"]
    # Delivered: room again, the card now starts a transaction.
    m = csms.mark()
    ch.ok("swipe", idTag="OFF2")
    st = csms.wait_for("StartTransaction", after=m)
    assert st.payload["idTag"] == "OFF2"


@QUEUES
def test_full_queue_drops_oldest_clock_values(csms, charger_factory, queue):
    # Idle Sample.Clock values (no transactionId) are the lower-priority
    # stream: when their store is full, the oldest go first.
    # Two measurands: about 16 values to a 4 KiB ring sector, so what is
    # kept after a drop (a whole sector at least) spans seconds (with ALL,
    # three to a sector: a run on a loaded machine kept only the last
    # second's).
    keys = {"ClockAlignedDataInterval": 1,
            "MeterValuesAlignedData": "Energy.Active.Import.Register,Power.Active.Import"}
    # 8 KiB for them: 2 ring sectors, 2 littlefs segments (littlefs frees a
    # whole segment at a time).
    ch = boot(charger_factory, csms, keys=keys, settings={"queueBytes": 32768}, queue=queue)
    go_offline(ch, csms)
    t0 = time.time()
    pos = len(ch.log_text())
    ch.wait_log("dropped MeterValues: queue full", timeout=30, after=pos)
    time.sleep(2)
    t1 = time.time()
    m = go_online(ch, csms)
    time.sleep(2.5)
    got = calls_in(csms, m, ("MeterValues",))
    assert all("transactionId" not in x.payload for x in got)
    assert_once(got, in_flight=("MeterValues",))
    for cid in (0, 1):
        assert_time_order([x for x in got if x.payload["connectorId"] == cid])
    secs = [unix(ts(x)) for x in got]
    offline = [t for t in secs if t + 1 <= t1]  # surely taken before the network came back
    assert len(offline) >= 2, (t0, t1, secs)
    assert min(secs) >= t0 + 0.5  # the oldest ones were dropped...
    assert max(offline) >= t1 - 4  # ...the newest kept
    assert max(secs) > t1  # and the live ones follow
