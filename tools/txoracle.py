"""The oracle of the reliability campaigns (tools/powercut, tools/linkfaults;
docs/reliability.md) over the bench CSMS's records, once the charger has
stopped its transactions and drained its queue:

- no transactionId has two different StopTransactions (the same one sent
  again is a duplicate, counted);
- every StartTransaction has its StopTransaction, or is the same Start sent
  again (same connector, idTag, meterStart and timestamp as one that has):
  the duplicate the protocol cannot avoid when an answer is lost, which the
  CSMS can recognise; a Start with neither is a lost transaction;
- the MeterValues of each transaction arrive in time order;
- the energy register (meterStart, meterStop, the sampled register) never
  goes down over time.

    check(csms, fail, stats): fail(text) for each violation; stats (a
    Counter) gets transactions, start/stop messages and duplicates.
    drain(charger, csms, id_tag, fail): the end of a run, before check.
"""
import collections
import time

REG = "Energy.Active.Import.Register"


def drain(ch, c, id_tag, fail, timeout=120):
    """The end of a campaign: the session stopped with its card, the EV
    unplugged, then wait until the charger's queue is empty and it is
    registered (a failure through fail() after timeout s)."""
    deadline = time.time() + timeout
    while True:
        st = ch.state()
        con = st["connectors"][0]
        if con["transaction"] is not None:
            ch.ok("swipe", idTag=id_tag)
            time.sleep(1)
        elif con["pilot"] not in ("A", None):
            ch.ok("plug_out", connector=1)
        elif st["queue_depth"] == 0 and st["registration"] == "Accepted":
            break
        if time.time() > deadline:
            fail("queue not drained in %d s: %r" % (timeout, st))
            break
        time.sleep(0.3)
    time.sleep(1.5)  # the last answers on their way


def check(c, fail, stats):
    answers = {m.id: m.payload for m in c.calls("StartTransaction", direction="out")
               if m.type == 3}
    starts = {}  # transaction key -> [transactionIds]
    tx_key = {}
    for m in c.calls("StartTransaction"):
        p = m.payload
        key = (p["connectorId"], p["idTag"], p["meterStart"], p["timestamp"])
        a = answers.get(m.id)
        tid = a.get("transactionId") if a else None
        starts.setdefault(key, [])
        if tid is not None:
            starts[key].append(tid)
            tx_key[tid] = key
    stats["transactions"] = len(starts)
    stats["start_messages"] = len(c.calls("StartTransaction"))
    stops = collections.defaultdict(list)
    for m in c.calls("StopTransaction"):
        stops[m.payload["transactionId"]].append(m.payload)
    stats["stop_messages"] = sum(len(v) for v in stops.values())
    # A transactionId stopped twice is a double stop (the same Stop re-sent
    # after a cut is a duplicate, counted). The Starts of one key (same
    # connector, idTag, meterStart and second) are one transaction re-sent
    # after a cut, or several begun in the same second after quick
    # reboots: each id with a Stop is a transaction; the ids without one
    # are re-sent Starts whose answers the cut took, as long as one id of
    # the key has its Stop; a key with none is a lost transaction.
    for tid, ps in stops.items():
        if len(ps) > 1:
            if len({(p["meterStop"], p["timestamp"], p.get("reason")) for p in ps}) == 1:
                stats["stop_duplicates"] += len(ps) - 1
            else:
                fail("transaction %r stopped %d times: %r" % (tid, len(ps), ps))
    for key, tids in starts.items():
        stopped = [t for t in tids if t in stops]
        if not stopped:
            fail("transaction lost: no StopTransaction for %r (ids %r)" % (key, tids))
            continue
        stats["transactions"] += len(stopped) - 1
        stats["start_duplicates"] += len(tids) - len(stopped)
    for tid in stops:
        if tid not in tx_key:
            fail("StopTransaction for transactionId %r never started" % tid)
    # MeterValues in order per transaction; the register never goes down
    readings = []
    last_ts = {}
    for m in c.calls("MeterValues"):
        p = m.payload
        for mv in p.get("meterValue", []):
            ts = mv["timestamp"]
            tid = p.get("transactionId")
            if tid is not None:
                if ts < last_ts.get(tid, ""):
                    fail("MeterValues of transaction %r out of order: %s after %s" % (
                        tid, ts, last_ts[tid]))
                last_ts[tid] = max(ts, last_ts.get(tid, ""))
            for sv in mv.get("sampledValue", []):
                if sv.get("measurand", "Energy.Active.Import.Register") == REG:
                    v = float(sv["value"]) * (1000 if sv.get("unit") == "kWh" else 1)
                    readings.append((ts[:19], v, "MeterValues"))
    for key in starts:
        readings.append((key[3][:19], float(key[2]), "meterStart"))
    for v in stops.values():
        for p in v:
            readings.append((p["timestamp"][:19], float(p["meterStop"]), "meterStop"))
    readings.sort(key=lambda x: x[0])
    high = None
    for ts, v, what in readings:
        if high is not None and v < high[1] - 1.0 and ts > high[0]:
            fail("energy register went down: %s %.0f Wh at %s after %.0f Wh at %s" % (
                what, v, ts, high[1], high[0]))
            break
        if high is None or v >= high[1]:
            high = (ts, v)
    stats["meter_readings"] = len(readings)
