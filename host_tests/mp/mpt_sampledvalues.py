# MeterValues: sampledValue formats (checked against the 1.6 schema),
# Sample.Periodic / Sample.Clock schedules, transactionData thinning in flash.
from mpocpp.metering import meter
from mpocpp.metering import sampledvalues as mv
from mpocpp.metering.txdata import TxData
from mpocpp.protocol import validate
from mpocpp.util import fsutil

_MP = "/fl"
_MIDNIGHT = 1795219200  # 2026-11-21T00:00:00Z
ALL = ("Energy.Active.Import.Register,Energy.Active.Import.Interval,"
       "Power.Active.Import,Power.Offered,Current.Import,Current.Offered,"
       "Voltage,Temperature")
CONTEXTS = ("Sample.Periodic", "Sample.Clock", "Transaction.Begin",
            "Transaction.End", "Trigger")


def _flash():
    from mpocpp_board import norflash
    dev = norflash.NorFlash(256 * 1024)
    norflash.mount_lfs(dev, _MP)
    return dev


class Drv:
    def __init__(self, amps, volts=(230.0, 231.0, 229.0), temp=31.4):
        self.amps = amps
        self.volts = volts
        self.temp = temp
        self.power_w = None  # not measured: U x I

    def read(self):
        return self.amps, self.volts, self.temp


class Cfg:
    def __init__(self, **kw):
        self.v = {"MeterValueSampleInterval": 0, "ClockAlignedDataInterval": 0,
                  "NumberOfConnectors": 1, "StopTransactionMaxMeterValues": 5}
        self.v.update(kw)

    def get(self, name):
        return self.v[name]


def _meter(phases=3, temp=31.4, n=1):
    _flash()
    drv = {}
    for i in range(1, n + 1):
        drv[i] = Drv((16.0, 15.5, 16.25)[:3], temp=temp)
    m = meter.Meter(drv, _MP, phases=phases)
    m.step(0)
    for k in range(1, 3601):
        m.step(k * 1000)
    for i in drv:
        m.set_offered(i, 16)
    return m


def _valid(cid, mvs, tx=None):
    p = {"connectorId": cid, "meterValue": mvs}
    if tx is not None:
        p["transactionId"] = tx
    e = validate.check("MeterValues", False, p)
    assert e is None, e


def test_all_measurands_units_phases_locations():
    m = _meter()
    reg = m.register_wh(1)
    sv = mv.sampled_values(m, 1, ALL, "Sample.Periodic", int(reg) - 1234)
    got = [(s["measurand"], s.get("phase"), s["unit"], s["location"]) for s in sv]
    assert got == [
        ("Energy.Active.Import.Register", None, "Wh", "Outlet"),
        ("Energy.Active.Import.Interval", None, "Wh", "Outlet"),
        ("Power.Active.Import", None, "W", "Outlet"),
        ("Power.Offered", None, "W", "Outlet"),
        ("Current.Import", "L1", "A", "Outlet"),
        ("Current.Import", "L2", "A", "Outlet"),
        ("Current.Import", "L3", "A", "Outlet"),
        ("Current.Offered", None, "A", "Outlet"),
        ("Voltage", "L1-N", "V", "Outlet"),
        ("Voltage", "L2-N", "V", "Outlet"),
        ("Voltage", "L3-N", "V", "Outlet"),
        ("Temperature", None, "Celcius", "Body"),
    ], got
    vals = [s["value"] for s in sv]
    p = 16 * 230 + 15.5 * 231 + 16.25 * 229
    assert vals == ["%d" % int(reg), "1234", "%.0f" % p, "11040", "16.00",
                    "15.50", "16.25", "16.0", "230.0", "231.0", "229.0",
                    "31.4"], vals
    assert abs(int(vals[0]) - p) <= 1  # one hour at p watts
    for s in sv:
        assert s["format"] == "Raw" and s["context"] == "Sample.Periodic"
        assert isinstance(s["value"], str)
    for c in CONTEXTS:
        m1 = mv.meter_value(m, 1, ALL, c, _MIDNIGHT, 0)
        assert m1["timestamp"] == "2026-11-21T00:00:00Z"
        _valid(1, [m1], 42)
    # connector 0 (the whole charge point) carries no transactionId
    _valid(0, [mv.meter_value(m, 0, ALL, "Sample.Clock", _MIDNIGHT + 900)])


