# MeterValues building blocks: sampledValue lists from the meter, the
# schedules of Sample.Periodic / Sample.Clock, and the transactionData of
# StopTransaction kept in flash (TxData). See docs/metering.md.
import os
import json
from micropython import const

from mpocpp.util import log
from mpocpp.util import clock
from mpocpp.util import fsutil

_TAG = "mv"
_CLOCK_LATE_S = const(60)  # a clock boundary seen later than this is skipped
_MAX_LINE = const(8192)  # a longer stored line is corrupt

PERIODIC = "Sample.Periodic"
CLOCK = "Sample.Clock"
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
            log.warn(_TAG, "unsupported measurand %r skipped" % (m,))
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
                    out.append((0, CLOCK))
                    for cid in self._connectors():
                        out.append((cid, CLOCK))
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


class TxData:
    # transactionData of one transaction in a flash file, one line each:
    #   "H <stride>"        header (rewritten only when thinning)
    #   "B <json>"          Transaction.Begin
    #   "I <index> <json>"  intermediate values, index = arrival number
    #   "E <json>"          Transaction.End
    # At most max-2 intermediates are stored: when one more arrives the file
    # is rewritten without the 1st, 3rd, 5th... intermediate and the stride
    # doubles, so later arrivals are kept only every stride-th one: the
    # survivors stay evenly spaced. RAM holds one line at a time.
    def __init__(self, path, max_values_fn):
        self.path = path
        self._max = max_values_fn
        self._reset()
        if fsutil.exists(path):
            self._scan()

    def _reset(self):
        self.stride = 1
        self.n = 0  # stored intermediates
        self.index = 0  # arrivals of intermediates so far
        self.begun = False
        self.ended = False

    def _cap(self):
        try:
            m = int(self._max())
        except Exception as e:
            log.exc(_TAG, "StopTransactionMaxMeterValues", e)
            m = 2
        return m - 2 if m > 2 else 0

    def _lines(self):
        # Yields (kind, index, json text) of the valid lines; counts the bad.
        self.bad = 0
        try:
            f = open(self.path, "r")
        except OSError:
            return
        try:
            while True:
                ln = f.readline()
                if not ln:
                    break
                r = self._parse(ln)
                if r is None:
                    self.bad += 1
                else:
                    yield r
        finally:
            f.close()

    def _parse(self, ln):
        if len(ln) > _MAX_LINE or not ln.endswith("\n") or len(ln) < 3:
            return None
        k = ln[0]
        try:
            if k == "H":
                return ("H", int(ln[2:-1]), None)
            if k == "I":
                sp = ln.index(" ", 2)
                js = ln[sp + 1:-1]
                if js[:1] == "{":
                    return ("I", int(ln[2:sp]), js)
            elif k in "BE" and ln[2] == "{":
                return (k, 0, ln[2:-1])
        except ValueError:
            pass
        return None

    def _scan(self):
        self._reset()
        for k, i, _ in self._lines():
            if k == "H":
                self.stride = i if i > 0 else 1
            elif k == "B":
                self.begun = True
            elif k == "I":
                self.n += 1
                if i > self.index:
                    self.index = i
            else:
                self.ended = True
        # arrivals skipped by the stride were not written: take the next one
        # (a power cut only shifts the phase of the thinning)
        s = self.stride
        self.index = (self.index // s + 1) * s - 1
        if self.bad:
            log.warn(_TAG, "%s: %d bad lines dropped" % (self.path, self.bad))
            self._rewrite(False)

    def _rewrite(self, thin):
        # Stream the file into a new one (dropping bad lines, and with thin
        # the 1st, 3rd... intermediate), then rename over it: atomic.
        tmp = self.path + ".tmp"
        n = 0
        j = 0
        if thin:
            self.stride *= 2
        with open(tmp, "w") as f:
            f.write("H %d\n" % self.stride)
            for k, i, js in self._lines():
                if k == "H":
                    continue
                if k == "I":
                    j += 1
                    if thin and j & 1:
                        continue
                    n += 1
                    f.write("I %d %s\n" % (i, js))
                else:
                    f.write("%s %s\n" % (k, js))
        os.rename(tmp, self.path)
        self.n = n

    def _append(self, line):
        try:
            with open(self.path, "a") as f:
                f.write(line)
            return True
        except OSError as e:
            log.exc(_TAG, "append " + self.path, e)
            return False

    @staticmethod
    def _json(mv):
        s = json.dumps(mv)
        return s if "\n" not in s else None  # dumps never emits one; be sure

    def begin(self, mv):
        # Start a new record with the Transaction.Begin value (replaces any
        # old file on this path).
        self._reset()
        js = self._json(mv) if mv else None
        try:
            fsutil.write_atomic(self.path, "H 1\n" + ("B %s\n" % js if js else ""))
        except OSError as e:
            log.exc(_TAG, "begin " + self.path, e)
            return
        self.begun = True

    def add(self, mv):
        # One intermediate value (Sample.Periodic / Sample.Clock).
        if not self.begun or self.ended or not mv:
            log.warn(_TAG, "%s: value ignored (begun %s, ended %s)"
                     % (self.path, self.begun, self.ended))
            return False
        self.index += 1
        if self.index % self.stride:
            return False
        cap = self._cap()
        if not cap:
            return False
        while self.n >= cap:
            self._rewrite(True)
            if self.index % self.stride:
                return False
        js = self._json(mv)
        if js is None:
            return False
        if self._append("I %d %s\n" % (self.index, js)):
            self.n += 1
            return True
        return False

    def end(self, mv):
        if not self.begun:
            log.warn(_TAG, "%s: end without begin" % self.path)
            self.begin(None)
        if self.ended or not mv:
            return
        js = self._json(mv)
        if js is not None and self._append("E %s\n" % js):
            self.ended = True

    def iter_json(self):
        # The stored MeterValue JSON texts, Begin first, End last, within
        # StopTransactionMaxMeterValues (thinned first when the max shrank).
        cap = self._cap()
        while self.n > cap:
            self._rewrite(True)
        for k, i, js in self._lines():
            if k != "H":
                yield js

    def values(self):
        out = []
        for js in self.iter_json():
            out.append(json.loads(js))
        return out

    def discard(self):
        fsutil.remove(self.path)
        fsutil.remove(self.path + ".tmp")
        self._reset()
