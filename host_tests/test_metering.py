"""Metering end to end (issue 5, checklist §4, scenarios 46, 49, 50): the
firmware in micropython with the unix board's simulated EV and ADCs, against
the bench CSMS. Values follow the bench `load`, energy integrates I x V x t,
MeterValues in every context, transactionData thinning, configuration
validation, and a power cut mid-session. The last tests run the AdcMeter
driver directly in micropython (true power at a power factor below 1, how
long one read blocks on a busy host)."""
import calendar
import json
import subprocess
import time

import pytest

from harness import MICROPYTHON, mp_env

pytestmark = pytest.mark.unix32  # also on the 32-bit unix port

ALL = ("Energy.Active.Import.Register,Energy.Active.Import.Interval,Power.Active.Import,"
       "Power.Offered,Current.Import,Current.Offered,Voltage,Temperature")
UNITS = {"Energy.Active.Import.Register": "Wh", "Energy.Active.Import.Interval": "Wh",
         "Power.Active.Import": "W", "Power.Offered": "W", "Current.Import": "A",
         "Current.Offered": "A", "Voltage": "V", "Temperature": "Celcius"}
REG = "Energy.Active.Import.Register"


# --- helpers ---------------------------------------------------------------

def boot(factory, csms, keys=None, connectors=1):
    ch = factory(connectors=connectors, config={"keys": keys or {}})
    for cid in range(connectors + 1):
        csms.wait_for("StatusNotification", timeout=15,
                      pred=lambda m, c=cid: m.payload["connectorId"] == c)
    return ch


def start(ch, csms, amps=(16, 16, 16), volts=(230, 230, 230), tag="TAG1", cid=1):
    """load, plug_in, swipe; returns (StartTransaction payload, transactionId)
    once the relay is closed."""
    m = csms.mark()
    ch.ok("load", connector=cid, amps=list(amps), volts=list(volts))
    ch.ok("plug_in", connector=cid)
    ch.ok("swipe", idTag=tag)
    st = csms.wait_for("StartTransaction", after=m, timeout=10)
    txid = csms.wait_for("StartTransaction", direction="out", after=m,
                         pred=lambda x: x.id == st.id).payload["transactionId"]
    ch.wait_state(lambda s: s["connectors"][cid - 1]["status"] == "Charging"
                  and s["connectors"][cid - 1]["relay"], what="charging")
    return st.payload, txid


def stop(ch, csms, tag="TAG1", timeout=10):
    m = csms.mark()
    ch.ok("swipe", idTag=tag)
    return csms.wait_for("StopTransaction", after=m, timeout=timeout).payload


def mvs_of(msgs, cid=None, context=None):
    """MeterValues payloads of msgs (optionally of one connector / context)."""
    out = []
    for m in msgs:
        p = m.payload
        if cid is not None and p["connectorId"] != cid:
            continue
        if context is not None and p["meterValue"][0]["sampledValue"][0].get("context") != context:
            continue
        out.append(p)
    return out


def mvs(csms, after=0, cid=None, context=None):
    return mvs_of(csms.calls("MeterValues", after=after), cid, context)


def wait_mv(csms, after=0, cid=None, context=None, timeout=10):
    return csms.wait_for("MeterValues", after=after, timeout=timeout,
                         pred=lambda m: bool(mvs_of([m], cid, context))).payload


def values(meter_value):
    """{(measurand, phase): float} of one MeterValue."""
    return {(s.get("measurand", REG), s.get("phase")): float(s["value"])
            for s in meter_value["sampledValue"]}


def unix(ts):
    return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))


def near(x, want, pct, abs_=0.0):
    return abs(x - want) <= want * pct / 100.0 + abs_


def energy_now(ch, cid=1):
    return ch.connector(cid)["energy_wh"]


# --- values follow the load ------------------------------------------------