def test_single_phase_reports_only_l1():
    m = _meter(phases=1)
    sv = mv.sampled_values(m, 1, "Current.Import,Voltage,Power.Offered", "Trigger")
    assert [(s["measurand"], s.get("phase")) for s in sv] == [
        ("Current.Import", "L1"), ("Voltage", "L1-N"), ("Power.Offered", None)]
    assert sv[2]["value"] == "%.0f" % (16 * 230)
    _valid(1, [mv.meter_value(m, 1, "Current.Import,Voltage", "Trigger",
                              "2026-11-21T10:00:00Z")])


def test_connector_zero_sums_connectors():
    m = _meter(n=2)
    s0 = mv.sampled_values(m, 0, "Energy.Active.Import.Register,Current.Import",
                           "Sample.Clock")
    s1 = mv.sampled_values(m, 1, "Energy.Active.Import.Register,Current.Import",
                           "Sample.Clock")
    assert abs(int(s0[0]["value"]) - 2 * int(s1[0]["value"])) <= 1
    assert s0[1]["value"] == "32.00"


def test_empty_unknown_and_unmeasurable():
    m = _meter(temp=None)
    assert mv.meter_value(m, 1, "", "Trigger", 0) is None
    assert mv.meter_value(m, 1, " , ", "Trigger", 0) is None
    # no sensor: Temperature left out; no interval start: Interval left out
    assert mv.meter_value(m, 1, "Temperature,Energy.Active.Import.Interval",
                          "Trigger", 0) is None
    sv = mv.sampled_values(m, 1, "Frequency, Energy.Active.Import.Register ",
                           "Trigger")
    assert [s["measurand"] for s in sv] == ["Energy.Active.Import.Register"]
    # the register never reads negative in the interval
    sv = mv.sampled_values(m, 1, "Energy.Active.Import.Interval", "Trigger",
                           m.register_wh(1) + 50)
    assert sv[0]["value"] == "0"


# --- schedules ---

def _drive(s, t0, t1, step=1):
    out = []
    t = t0
    while t <= t1:
        for cid, ctx in s.due(t):
            out.append((t, cid, ctx))
        t += step
    return out


def test_periodic_from_tx_start():
    cfg = Cfg(MeterValueSampleInterval=60)
    s = mv.Schedules(cfg)
    start = _MIDNIGHT + 17
    assert _drive(s, start - 100, start - 1) == []  # idle: nothing periodic
    s.tx_started(1, start)
    got = _drive(s, start, start + 200)
    assert got == [(start + 60, 1, "Sample.Periodic"),
                   (start + 120, 1, "Sample.Periodic"),
                   (start + 180, 1, "Sample.Periodic")], got
    # missed ticks: one late value, then back on the grid from the start
    got = _drive(s, start + 201, start + 400, step=7)
    assert [g[0] - start for g in got] == [243, 306, 362], got
    # the clock set back by an hour: re-anchored, every 60 s from then on
    got = _drive(s, start - 3600, start - 3600 + 130)
    assert [g[0] - start for g in got] == [-3540, -3480], got
    s.tx_stopped(1)
    assert _drive(s, start + 401, start + 600) == []


