# RMS current and voltage from ADC channels: current transformers into a
# burden resistor, mains through a resistive divider, both riding on a DC
# mid-rail bias. One read() samples every channel over whole mains cycles
# (evenly spaced, so the RMS of the fundamental and low harmonics is exact),
# then computes RMS with the DC offset removed. A metering-IC driver can stand
# in for this class: it only needs the same read().
import time
import math
from array import array
from micropython import const
import log

_SHIFT = const(4)  # work in 12-bit units: what ESP32/RP2040 ADCs resolve
_TAG = "meter"


def _tup(x):
    if x is None:
        return ()
    if isinstance(x, (list, tuple)):
        return tuple(x)
    return (x,)


class AdcMeter:
    def __init__(self, adc_currents, adc_volts=None, ct_ratio=1000,
                 burden_ohms=10.0, divider=1.0, vref=3.3, offset_counts=None,
                 nominal_volts=230.0, mains_hz=50, temp=None, temp_cal=None,
                 samples=64, cycles=1, floor_amps=0.1):
        # ct_ratio: CT turns (e.g. 1000 for 1000:1); burden_ohms: the CT's
        # burden resistor; divider: mains volts per ADC-pin volt; vref: ADC
        # full scale in volts; offset_counts: DC bias in read_u16 counts, or
        # None to take each channel's mean (whole cycles: exact).
        # temp: None, callable() -> degC, or an ADC with temp_cal = (a, b):
        # degC = a * read_u16() + b.
        cur = _tup(adc_currents)
        vol = _tup(adc_volts)
        if not 1 <= len(cur) <= 3 or len(vol) > 3:
            raise ValueError("1..3 current and 0..3 voltage channels")
        self.phases = len(cur)
        self._nv = len(vol)
        self._rd = tuple(a.read_u16 for a in cur + vol)
        self._nch = len(self._rd)
        self._n = samples * cycles
        self._span = 1000000 * cycles // mains_hz  # microseconds sampled
        self._buf = array("H", bytes(2 * self._n * self._nch))
        lsb = vref / 65535 * (1 << _SHIFT)
        self._a_scale = lsb * ct_ratio / burden_ohms
        self._v_scale = lsb * divider
        self._off = offset_counts
        self.nominal_volts = float(nominal_volts)
        self._floor = floor_amps
        self._temp = temp
        self._temp_cal = temp_cal
        self.elapsed_us = 0  # how long the last sampling blocked

    def sample(self):
        # Fill the buffer: one round over all channels every span/n us.
        # Allocates nothing; blocks for about `cycles` mains periods.
        rd = self._rd
        buf = self._buf
        nch = self._nch
        n = self._n
        span = self._span
        t0 = time.ticks_us()
        for i in range(n):
            due = time.ticks_add(t0, i * span // n)
            while time.ticks_diff(due, time.ticks_us()) > 0:
                pass
            k = i
            for c in range(nch):  # channel-major: buf[c * n + i]
                buf[k] = rd[c]()
                k += n
        self.elapsed_us = time.ticks_diff(time.ticks_us(), t0)

    def _rms(self, c):
        # RMS of channel c in 12-bit counts, DC offset removed.
        buf = self._buf
        n = self._n
        start = c * n
        end = start + n
        off = self._off
        if off is None:
            s = 0
            for i in range(start, end):
                s += buf[i]
            off = (s + n // 2) // n
        half = 1 << (_SHIFT - 1)
        sq = 0  # < 2**28 for 64 samples of a 12-bit signal: a small int
        for i in range(start, end):
            d = (buf[i] - off + half) >> _SHIFT
            sq += d * d
        return math.sqrt(sq / n)

    def temperature(self):
        t = self._temp
        if t is None:
            return None
        try:
            if callable(t):
                return t()
            a, b = self._temp_cal
            return a * t.read_u16() + b
        except Exception as e:  # a bad sensor must not stop metering
            log.exc(_TAG, "temperature", e)
            return None

    def read(self):
        # -> ((I1, I2, I3) A, (U1, U2, U3) V, degC or None); missing current
        # phases read 0.0, missing voltage channels the nominal voltage.
        self.sample()
        p = self.phases
        fl = self._floor
        a1 = self._amps(0, fl)
        a2 = self._amps(1, fl) if p > 1 else 0.0
        a3 = self._amps(2, fl) if p > 2 else 0.0
        nv = self._nv
        vs = self._v_scale
        u = self.nominal_volts
        u1 = self._rms(p) * vs if nv else u
        u2 = self._rms(p + 1) * vs if nv > 1 else u
        u3 = self._rms(p + 2) * vs if nv > 2 else u
        return (a1, a2, a3), (u1, u2, u3), self.temperature()

    def _amps(self, c, floor):
        x = self._rms(c) * self._a_scale
        return x if x >= floor else 0.0  # noise on an idle CT reads as 0