def test_values_follow_load_with_units_phases_and_contexts(csms, charger_factory):
    ch = boot(charger_factory, csms, {"MeterValueSampleInterval": 1,
                                      "MeterValuesSampledData": ALL})
    amps, volts = [10.0, 12.0, 14.0], [230.0, 235.0, 225.0]
    _, txid = start(ch, csms, amps, volts)
    time.sleep(1.5)  # a full tick with the relay closed
    m = csms.mark()
    p = wait_mv(csms, after=m, cid=1, context="Sample.Periodic")
    p = wait_mv(csms, after=csms.mark(), cid=1, context="Sample.Periodic")
    assert p["transactionId"] == txid
    mv = p["meterValue"][0]
    for s in mv["sampledValue"]:
        assert s["format"] == "Raw" and s["context"] == "Sample.Periodic", s
        assert s["unit"] == UNITS[s["measurand"]], s
        assert s["location"] == ("Body" if s["measurand"] == "Temperature" else "Outlet"), s
    v = values(mv)
    for i, ph in enumerate(("L1", "L2", "L3")):
        assert near(v[("Current.Import", ph)], amps[i], 2, 0.1), (ph, v)
        assert near(v[("Voltage", ph + "-N")], volts[i], 1), (ph, v)
    want_w = sum(a * u for a, u in zip(amps, volts))
    assert near(v[("Power.Active.Import", None)], want_w, 2), v
    assert v[("Current.Offered", None)] == 32.0
    assert near(v[("Power.Offered", None)], 32 * sum(volts), 1), v
    assert ("Temperature", None) in v and 0 < v[("Temperature", None)] < 100
    assert ("Energy.Active.Import.Interval", None) in v
    assert v[(REG, None)] == int(v[(REG, None)])

    # the values follow a new load within a tick or two
    amps2, volts2 = [6.0, 0.0, 20.0], [240.0, 240.0, 240.0]
    ch.ok("load", amps=amps2, volts=volts2)
    time.sleep(2.2)
    v = values(wait_mv(csms, after=csms.mark(), cid=1, context="Sample.Periodic")["meterValue"][0])
    for i, ph in enumerate(("L1", "L2", "L3")):
        assert near(v[("Current.Import", ph)], amps2[i], 2, 0.1), (ph, v)
        assert near(v[("Voltage", ph + "-N")], volts2[i], 1), (ph, v)
    assert near(v[("Power.Active.Import", None)], 26 * 240.0, 2), v
    stop(ch, csms)


def test_energy_integrates_current_times_voltage_times_time(csms, charger_factory):
    ch = boot(charger_factory, csms, {"MeterValueSampleInterval": 2,
                                      "MeterValuesSampledData": REG})
    e0 = energy_now(ch)
    st, txid = start(ch, csms, (32, 32, 32), (230, 230, 230))
    assert isinstance(st["meterStart"], int) and st["meterStart"] == int(e0)
    watts = 3 * 32 * 230.0
    # Note the moments the register moves (the 1 Hz ticks) by polling the
    # bench quickly: the energy between two of them is P x their distance.
    # A move happened after the previous poll began and before this one
    # ended: on a busy machine a poll can take long, so the distance is
    # known within bounds, not to the millisecond.
    changes = []  # (earliest, latest, energy)
    last = energy_now(ch)
    prev = time.monotonic()
    t_end = time.time() + 14
    while time.time() < t_end:
        t0 = time.monotonic()
        e = energy_now(ch)
        if e != last:
            changes.append((prev, time.monotonic(), e))
            last = e
        prev = t0
        time.sleep(0.01)
    assert len(changes) >= 10, changes
    (lo1, hi1, e1), (lo2, hi2, e2) = changes[1], changes[-1]
    least, most = watts * (lo2 - hi1) / 3600.0, watts * (hi2 - lo1) / 3600.0
    assert least * 0.97 <= e2 - e1 <= most * 1.03, (e2 - e1, least, most, changes)
    reported = [values(p["meterValue"][0])[(REG, None)] for p in mvs(csms, cid=1)]
    sp = stop(ch, csms)
    assert isinstance(sp["meterStop"], int)
    e_end = energy_now(ch)
    # meterStop: the whole Wh of the register when the swipe came (a tick
    # of ~6 Wh may land before the relay opens)
    assert 0 <= e_end - sp["meterStop"] < 8, (sp, e_end)
    assert sp["meterStop"] >= max(reported)
    assert reported == sorted(reported)
    # the whole session, roughly: the relay closes a moment after the start
    dt = unix(sp["timestamp"]) - unix(st["timestamp"])
    assert near(sp["meterStop"] - st["meterStart"], watts * dt / 3600.0, 15), (sp, st)
    # the register is not reset per transaction
    st2, _ = start(ch, csms, (16, 16, 16), tag="TAG2")
    assert st2["meterStart"] >= sp["meterStop"]
    stop(ch, csms, "TAG2")


