# Control pilot (IEC 61851-1): a 1 kHz PWM whose duty cycle advertises the
# current the EV may draw, and the pilot's high level read back to find the
# EV's state A..F. Takes machine-like objects: pwm.freq(hz), pwm.duty_u16([v]),
# adc.read_u16(); never imports machine.
import time
from micropython import const
from mpocpp.util import log

_FREQ = const(1000)  # Hz
_FULL = const(65535)
_PERIOD_US = const(1000)
_BINS = const(16)  # phase bins of 62.5 us
_ALL_BINS = const(0xFFFF)
_BURST_MAX_US = const(5000)  # give up on full coverage (slow ADC)
_GAP_US = const(200)  # a longer step between samples: the CPU was elsewhere
_MIN_A = const(6)
_MAX_A = const(80)
_HYST = 0.3  # volts: a reading this close to a boundary keeps the old state
_TAG = "pilot"


def amps_to_duty(amps):
    # Duty % advertising `amps`; 100 % (no PWM) below 6 A = no charging.
    if amps is None or amps < _MIN_A:
        return 100.0
    if amps <= 51:
        return amps / 0.6
    return amps / 2.5 + 64


def duty_to_amps(duty):
    # What an EV reads from a duty %: 0 when it allows no charging
    # (IEC 61851-1 table A.7: 8..97 % carries a current).
    if duty < 8 or duty > 97:
        return 0.0
    if duty < 10:
        return 6.0
    if duty <= 85:
        return duty * 0.6
    return min((duty - 64) * 2.5, 80.0)


def classify(v):
    # Pilot high level (volts) -> state letter.
    if v > 10.5:
        return "A"
    if v > 7.5:
        return "B"
    if v > 4.5:
        return "C"
    if v > 1.5:
        return "D"
    if v < -10.0:
        return "F"
    return "E"  # 0 V short, or out of every band


class ControlPilot:
    def __init__(self, pwm, adc, max_amps, volts_per_count=None,
                 zero_counts=32768, neg_off=True, invert=False,
                 diode_check=True):
        # volts_per_count: number (volts = (counts - zero_counts) * it) or a
        # callable(counts) -> volts. neg_off: the front end gives -12 V at
        # duty 0 (state F). invert: the output stage inverts the PWM.
        self._pwm = pwm
        self._adc = adc.read_u16
        self.max_amps = min(max_amps, _MAX_A)
        if callable(volts_per_count):
            self._cal = volts_per_count
            self._vpc = 0.0
        else:
            self._cal = None
            self._vpc = volts_per_count or 24.0 / _FULL
        self._zero = zero_counts
        self._neg_off = neg_off
        self._invert = invert
        self._diode_check = diode_check
        self.duty = 100.0
        self.offered_amps = 0
        self.state = "A"
        self.volts = 12.0  # last high level
        self.low_volts = -12.0  # last low level (diode check)
        pwm.freq(_FREQ)
        self._set(_FULL)

    def _set(self, d):
        self._pwm.duty_u16(_FULL - d if self._invert else d)

    def offer(self, amps):
        # Advertise `amps` (clamped to the hardware limit); returns the amps
        # actually advertised (0 = no charging allowed).
        try:
            a = min(float(amps), self.max_amps) if amps is not None else 0.0
        except (TypeError, ValueError):
            a = -1.0
        if a != a or a < 0:  # NaN or garbage
            log.error(_TAG, "bad current %r: stopping", amps)
            a = 0.0
        if a < _MIN_A:
            self.stop()
            return 0
        duty = amps_to_duty(a)
        # Round the register down so the EV never reads more than offered.
        self._set(int(duty * _FULL / 100))
        self.duty = duty
        self.offered_amps = a
        return a

    def stop(self):
        # 100 %: +12 V DC, no charging allowed.
        self._set(_FULL)
        self.duty = 100.0
        self.offered_amps = 0

    def off(self):
        # State F (-12 V): EVSE not available; 100 % where the front end
        # cannot drive -12 V steadily.
        if not self._neg_off:
            self.stop()
            return
        self._set(0)
        self.duty = 0.0
        self.offered_amps = 0

    def _to_volts(self, c):
        if self._cal:
            return self._cal(c)
        return (c - self._zero) * self._vpc

    def read_state(self):
        # Sample until every 1/16 of the PWM period has been seen (a high
        # phase is at least 80 us, wider than a bin, even if the CPU was
        # taken away mid-burst); the maximum is the high level the EV's
        # resistors set, the minimum the -12 V phase.
        rd = self._adc
        hi = 0
        lo = _FULL
        seen = 0
        busy = 0  # sampling time, without the gaps when the CPU was taken
        last = time.ticks_us()
        while seen != _ALL_BINS:
            t = time.ticks_us()
            dt = time.ticks_diff(t, last)
            last = t
            if dt < _GAP_US:
                busy += dt
                if busy > _BURST_MAX_US:
                    break
            c = rd()
            if c > hi:
                hi = c
            if c < lo:
                lo = c
            seen |= 1 << (t % _PERIOD_US * _BINS // _PERIOD_US)
        if seen != _ALL_BINS:  # part of the period unseen: no new reading
            return self.state
        v = self._to_volts(hi)
        self.volts = v
        self.low_volts = self._to_volts(lo)
        s = classify(v)
        prev = self.state
        if s != prev and (classify(v + _HYST) == prev or classify(v - _HYST) == prev):
            s = prev
        # No diode in the EV: the low phase is not -12 V while we oscillate.
        if (self._diode_check and s in "BCD" and 0 < self.duty <= 90
                and self.low_volts > -10.5):
            s = "E"
        self.state = s
        return s