def test_periodic_zero_disables_and_changes_apply_at_once():
    cfg = Cfg(MeterValueSampleInterval=0)
    s = mv.Schedules(cfg)
    s.tx_started(1, 1000)
    assert _drive(s, 1000, 1300) == []
    cfg.v["MeterValueSampleInterval"] = 30  # at 1301: next multiple of 30 from 1000
    got = _drive(s, 1301, 1400)
    assert [g[0] for g in got] == [1330, 1360, 1390], got
    cfg.v["MeterValueSampleInterval"] = 0
    assert _drive(s, 1401, 1500) == []


def test_two_transactions():
    s = mv.Schedules(Cfg(MeterValueSampleInterval=10, NumberOfConnectors=2))
    s.tx_started(1, 100)
    got = _drive(s, 100, 104)
    s.tx_started(2, 105)
    got += _drive(s, 105, 125)
    assert got == [(110, 1, "Sample.Periodic"), (115, 2, "Sample.Periodic"),
                   (120, 1, "Sample.Periodic"), (125, 2, "Sample.Periodic")], got


def test_clock_aligned_900_idle_including_connector_zero():
    cfg = Cfg(ClockAlignedDataInterval=900, NumberOfConnectors=2)
    s = mv.Schedules(cfg)
    got = _drive(s, _MIDNIGHT - 1000, _MIDNIGHT + 2000)
    t = [g[0] for g in got]
    assert t == [_MIDNIGHT - 900] * 3 + [_MIDNIGHT] * 3 + [_MIDNIGHT + 900] * 3 \
        + [_MIDNIGHT + 1800] * 3, got
    assert [g[1] for g in got[:3]] == [0, 1, 2]
    assert all(g[2] == "Sample.Clock" for g in got)
    # :00 :15 :30 :45 UTC
    from mpocpp.util import clock
    assert clock.iso(_MIDNIGHT + 900) == "2026-11-21T00:15:00Z"
    # a tick skipped over the boundary still gives it (late, once)
    s2 = mv.Schedules(Cfg(ClockAlignedDataInterval=900))
    got = _drive(s2, _MIDNIGHT - 7, _MIDNIGHT + 20, step=3)
    assert [(g[0], g[1]) for g in got] == [(_MIDNIGHT + 2, 0), (_MIDNIGHT + 2, 1)]


def test_clock_aligned_1s_and_zero_off():
    cfg = Cfg(ClockAlignedDataInterval=1)
    s = mv.Schedules(cfg, connectors=(1,))
    got = _drive(s, 5000, 5004)
    assert [(g[0], g[1]) for g in got] == [
        (t, c) for t in range(5000, 5005) for c in (0, 1)], got
    cfg.v["ClockAlignedDataInterval"] = 0
    assert _drive(s, 5005, 6000) == []
    cfg.v["ClockAlignedDataInterval"] = 900  # back on: next :xx boundary
    got = _drive(s, 6001, 6400)
    assert [g[0] for g in got] == [6300, 6300], got


def test_clock_jumps_give_no_spurious_values():
    s = mv.Schedules(Cfg(ClockAlignedDataInterval=900))
    assert _drive(s, 1000, 1010) == []  # unset RTC, then synchronised:
    assert s.due(_MIDNIGHT + 450) == []  # mid-interval: not aligned, nothing
    assert s.due(_MIDNIGHT + 100) == []  # set back a little: nothing either
    got = _drive(s, _MIDNIGHT + 101, _MIDNIGHT + 900)
    assert [g[0] for g in got] == [_MIDNIGHT + 900] * 2


def test_bad_config_disables():
    class Bad:
        def get(self, name):
            raise KeyError(name)
    s = mv.Schedules(Bad())
    s.tx_started(1, 0)
    assert _drive(s, 0, 100) == []


# --- transactionData ---

def _mvd(i, ctx="Sample.Periodic"):
    return {"timestamp": "2026-11-21T00:%02d:00Z" % (i % 60),
            "sampledValue": [{"value": str(i), "context": ctx}]}


def _ids(vals):
    return [int(v["sampledValue"][0]["value"]) for v in vals]


