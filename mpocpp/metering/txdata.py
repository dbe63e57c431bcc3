# The transactionData of StopTransaction, kept in flash while the
# transaction runs (StopTxnSampledData / StopTxnAlignedData values, at most
# StopTransactionMaxMeterValues). See docs/metering.md.
import os
import json
from micropython import const

from mpocpp.util import log
from mpocpp.util import fsutil

_TAG = "txdata"
_MAX_LINE = const(8192)  # a longer stored line is corrupt


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
            log.warn(_TAG, "%s: %d bad lines dropped", self.path, self.bad)
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
            log.exc(_TAG, "append %s", e, self.path)
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
            log.exc(_TAG, "begin %s", e, self.path)
            return
        self.begun = True

    def add(self, mv):
        # One intermediate value (Sample.Periodic / Sample.Clock).
        if not self.begun or self.ended or not mv:
            log.warn(
                _TAG, "%s: value ignored (begun %s, ended %s)", self.path, self.begun, self.ended
            )
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
            log.warn(_TAG, "%s: end without begin", self.path)
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