# --- Sample.Periodic ---------------------------------------------------------

def test_sample_interval_zero_gives_no_periodic_values(csms, charger_factory):
    ch = boot(charger_factory, csms, {"MeterValueSampleInterval": 0,
                                      "ClockAlignedDataInterval": 0})
    m = csms.mark()
    start(ch, csms)
    time.sleep(3.5)
    stop(ch, csms)
    assert csms.calls("MeterValues", after=m) == []


def test_periodic_values_carry_transaction_id_at_the_interval(csms, charger_factory):
    ch = boot(
        charger_factory,
        csms,
        {
            "MeterValueSampleInterval": 2,
            "MeterValuesSampledData": REG + ",Energy.Active.Import.Interval",
        },
    )
    m = csms.mark()
    st, txid = start(ch, csms, (16, 16, 16))
    time.sleep(7.5)
    msgs = [x for x in csms.calls("MeterValues", after=m)]
    stop(ch, csms)
    assert len(msgs) >= 3, msgs
    t0 = unix(st["timestamp"])
    stamps = []
    for x in msgs:
        p = x.payload
        assert p["connectorId"] == 1 and p["transactionId"] == txid, p
        mv = p["meterValue"][0]
        assert all(s["context"] == "Sample.Periodic" for s in mv["sampledValue"])
        stamps.append(unix(mv["timestamp"]))
    # on the grid start + k x 2 s (a late tick may give one off-grid value)
    on_grid = [s for s in stamps if (s - t0) % 2 == 0]
    assert len(on_grid) >= len(stamps) - 1, (t0, stamps)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(1 <= g <= 3 for g in gaps), gaps
    arrivals = [x.t for x in msgs]
    assert all(1.2 <= b - a <= 2.8 for a, b in zip(arrivals, arrivals[1:])), arrivals
    # Interval: the energy since the previous periodic value
    regs = [values(x.payload["meterValue"][0])[(REG, None)] for x in msgs]
    ivs = [values(x.payload["meterValue"][0])[("Energy.Active.Import.Interval", None)]
           for x in msgs]
    for i in range(1, len(regs)):
        assert ivs[i] == regs[i] - regs[i - 1], (regs, ivs)
    assert ivs[0] == regs[0] - st["meterStart"], (st, regs, ivs)


# --- Sample.Clock ------------------------------------------------------------

def test_clock_aligned_idle_and_in_transaction(csms, charger_factory):
    ch = boot(charger_factory, csms, {"ClockAlignedDataInterval": 3,
                                      "MeterValuesAlignedData": REG + ",Voltage"})
    m = csms.mark()
    time.sleep(6.6)
    idle = mvs(csms, after=m, context="Sample.Clock")
    assert {p["connectorId"] for p in idle} == {0, 1}, idle
    for p in idle:
        assert "transactionId" not in p, p
        mv = p["meterValue"][0]
        assert unix(mv["timestamp"]) % 3 == 0, mv["timestamp"]
        v = values(mv)
        assert (REG, None) in v and ("Voltage", "L1-N") in v
    assert len(idle) >= 2 * 2 - 1 and len(idle) <= 2 * 3, idle
    _, txid = start(ch, csms)
    m = csms.mark()
    c0 = wait_mv(csms, after=m, cid=0, context="Sample.Clock", timeout=5)
    c1 = wait_mv(csms, after=m, cid=1, context="Sample.Clock", timeout=5)
    assert "transactionId" not in c0  # E3.16
    assert c1["transactionId"] == txid
    assert c0["meterValue"][0]["timestamp"] == c1["meterValue"][0]["timestamp"]
    stop(ch, csms)