def _lines(path):
    return fsutil.read(path).decode().count("\n")


def test_txdata_thinning_keeps_begin_and_end():
    _flash()
    p = _MP + "/tx1.mv"
    max5 = lambda: 5  # noqa: E731
    td = TxData(p, max5)
    td.begin(_mvd(0, "Transaction.Begin"))
    for i in range(1, 21):
        td.add(_mvd(i))
        assert td.n <= 3 and _lines(p) <= 5  # header + Begin + 3
    td.end(_mvd(99, "Transaction.End"))
    v = td.values()
    assert len(v) <= 5
    assert v[0]["sampledValue"][0]["context"] == "Transaction.Begin"
    assert v[-1]["sampledValue"][0]["context"] == "Transaction.End"
    ids = _ids(v)
    assert ids[0] == 0 and ids[-1] == 99
    # survivors are evenly spaced (the stride doubled at each thinning)
    mid = ids[1:-1]
    assert mid == [8, 16], ids
    s = ('{"connectorId":1,"meterStop":1,"timestamp":"2026-11-21T00:00:00Z",'
         '"transactionId":1}')
    import json
    payload = json.loads(s)
    payload["transactionData"] = v
    assert validate.check("StopTransaction", False, payload) is None
    td.discard()
    assert not fsutil.exists(p)


def test_txdata_drops_first_third_fifth():
    _flash()
    p = _MP + "/tx.mv"
    td = TxData(p, lambda: 6)  # room for 4 intermediates
    td.begin(_mvd(0))
    for i in range(1, 6):
        td.add(_mvd(i))
    # the 5th arrival thinned 1..4 to 2, 4 and was then kept (stride 2)
    assert _ids(td.values()) == [0, 2, 4], _ids(td.values())
    for i in range(6, 9):
        td.add(_mvd(i))
    td.end(_mvd(99))
    assert _ids(td.values()) == [0, 2, 4, 6, 8, 99]


def test_txdata_survives_power_cut():
    _flash()
    pa = _MP + "/a.mv"
    pb = _MP + "/b.mv"
    ref = TxData(pa, lambda: 5)
    td = TxData(pb, lambda: 5)
    for x in (ref, td):
        x.begin(_mvd(0))
    for i in range(1, 12):
        ref.add(_mvd(i))
        td.add(_mvd(i))
    td = TxData(pb, lambda: 5)  # power cut: a new object on the same file
    assert td.begun and not td.ended and td.stride == ref.stride
    assert _ids(td.values()) == _ids(ref.values())  # nothing lost
    for i in range(12, 30):
        ref.add(_mvd(i))
        td.add(_mvd(i))
    for x in (ref, td):
        x.end(_mvd(99))
    a = _ids(td.values())
    # the cut only shifts the thinning's phase: same shape, same guarantees
    assert len(a) == len(_ids(ref.values())) == 5, (a, _ids(ref.values()))
    assert a[0] == 0 and a[-1] == 99 and a == sorted(a), a
    td2 = TxData(pb, lambda: 5)
    assert td2.ended and _ids(td2.values()) == a
    td2.add(_mvd(100))  # after End: ignored
    assert _ids(td2.values()) == a


