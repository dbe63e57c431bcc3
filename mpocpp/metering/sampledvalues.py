# MeterValues building blocks: sampledValue lists from the meter's latest
# readings (measurands, phases, units), and the schedules of Sample.Periodic
# and Sample.Clock. See docs/metering.md.
from micropython import const

from mpocpp.util import log
from mpocpp.util import clock

_TAG = "sv"
_CLOCK_LATE_S = const(60)  # a clock boundary seen later than this is skipped

PERIODIC = "Sample.Periodic"
_CLOCK = "Sample.Clock"
BEGIN = "Transaction.Begin"
END = "Transaction.End"
TRIGGER = "Trigger"

_PHASE = ("L1", "L2", "L3")
_PHASE_N = ("L1-N", "L2-N", "L3-N")


def _num(x, fmt):
    # A reading as a string; NaN / inf / None / negative read "0".
    if x is None or x != x or x < 0 or x > 1e12:
        x = 0.0
    return fmt % x


def _sv(out, value, context, measurand, unit, phase=None, location="Outlet"):
    d = {"value": value, "context": context, "format": "Raw",
         "measurand": measurand, "location": location, "unit": unit}
    if phase is not None:
        d["phase"] = phase
    out.append(d)


def measurands(csl):
    # "A, B,,C" -> ["A", "B", "C"]
    out = []
    if csl:
        for m in csl.split(","):
            m = m.strip()
            if m:
                out.append(m)
    return out


def sampled_values(meter, cid, measurands_csv, context, interval_start_wh=None):
    # The sampledValue list for connector cid (0 = the whole charge point),
    # one entry per measurand of the CSL in order, one per measurable phase
    # for per-phase measurands. Unknown measurands are skipped (logged);
    # Energy.Active.Import.Interval needs interval_start_wh (the integer
    # register reported at the interval start), Temperature a sensor:
    # without them they are left out.
    lt = meter.latest(cid)
    n = meter.phases
    out = []
    for m in measurands(measurands_csv):
        if m == "Energy.Active.Import.Register":
            # reported_wh persists it: never above what a power cut keeps
            _sv(out, "%d" % meter.reported_wh(cid), context, m, "Wh")
        elif m == "Energy.Active.Import.Interval":
            if interval_start_wh is not None:
                d = meter.reported_wh(cid) - interval_start_wh
                _sv(out, "%d" % int(d if d > 0 else 0), context, m, "Wh")
        elif m == "Power.Active.Import":
            _sv(out, _num(lt["power_w"], "%.0f"), context, m, "W")
        elif m == "Power.Offered":
            _sv(out, _num(lt["offered_w"], "%.0f"), context, m, "W")
        elif m == "Current.Import":
            a = lt["amps"]
            for i in range(n):
                _sv(out, _num(a[i], "%.2f"), context, m, "A", _PHASE[i])
        elif m == "Current.Offered":
            _sv(out, _num(lt["offered_a"], "%.1f"), context, m, "A")
        elif m == "Voltage":
            v = lt["volts"]
            for i in range(n):
                _sv(out, _num(v[i], "%.1f"), context, m, "V", _PHASE_N[i])
        elif m == "Temperature":
            t = lt["temp"]
            if t is not None and t == t:
                # "Celcius": the 1.6 schema's enum spelling (interop)
                _sv(out, "%.1f" % t, context, m, "Celcius", None, "Body")
        else:
            log.warn(_TAG, "unsupported measurand %r skipped", m)
    return out


def meter_value(meter, cid, measurands_csv, context, timestamp,
                interval_start_wh=None):
    # One MeterValue {"timestamp", "sampledValue"}; timestamp: unix seconds
    # or an ISO string. None when nothing is configured or measurable.
    sv = sampled_values(meter, cid, measurands_csv, context, interval_start_wh)
    if not sv:
        return None
    if not isinstance(timestamp, str):
        timestamp = clock.iso(timestamp)
    return {"timestamp": timestamp, "sampledValue": sv}


def _cfg_int(cfg, name):
    try:
        v = int(cfg.get(name))
        return v if v > 0 else 0
    except Exception as e:  # a missing or bad key disables, never crashes
        log.exc(_TAG, name, e)
        return 0


class Schedules:
    # Which meter values are due, driven by the 1 Hz tick with unix time.
    # The intervals are read on every check, so a change applies at once.
    # due() returns the same list object each call: consume it at once.
    def __init__(self, cfg, connectors=None):
        self._cfg = cfg
        self._ids = connectors  # None: 1..NumberOfConnectors
        self._tx = {}  # cid -> [start, next due, interval it was planned with]
        self._civ = 0  # clock interval of the current grid
        self._slot = 0  # last clock slot: unix // interval
        self._out = []

    def tx_started(self, cid, unix_now):
        now = int(unix_now)
        iv = _cfg_int(self._cfg, "MeterValueSampleInterval")
        self._tx[cid] = [now, now + iv if iv else None, iv]

    def tx_stopped(self, cid):
        self._tx.pop(cid, None)

    def _connectors(self):
        if self._ids is not None:
            return self._ids
        try:
            return range(1, int(self._cfg.get("NumberOfConnectors")) + 1)
        except Exception:
            return range(1, 2)

    def due(self, unix_now):
        now = int(unix_now)
        out = self._out
        out.clear()
        iv = _cfg_int(self._cfg, "ClockAlignedDataInterval")
        if iv:
            slot = now // iv  # slots of iv seconds from 00:00 UTC
            if iv != self._civ:  # new grid: wait for its next boundary
                self._civ = iv
                self._slot = slot - 1 if now % iv == 0 else slot
            if slot > self._slot:
                self._slot = slot
                if now - slot * iv <= _CLOCK_LATE_S:  # else a clock jump
                    out.append((0, _CLOCK))
                    for cid in self._connectors():
                        out.append((cid, _CLOCK))
            elif slot < self._slot:  # clock set back
                self._slot = slot
        else:
            self._civ = 0
        siv = _cfg_int(self._cfg, "MeterValueSampleInterval")
        for cid in self._tx:
            t = self._tx[cid]
            if not siv:
                t[2] = 0
                continue
            start = t[0]
            if now < start or (t[1] is not None and now < t[1] - siv):
                t[0] = start = now  # clock set back: re-anchor at now
                t[1] = None
            if t[2] != siv or t[1] is None:
                # interval changed: the next multiple of it from the start
                t[2] = siv
                t[1] = start + ((now - start) // siv + 1) * siv
                continue
            if now >= t[1]:
                out.append((cid, PERIODIC))
                t[1] = start + ((now - start) // siv + 1) * siv  # skip missed
        return out