def test_two_connectors_connector_zero_is_the_sum(csms, charger_factory):
    ch = boot(charger_factory, csms, {"ClockAlignedDataInterval": 2,
                                      "MeterValuesAlignedData": REG + ",Current.Import"},
              connectors=2)
    _, tx1 = start(ch, csms, (10, 10, 10), cid=1)
    _, tx2 = start(ch, csms, (6, 6, 6), tag="TAG2", cid=2)
    time.sleep(1.2)
    m = csms.mark()
    # The first aligned tick whose three messages all came after the mark
    # (the mark may fall between a tick's connectors): one tick, one
    # timestamp for the three.
    got = None
    deadline = time.monotonic() + 8
    while got is None and time.monotonic() < deadline:
        ticks = {}
        for p in mvs(csms, after=m, context="Sample.Clock"):
            ticks.setdefault(p["meterValue"][0]["timestamp"], {})[p["connectorId"]] = p
        full = sorted(ts for ts, t in ticks.items() if len(t) == 3)
        if full:
            got = ticks[full[0]]
        else:
            time.sleep(0.2)
    assert got is not None, "no aligned tick with connectors 0, 1 and 2 in 8 s"
    assert "transactionId" not in got[0]
    assert got[1]["transactionId"] == tx1 and got[2]["transactionId"] == tx2
    v = {cid: values(p["meterValue"][0]) for cid, p in got.items()}
    assert v[0][(REG, None)] == v[1][(REG, None)] + v[2][(REG, None)], v
    for ph in ("L1", "L2", "L3"):
        assert near(v[1][("Current.Import", ph)], 10, 2, 0.1), v
        assert near(v[2][("Current.Import", ph)], 6, 2, 0.1), v
        assert near(v[0][("Current.Import", ph)], 16, 2, 0.1), v
    stop(ch, csms)
    stop(ch, csms, "TAG2")


# --- transactionData ---------------------------------------------------------

def test_transaction_data_thinned_keeps_begin_and_end(csms, charger_factory):
    ch = boot(charger_factory, csms, {"MeterValueSampleInterval": 1,
                                      "MeterValuesSampledData": REG,
                                      "StopTxnSampledData": REG + ",Power.Active.Import",
                                      "StopTransactionMaxMeterValues": 5})
    st, txid = start(ch, csms, (20, 20, 20))
    time.sleep(9)
    reported = [values(p["meterValue"][0])[(REG, None)] for p in mvs(csms, cid=1)]
    sp = stop(ch, csms)
    td = sp["transactionData"]
    assert 3 <= len(td) <= 5, td
    ctx = [mv["sampledValue"][0]["context"] for mv in td]
    assert ctx[0] == "Transaction.Begin" and ctx[-1] == "Transaction.End", ctx
    assert all(c == "Sample.Periodic" for c in ctx[1:-1]), ctx
    stamps = [unix(mv["timestamp"]) for mv in td]
    assert stamps == sorted(stamps)
    regs = [values(mv)[(REG, None)] for mv in td]
    assert regs == sorted(regs)
    assert regs[0] == st["meterStart"] and regs[-1] == sp["meterStop"], (regs, st, sp)
    # thinned evenly: the kept intermediates are not the first few values
    assert stamps[-2] - stamps[0] >= 4, stamps
    for mv in td:
        names = [s["measurand"] for s in mv["sampledValue"]]
        assert names == [REG, "Power.Active.Import"], names
    assert sp["meterStop"] >= max(reported)


def test_transaction_data_with_aligned_values(csms, charger_factory):
    ch = boot(charger_factory, csms, {"MeterValueSampleInterval": 0,
                                      "ClockAlignedDataInterval": 2,
                                      "StopTxnAlignedData": REG,
                                      "StopTransactionMaxMeterValues": 50})
    start(ch, csms)
    time.sleep(5)
    sp = stop(ch, csms)
    ctx = [mv["sampledValue"][0]["context"] for mv in sp["transactionData"]]
    assert ctx[0] == "Transaction.Begin" and ctx[-1] == "Transaction.End", ctx
    assert 2 <= ctx.count("Sample.Clock") <= 3 and len(ctx) == ctx.count("Sample.Clock") + 2, ctx
    for mv in sp["transactionData"][1:-1]:
        assert unix(mv["timestamp"]) % 2 == 0