def test_txdata_bad_lines_and_limits():
    _flash()
    p = _MP + "/c.mv"
    td = TxData(p, lambda: 2)  # only Begin and End
    td.begin(_mvd(0))
    for i in range(1, 5):
        assert not td.add(_mvd(i))
    td.end(_mvd(9))
    assert _ids(td.values()) == [0, 9]
    # a torn / garbage line is dropped at the next open
    td = TxData(p, lambda: 10)
    td.begin(_mvd(0))
    td.add(_mvd(1))
    with open(p, "a") as f:
        f.write("I 7 {\"timesta")
    td = TxData(p, lambda: 10)
    assert td.n == 1
    td.add(_mvd(2))
    td.end(_mvd(9))
    assert _ids(td.values()) == [0, 1, 2, 9]
    # the max shrank: values() still respects it, Begin/End kept
    td = TxData(p, lambda: 3)
    v = _ids(td.values())
    assert v[0] == 0 and v[-1] == 9 and len(v) <= 3, v
    # add before begin is refused, end without begin still records End
    q = _MP + "/d.mv"
    td = TxData(q, lambda: 5)
    assert not td.add(_mvd(1))
    td.end(_mvd(9))
    assert _ids(td.values()) == [9]
    # a bad max_values_fn: Begin/End only, logged
    td = TxData(_MP + "/e.mv", lambda: int("x"))
    td.begin(_mvd(0))
    td.add(_mvd(1))
    td.end(_mvd(2))
    assert _ids(td.values()) == [0, 2]


def test_periodic_grid_starts_at_the_transactions_own_start():
    # Found by a whole-suite run: StartTransaction said 08:06:55 (the
    # session started at :55.999), but the schedule was told after the
    # flash writes, at :56.008, so every periodic value came one second off
    # the grid the CSMS computes from the transaction's timestamp.
    from mpocpp.metering.metervalues import MeterValues

    class Tx:
        start = _MIDNIGHT + 55
        meter_start = 0

    class Conn:
        id = 1
        tx = Tx()

    cfg = Cfg(MeterValueSampleInterval=2, StopTxnSampledData="", StopTxnAlignedData="")
    cfg.dir = _MP
    m = _meter()
    mvs = MeterValues(cfg, m, None, None)
    mvs.tx_started(Conn())  # called later than the start, by clock.now()
    got = _drive(mvs.schedules, _MIDNIGHT + 56, _MIDNIGHT + 62)
    assert [g[0] - _MIDNIGHT for g in got] == [57, 59, 61], got


class _Tx:
    # A running transaction as MeterValues sees it.
    id = 7
    start = _MIDNIGHT
    meter_start = 0


class _Conn:
    # Connector 1, charging in that transaction.
    id = 1
    tx = _Tx()


def test_txdata_code_only_for_stop_txn_measurands():
    # StopTxnSampledData and StopTxnAlignedData empty (the default): a
    # transaction neither loads txdata.py nor keeps a record, and the record
    # an earlier transaction left (a power cut) goes. With a measurand
    # named, the record is kept and read at the stop.
    import sys
    from fakes import init_clock
    from mpocpp.metering.metervalues import MeterValues
    from mpocpp.util import modules

    init_clock(_MIDNIGHT + 10)
    name = "mpocpp.metering.txdata"
    cfg = Cfg(StopTxnSampledData="", StopTxnAlignedData="")
    cfg.dir = _MP
    m = _meter()
    path = _MP + "/txdata1"
    TxData(path, lambda: 5).begin(_mvd(0))
    fsutil.write_atomic(path + ".tmp", b"I 1 {}\n")
    modules.release(name)
    conn = _Conn()
    mvs = MeterValues(cfg, m, [None, conn], None)
    mvs.tx_started(conn)
    assert name not in sys.modules
    assert not fsutil.exists(path) and not fsutil.exists(path + ".tmp")
    assert mvs.tx_data(conn) is None and name not in sys.modules
    cfg.v["StopTxnSampledData"] = "Energy.Active.Import.Register"
    mvs.tx_started(conn)
    assert name in sys.modules and fsutil.exists(path)
    td = mvs.tx_data(conn)
    assert [v["sampledValue"][0]["context"] for v in td] == \
        ["Transaction.Begin", "Transaction.End"], td
    # emptied again during the next transaction: its record goes at the stop
    mvs.tx_started(conn)
    assert fsutil.exists(path)
    cfg.v["StopTxnSampledData"] = ""
    assert mvs.tx_data(conn) is None and not fsutil.exists(path)


