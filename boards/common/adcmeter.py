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
from mpocpp.util import log

_SHIFT = const(4)  # work in 12-bit units: what ESP32/RP2040 ADCs resolve
_MAX_SPANS = const(10)  # at most this many windows to fill missed slots
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
        if samples < 4 or samples & 1:
            raise ValueError("samples per cycle: an even number >= 4")
        self._per = samples  # slots per mains cycle; a slot's mirror is per/2 away
        self._buf = array("H", bytes(2 * self._n * self._nch))
        self._got = bytearray(self._n)  # slot filled in this sampling
        self._w = bytearray(self._n)  # weight of each slot: 0, 1 or 2
        self._tw = 0  # sum of the weights (n when every slot is covered)
        self._offs = array("i", bytes(4 * self._nch))  # DC offset per channel
        self._filled = 0
        lsb = vref / 65535 * (1 << _SHIFT)
        self._a_scale = lsb * ct_ratio / burden_ohms
        self._v_scale = lsb * divider
        self._p_scale = self._a_scale * self._v_scale
        self.power_w = None  # active power of the last read(), W (or None)
        self._off = offset_counts
        self.nominal_volts = float(nominal_volts)
        self._floor = floor_amps
        self._temp = temp
        self._temp_cal = temp_cal
        self.elapsed_us = 0  # how long the last sampling blocked
        self.late = 0  # samplings that could not fill every slot

    def sample(self):
        # Fill slot i of every channel when the clock is at the start of
        # slot i (span/n us each) of the mains cycle. A slot missed because
        # an interrupt or the host OS took the CPU is covered by its mirror
        # half a mains period away (mains waves are half-wave symmetric: the
        # same square and the same v*i there), so one cycle is enough unless
        # a slot and its mirror were both missed; those are retaken at the
        # same phase of a later cycle, so the samples stay evenly spread.
        # Allocates nothing; blocks for `cycles` mains periods when nothing
        # interferes. False when slots were still uncovered after _MAX_SPANS
        # windows of sampling time.
        rd = self._rd
        buf = self._buf
        got = self._got
        nch = self._nch
        n = self._n
        per = self._per
        half = per >> 1
        span = self._span
        slot = span // n
        tol = slot // 2  # a round may start half a slot late
        for i in range(n):
            got[i] = 0
        left = n  # slots not filled
        bare = n  # slots neither filled nor mirrored
        t0 = time.ticks_us()
        limit = span * _MAX_SPANS
        busy = 0  # time we had the CPU: a starved host process keeps trying
        last = 0
        while left:
            el = time.ticks_diff(time.ticks_us(), t0)
            if el >= span and not bare:
                break  # a whole cycle, every slot known: done
            if el - last <= slot:
                busy += el - last
                if busy >= limit:
                    break
            last = el
            pos = el % span
            i = pos * n // span
            if got[i] or pos - i * span // n > tol:
                continue
            k = i
            for c in range(nch):  # channel-major: buf[c * n + i]
                buf[k] = rd[c]()
                k += n
            # A round stretched over more than a slot was interrupted: its
            # last channels sit at the wrong phase. Take it again later.
            if time.ticks_diff(time.ticks_us(), t0) - el <= slot:
                got[i] = 1
                left -= 1
                j = i - i % per + (i % per + half) % per
                if not got[j]:
                    bare -= 2
        self.elapsed_us = time.ticks_diff(time.ticks_us(), t0)
        self._filled = n - left
        self._weigh()
        return not bare

    def _weigh(self):
        # Weight of each slot in the sums: 1 when it and its mirror were
        # sampled, 2 when it stands in for its missed mirror, 0 when missed.
        # Then each channel's DC offset: the mean over the complete pairs
        # (exact for half-wave symmetric waves), else the weighted mean.
        got = self._got
        w = self._w
        n = self._n
        per = self._per
        half = per >> 1
        tw = 0
        for i in range(n):
            if got[i]:
                w[i] = 1 if got[i - i % per + (i % per + half) % per] else 2
            else:
                w[i] = 0
            tw += w[i]
        self._tw = tw
        buf = self._buf
        offs = self._offs
        fixed = self._off
        for c in range(self._nch):
            if fixed is not None:
                offs[c] = fixed
                continue
            start = c * n
            s1 = m1 = s2 = 0
            for i in range(n):
                x = w[i]
                if x:
                    v = buf[start + i]
                    s2 += x * v
                    if x == 1:
                        s1 += v
                        m1 += 1
            if m1 >= 2:
                offs[c] = (s1 + m1 // 2) // m1
            elif tw:
                offs[c] = (s2 + tw // 2) // tw
            else:
                offs[c] = 0

    def _rms(self, c):
        # RMS of channel c in 12-bit counts, DC offset removed, over the
        # slots the last sampling covered.
        tw = self._tw
        if not tw:
            return 0.0
        buf = self._buf
        w = self._w
        start = c * self._n
        off = self._offs[c] - (1 << (_SHIFT - 1))  # rounds the shift
        sq = 0  # < 2**28 (weights sum to n): a small int on every port
        for i in range(self._n):
            x = w[i]
            if x:
                d = (buf[start + i] - off) >> _SHIFT
                sq += x * d * d
        return math.sqrt(sq / tw)

    def _sum_vi(self, p):
        # Weighted sum of v(t) * i(t) of phase p over the covered slots, in
        # 12-bit counts squared (an int: < 2**28 like the RMS sums). Divided
        # by the weights it is the active power, right at any power factor.
        buf = self._buf
        w = self._w
        n = self._n
        si = p * n
        sv = (self.phases + p) * n
        r = 1 << (_SHIFT - 1)
        oi = self._offs[p] - r
        ov = self._offs[self.phases + p] - r
        acc = 0
        for i in range(n):
            x = w[i]
            if x:
                acc += x * ((buf[si + i] - oi) >> _SHIFT) * ((buf[sv + i] - ov) >> _SHIFT)
        return acc

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
        # Also sets self.power_w: the active power (W, import) as the mean of
        # v * i over the cycle when every phase has its voltage channel, else
        # None (then the caller takes U x I, exact only at power factor 1).
        if not self.sample():  # RMS over the slots that were covered
            self.late += 1
            log.warn(_TAG, "sampling incomplete after %d us", self.elapsed_us)
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
        amps = (a1, a2, a3)
        pw = None
        if nv >= p:
            tot = 0  # ints until the end: one float, not one per phase
            for k in range(p):
                if amps[k] > 0.0:  # below the floor: idle CT noise, no power
                    x = self._sum_vi(k)
                    if x > 0:  # import only (a reversed CT reads 0, not minus)
                        tot += x
            tw = self._tw
            pw = tot * self._p_scale / tw if tw else 0.0
        self.power_w = pw
        return amps, (u1, u2, u3), self.temperature()

    def _amps(self, c, floor):
        x = self._rms(c) * self._a_scale
        return x if x >= floor else 0.0  # noise on an idle CT reads as 0