def test_no_stop_txn_data_no_transaction_data(csms, charger_factory):
    ch = boot(charger_factory, csms, {"MeterValueSampleInterval": 1,
                                      "StopTxnSampledData": "", "StopTxnAlignedData": ""})
    start(ch, csms)
    time.sleep(2.5)
    sp = stop(ch, csms)
    assert "transactionData" not in sp, sp


# --- Trigger -----------------------------------------------------------------

def test_metering_imported_on_first_need(csms, charger_factory):
    # No transaction, no Sample.Clock: the metering code is not in the heap;
    # ClockAlignedDataInterval > 0 brings it in and its values follow.
    ch = boot(charger_factory, csms, {"MeterValuesAlignedData": REG})
    mods = ch.ok("heap")["modules"]
    assert "mpocpp.metering.meter" in mods and "mpocpp.metering.metervalues" not in mods
    assert "mpocpp.metering.sampledvalues" not in mods
    m = csms.mark()
    assert csms.call("CP1", "ChangeConfiguration",
                     {"key": "ClockAlignedDataInterval", "value": "2"})["status"] == "Accepted"
    assert "mpocpp.metering.metervalues" in ch.ok("heap")["modules"]
    assert wait_mv(csms, after=m, cid=1, context="Sample.Clock", timeout=5)