def test_ondemand_lets_metervalues_go_when_idle_unless_clock_aligned():
    # ondemand.py: MeterValues, made for a transaction or a trigger, goes when
    # the connectors have been idle a while (Sessions calls idle()), but not
    # while Sample.Clock values are due.
    import sys
    from mpocpp.ondemand import OnDemand

    class C(Cfg):
        def supports(self, profile):
            return False

    name = "mpocpp.metering.metervalues"
    cfg = C(StopTxnSampledData="", StopTxnAlignedData="")
    cfg.dir = _MP
    od = OnDemand(cfg, _meter(), [None], None, {})
    assert not od.held()
    od.idle()
    assert od.use_metervalues() is not None and od.held() and name in sys.modules
    od.idle()
    assert od.metervalues is None and not od.held() and name not in sys.modules
    cfg.v["ClockAlignedDataInterval"] = 900
    od.configured("ClockAlignedDataInterval")
    assert od.metervalues is not None and not od.held()
    od.idle()
    assert od.metervalues is not None and name in sys.modules


def test_a_value_without_heap_is_built_again_at_the_next_tick():
    # A MemoryError while a periodic value is built or queued loses nothing:
    # the value is built at the next tick with its own time and transaction,
    # its Interval measured from the last value queued, and a value already
    # queued is not queued twice when only its transactionData failed.
    from fakes import init_clock
    from mpocpp.metering.metervalues import MeterValues
    from mpocpp.util import clock, log

    class Queue:
        def __init__(self):
            self.fail = 1
            self.pushed = []

        def push(self, action, payload, txn):
            if self.fail:
                self.fail -= 1
                raise MemoryError("no heap")
            self.pushed.append(payload)

    class Flaky(TxData):
        fail = 1

        def add(self, v):
            if Flaky.fail:
                Flaky.fail -= 1
                raise MemoryError("no heap")
            TxData.add(self, v)

    init_clock(_MIDNIGHT)
    cfg = Cfg(MeterValueSampleInterval=2, StopTxnAlignedData="",
              MeterValuesSampledData="Energy.Active.Import.Register,Energy.Active.Import.Interval",
              StopTxnSampledData="Energy.Active.Import.Register")
    cfg.dir = _MP
    m = _meter()
    q = Queue()
    conn = _Conn()
    mvs = MeterValues(cfg, m, [None, conn], q)
    mvs.tx_started(conn)
    lost = []
    log.sink = lost.append
    try:
        clock.set_time(_MIDNIGHT + 2)
        mvs.tick(0)  # due: the queue has no heap
        assert q.pushed == [] and len(lost) == 1 and "MemoryError" in lost[0], lost
        clock.set_time(_MIDNIGHT + 3)
        mvs.tick(0)  # built again, with its time
        assert len(q.pushed) == 1, q.pushed
        p = q.pushed[0]
        assert p["transactionId"] == 7 and p["meterValue"][0]["timestamp"] == \
            "2026-11-21T00:00:02Z", p
        _valid(1, p["meterValue"], 7)
        mvs._txdata[1] = Flaky(_MP + "/txdata1", mvs._max)  # noqa: SLF001
        clock.set_time(_MIDNIGHT + 4)
        mvs.tick(0)  # queued, but its transactionData had no heap
        assert len(q.pushed) == 2 and len(lost) == 2, lost
        clock.set_time(_MIDNIGHT + 5)
        mvs.tick(0)
        assert len(q.pushed) == 2  # not queued twice
        assert len(mvs._txdata[1].values()) >= 1  # noqa: SLF001
        # The Interval of the value built late: from meterStart (0), not
        # from where the failed attempt had got to.
        sv = {s.get("measurand"): s for s in p["meterValue"][0]["sampledValue"]}
        reg = sv["Energy.Active.Import.Register"]
        iv = sv["Energy.Active.Import.Interval"]
        assert float(reg["value"]) > 1 and iv["value"] == str(int(float(reg["value"]))), sv
    finally:
        log.sink = None
