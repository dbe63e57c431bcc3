# Jitter of the meter's sampling tick and the CPU time of its task, for the
# benchmarks (bench/bench_meter.py): Meter(..., stats=TickStats()).
import time
from array import array
from micropython import const

_HIST = const(101)  # tick lateness histogram: 1 ms buckets, the last is >= 100


class TickStats:
    # Jitter of the sampling tick and the CPU time of the task. Lateness is
    # ms after the ideal tick time; busy_us is the time spent working.
    def __init__(self):
        self._hist = array("I", bytes(4 * _HIST))
        self.reset()

    def reset(self, now_ms=None):
        h = self._hist
        for i in range(_HIST):
            h[i] = 0
        self.count = 0
        self.skipped = 0  # ticks missed because the loop was blocked >= 1 tick
        self.late_max = 0
        self.late_sum = 0
        self.busy_us = 0
        self.busy_max_us = 0
        self._t0_ms = time.ticks_ms() if now_ms is None else now_ms

    def record(self, late_ms, busy_us):
        if late_ms < 0:
            late_ms = 0
        self.count += 1
        self.late_sum += late_ms
        if late_ms > self.late_max:
            self.late_max = late_ms
        self._hist[late_ms if late_ms < _HIST - 1 else _HIST - 1] += 1
        self.busy_us += busy_us
        if busy_us > self.busy_max_us:
            self.busy_max_us = busy_us

    def percentile(self, q):
        # Lateness (ms) below which a fraction q of the ticks fell; the
        # overflow bucket answers with the worst case (an upper bound).
        if not self.count:
            return 0
        need = q * self.count
        acc = 0
        for i in range(_HIST - 1):
            acc += self._hist[i]
            if acc >= need:
                return i
        return self.late_max

    def cpu_share(self, now_ms=None):
        # Fraction of wall time spent in the task since reset().
        if now_ms is None:
            now_ms = time.ticks_ms()
        el = time.ticks_diff(now_ms, self._t0_ms)
        return self.busy_us / (el * 1000) if el > 0 else 0.0

    def summary(self):
        return {"count": self.count, "skipped": self.skipped,
                "late_p50_ms": self.percentile(0.5),
                "late_p99_ms": self.percentile(0.99),
                "late_max_ms": self.late_max,
                "busy_max_us": self.busy_max_us,
                "cpu_share": self.cpu_share()}