def test_trigger_meter_values(csms, charger_factory):
    ch = boot(charger_factory, csms, {"MeterValuesSampledData": REG + ",Current.Import"})
    m = csms.mark()
    r = csms.call("CP1", "TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 1})
    assert r["status"] == "Accepted"
    p = wait_mv(csms, after=m, cid=1, context="Trigger", timeout=5)
    assert "transactionId" not in p
    _, txid = start(ch, csms, (8, 8, 8))
    time.sleep(1.5)
    m = csms.mark()
    assert csms.call("CP1", "TriggerMessage", {"requestedMessage": "MeterValues",
                                               "connectorId": 1})["status"] == "Accepted"
    p = wait_mv(csms, after=m, cid=1, context="Trigger", timeout=5)
    assert p["transactionId"] == txid
    v = values(p["meterValue"][0])
    assert near(v[("Current.Import", "L2")], 8, 2, 0.1), v
    stop(ch, csms)


# --- configuration -----------------------------------------------------------

KEYS = ("MeterValuesSampledData", "MeterValuesAlignedData", "StopTxnSampledData",
        "StopTxnAlignedData")


def get_conf(csms, keys):
    r = csms.call("CP1", "GetConfiguration", {"key": list(keys)})
    assert not r.get("unknownKey"), r
    return {k["key"]: k.get("value") for k in r["configurationKey"]}


def test_measurand_keys_validated(csms, charger):
    maxes = get_conf(csms, [k + "MaxLength" for k in KEYS])
    assert set(maxes) == {k + "MaxLength" for k in KEYS}
    for key in KEYS:
        before = get_conf(csms, [key])[key]
        limit = int(maxes[key + "MaxLength"])
        for bad in ("Energy.Active.Import.Register,Bogus.Measurand", "energy",
                    ",".join(["Voltage"] * (limit + 1))):
            r = csms.call("CP1", "ChangeConfiguration", {"key": key, "value": bad})
            assert r["status"] == "Rejected", (key, bad, r)
            assert get_conf(csms, [key])[key] == before
        good = "Voltage,Current.Import,Energy.Active.Import.Register"
        r = csms.call("CP1", "ChangeConfiguration", {"key": key, "value": good})
        assert r["status"] == "Accepted", (key, r)
        assert get_conf(csms, [key])[key].replace(" ", "") == good
        r = csms.call("CP1", "ChangeConfiguration", {"key": key, "value": ""})
        assert r["status"] == "Accepted"
    # read-only
    r = csms.call("CP1", "ChangeConfiguration", {"key": "MeterValuesSampledDataMaxLength",
                                                 "value": "20"})
    assert r["status"] == "Rejected"


def test_changed_sampled_data_applies_to_the_next_value(csms, charger_factory):
    ch = boot(charger_factory, csms, {"MeterValueSampleInterval": 1,
                                      "MeterValuesSampledData": REG})
    start(ch, csms)
    wait_mv(csms, after=csms.mark(), cid=1, context="Sample.Periodic")
    assert csms.call("CP1", "ChangeConfiguration", {"key": "MeterValuesSampledData",
                                                    "value": "Voltage"})["status"] == "Accepted"
    p = wait_mv(csms, after=csms.mark(), cid=1, context="Sample.Periodic")
    assert {s["measurand"] for s in p["meterValue"][0]["sampledValue"]} == {"Voltage"}
    stop(ch, csms)


# --- power cut mid-session ---------------------------------------------------

def test_power_cut_mid_session_keeps_register_monotonic(csms, charger_factory):
    ch = boot(charger_factory, csms, {"MeterValueSampleInterval": 1,
                                      "MeterValuesSampledData": REG,
                                      "StopTxnSampledData": REG})
    st, txid = start(ch, csms, (32, 32, 32))
    time.sleep(4)
    reported = [values(p["meterValue"][0])[(REG, None)] for p in mvs(csms, cid=1)
                if p.get("transactionId") == txid]
    assert reported and reported == sorted(reported)
    e_before = energy_now(ch)
    m = csms.mark()
    ch.power_cut()
    ch.start()
    sp = csms.wait_for("StopTransaction", after=m, timeout=15).payload
    assert sp["transactionId"] == txid and sp["reason"] == "PowerLoss", sp
    assert isinstance(sp["meterStop"], int)
    assert sp["meterStop"] >= max(reported) and sp["meterStop"] >= st["meterStart"]
    # the register after the cut: never below what left in a message
    e_after = energy_now(ch)
    assert e_after >= max(reported) and e_after >= sp["meterStop"], (e_after, reported, sp)
    assert e_after >= e_before - 100, (e_after, e_before)  # save step: 100 Wh
    td = sp.get("transactionData")
    assert td and td[0]["sampledValue"][0]["context"] == "Transaction.Begin", td
    assert td[-1]["sampledValue"][0]["context"] == "Transaction.End", td
    # and it goes on counting from there
    ch.wait_state(lambda s: s["connectors"][0]["status"] in ("Available", "Preparing",
                                                             "Finishing"),
                  timeout=10, what="idle after the cut")
    ch.ok("plug_out")
    st2, _ = start(ch, csms, (16, 16, 16), tag="TAG2")
    assert st2["meterStart"] >= sp["meterStop"]
    stop(ch, csms, "TAG2")


# --- the driver and the meter in micropython --------------------------------

def run_mp(script, timeout=60):
    """Run a micropython script with the firmware and board packages on the path;
    returns the JSON it printed after RESULT."""
    p = subprocess.run([MICROPYTHON, "-X", "heapsize=2M", "-c", script], env=mp_env(),
                       capture_output=True, text=True, timeout=timeout)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise AssertionError("micropython failed:\n" + p.stdout[-3000:] + p.stderr[-3000:])


MP_SETUP = r'''
import sys, json, time, os
DIR = "{dir}"
from mpocpp_board import simhw
from mpocpp.metering import meter, sampledvalues
from mpocpp_board.adcmeter import AdcMeter
hw = simhw.SimConnectorHw(1, phases=3, max_amps=32)
d = hw.drivers()
hw.plug_in("C")
d.pilot.offer(32)
d.relay.close()
'''


def mp_setup(tmp_path):
    from harness import ROOT
    return MP_SETUP.replace("{root}", ROOT).replace("{dir}", str(tmp_path))


def test_active_power_is_mean_of_v_times_i_at_any_power_factor(tmp_path):
    r = run_mp(mp_setup(tmp_path) + r'''
hw.load([16.0, 10.0, 20.0], [230.0, 235.0, 225.0], pf=[0.8, 0.95, 0.6])
m = meter.Meter({1: d.meter}, DIR, save_step_wh=10**9)
out = {}
t = time.ticks_ms()
m.step(t)
for k in range(1, 6):  # five simulated seconds, readings of the real ADC
    m.step(time.ticks_add(t, 1000 * k))
sv = sampledvalues.sampled_values(m, 1, "Power.Active.Import,Current.Import,Voltage", "Trigger")
out["mv"] = [(s["measurand"], s.get("phase"), float(s["value"])) for s in sv]
out["wh"] = m.register_wh(1)
out["power_w"] = d.meter.power_w
# without voltage channels the driver has no v(t): U_nominal x I (PF 1)
nv = AdcMeter(hw.adc_currents, nominal_volts=230, **simhw.METER_CAL)
nv.read()
m2 = meter.Meter({1: nv}, DIR, save_step_wh=10**9)
m2.sample(1)
out["nominal_power_w"] = m2.latest(1)["power_w"]
out["nominal_driver_power"] = nv.power_w
print("RESULT " + json.dumps(out))
''')
    true_w = 16 * 230 * 0.8 + 10 * 235 * 0.95 + 20 * 225 * 0.6
    assert near(r["power_w"], true_w, 1.5), r
    mv = {(a, b): v for a, b, v in r["mv"]}
    assert near(mv[("Power.Active.Import", None)], true_w, 1.5), mv
    assert near(mv[("Current.Import", "L3")], 20, 1.5) and near(mv[("Voltage", "L2-N")], 235, 1), (
        mv
    )
    assert near(r["wh"], true_w * 5 / 3600, 2), r  # 5 s integrated
    assert r["nominal_driver_power"] is None
    assert near(r["nominal_power_w"], 230 * (16 + 10 + 20), 1.5), r


def test_missed_samples_are_covered_by_the_mirror_slot(tmp_path):
    # The CPU is taken away for 3 ms (a flash write, the host OS) in the middle
    # of every sampling: the slots missed are covered by their mirrors half a
    # mains period away, the values stay exact (the read need not wait for
    # those phases to come round again).
    r = run_mp(mp_setup(tmp_path) + r'''
hw.load([16.0, 10.0, 20.0], [230.0, 235.0, 225.0], pf=[0.9, 1.0, 0.7])


class Stall:
    # An ADC whose read sometimes takes 3 ms, like a preempted process.
    def __init__(self, adc):
        self.adc = adc
        self.n = 0

    def read_u16(self):
        self.n += 1
        if self.n % 40 == 20:
            t = time.ticks_us()
            while time.ticks_diff(time.ticks_us(), t) < 3000:
                pass
        return self.adc.read_u16()


cur = tuple(Stall(a) if i == 0 else a for i, a in enumerate(hw.adc_currents))
am = AdcMeter(cur, hw.adc_volts, temp=hw.temp_adc, temp_cal=simhw.TEMP_CAL, **simhw.METER_CAL)
out = {"reads": []}
for k in range(8):
    a, u, t = am.read()
    out["reads"].append([list(a), list(u), am.power_w, am._filled, am._n])
out["late"] = am.late
print("RESULT " + json.dumps(out))
''')
    true_w = 16 * 230 * 0.9 + 10 * 235 + 20 * 225 * 0.7
    mirrored = 0
    for a, u, pw, filled, n in r["reads"]:
        assert all(near(x, w, 1.5, 0.05) for x, w in zip(a, (16, 10, 20))), a
        assert all(near(x, w, 1) for x, w in zip(u, (230, 235, 225))), u
        assert near(pw, true_w, 1.5), (pw, true_w)
        mirrored += filled < n
    assert mirrored >= 4, r["reads"]  # most reads finished on mirrors
    assert r["late"] == 0


def test_power_factor_through_the_bench(csms, charger):
    # Real power is the mean of v(t)*i(t): at pf 0.8, 16 A x 230 V x 3 -> 8832 W.
    charger.ok("load", connector=1, amps=[16, 16, 16], volts=[230, 230, 230], pf=0.8)
    r = charger.op("load", connector=1, amps=[16], volts=[230], pf=1.5)
    assert not r["ok"] and "pf" in r["error"]
    charger.ok("plug_in", connector=1)
    charger.ok("swipe", idTag="PF1")
    csms.wait_for("StartTransaction", timeout=5)
    time.sleep(2.5)
    mark = csms.mark()
    csms.call("CP1", "ChangeConfiguration", {"key": "MeterValuesSampledData",
                                             "value": "Power.Active.Import,Current.Import"})
    csms.call("CP1", "TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 1})
    m = csms.wait_for("MeterValues", after=mark, timeout=5)
    sv = m.payload["meterValue"][0]["sampledValue"]
    p = [float(v["value"]) for v in sv if v.get("measurand") == "Power.Active.Import"][0]
    assert abs(p - 8832) / 8832 < 0.03, p
