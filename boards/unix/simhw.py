# Simulated hardware of the unix board: machine-like pins, PWMs and ADCs for
# the drivers in boards/common, and a simulated EV behind each connector.
# The EV follows IEC 61851-1: plugged = 9 V (B); an EV that wants energy
# closes S2 (6 V, C) while the pilot duty offers current; it draws
# min(load, offered) per phase while the contactor is closed.
# ADC reads allocate nothing: waves come from an integer sine table and an
# integer noise generator, amplitudes are recomputed only on events.
import json
import os
import time
import math
from array import array
from micropython import const
from mpocpp_board.connectorhw import ConnectorHw
from mpocpp_board.led import Led

_TABLE = const(1000)  # sine points per mains period
_FULL = const(65535)
_MID = const(32768)
_PWM_US = const(1000)  # pilot period
_LOCK_MS = const(60)  # lock motor travel time
_PILOT_CPV = 2482.4  # counts per pilot volt: +-12 V -> 1.65 +- 1.5 V of 3.3 V
NOISE_PCT = 0.5  # of the peak, plus _NOISE_COUNTS
_NOISE_COUNTS = const(4)

# Calibration the unix board hands to the drivers (what a real board's
# schematic gives): 1000:1 CTs into 10 ohm, 250:1 mains divider, 3.3 V ADC.
METER_CAL = {"ct_ratio": 1000, "burden_ohms": 10.0, "divider": 250.0,
             "vref": 3.3}
PILOT_VPC = 1 / _PILOT_CPV
PILOT_ZERO = _MID
# RP2040-style internal sensor: 0.706 V at 27 C, -1.721 mV/C.
TEMP_CAL = (-3.3 / _FULL / 0.001721, 27 + 0.706 / 0.001721)
FAULTS = ("weld", "stuck_open", "lock_jam", "diode")
EV_STATES = ("A", "B", "C", "D", "E", "F")

_sine = None


def _table():
    global _sine
    if _sine is None:
        _sine = array("h", (int(32767 * math.sin(2 * math.pi * i / _TABLE))
                            for i in range(_TABLE)))
    return _sine


class _Noise:
    # Uniform integer noise in [-n, n] from a 16-bit xorshift (7, 9, 8):
    # small ints on a 32-bit port too, where a 31-bit LCG's products are not
    # (each sample would allocate).
    def __init__(self, seed):
        self._s = (seed & 0xFFFF) or 1
        self.n = _NOISE_COUNTS

    def next(self):
        s = self._s
        s ^= (s << 7) & 0xFFFF
        s ^= s >> 9
        s ^= (s << 8) & 0xFFFF
        self._s = s
        return s % (2 * self.n + 1) - self.n


class SimPin:
    # Output (or settable input) pin: value([v]); on_change() after a change.
    def __init__(self, value=0, on_change=None):
        self._v = value
        self._cb = on_change

    def value(self, v=None):
        if v is None:
            return self._v
        v = 1 if v else 0
        if v != self._v:
            self._v = v
            if self._cb:
                self._cb()

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class SimInput:
    # Input pin whose level the simulation computes: fn() -> 0/1.
    def __init__(self, fn):
        self._fn = fn

    def value(self, v=None):
        return self._fn()


class SimPWM:
    def __init__(self, on_change=None):
        self._f = 0
        self._d = 0
        self._cb = on_change

    def freq(self, f=None):
        if f is None:
            return self._f
        self._f = f

    def duty_u16(self, d=None):
        if d is None:
            return self._d
        d = 0 if d < 0 else _FULL if d > _FULL else int(d)
        if d != self._d:
            self._d = d
            if self._cb:
                self._cb()


class SimWaveAdc:
    # A 50 Hz sine on a DC bias, with noise; amplitude set by the simulation.
    def __init__(self, shift_us, bias, seed, mains_hz=50):
        self._period = 1000000 // mains_hz
        self._shift = shift_us
        self._bias = bias
        self._amp = 0
        self._noise = _Noise(seed)
        self._sin = _table()

    def set_shift(self, us):
        self._shift = us % self._period

    def set_peak(self, counts):
        self._amp = int(counts)
        self._noise.n = int(counts * NOISE_PCT / 100) + _NOISE_COUNTS

    def read_u16(self):
        p = self._period
        i = (time.ticks_us() + self._shift) % p * _TABLE // p
        v = self._bias + (self._sin[i] * self._amp >> 15) + self._noise.next()
        return 0 if v < 0 else _FULL if v > _FULL else v


class SimPilotAdc:
    # The pilot line through the board's divider: the high level the EV's
    # resistors give during the PWM high phase, -12 V (or no diode) in the low.
    def __init__(self, hw):
        self._hw = hw
        self._noise = _Noise(7)

    def read_u16(self):
        hw = self._hw
        high = time.ticks_us() % _PWM_US < hw.pwm_hi_us
        c = hw.pilot_hi_counts if high else hw.pilot_lo_counts
        return c + self._noise.next()


class SimTempAdc:
    def __init__(self, hw):
        self._hw = hw

    def read_u16(self):
        return self._hw.temp_counts


def _per_phase(x, n, what):
    if isinstance(x, (int, float)):
        return [float(x)] * n
    try:
        v = [float(a) for a in x][:n]
    except (TypeError, ValueError):
        raise ValueError("bad %s %r" % (what, x))
    return v + [0.0] * (n - len(v))


class SimConnectorHw:
    # state_path: a host file (beside the flash image, not in it) that keeps
    # the EV across a power cut: a real EV stays plugged while the charger
    # is off, so after a restart on the same --data it is still there.
    def __init__(self, connector_id, phases=3, max_amps=32, mains_hz=50, state_path=None):
        if phases not in (1, 3):
            raise ValueError("phases must be 1 or 3")
        self.connector_id = connector_id
        self.phases = phases
        self.max_amps = max_amps
        self.mains_hz = mains_hz
        self.plugged = False
        self.ev = "C"  # what the EV wants: B pause, C/D charge, E/F injected
        self.faults = set()
        self.ambient_c = 25.0
        self._want = [16.0] * phases  # EV demand per phase (A)
        self._grid = [230.0] * phases  # mains volts per phase
        self._pf = [1.0] * phases  # power factor of the EV's load (lagging)
        self.amps = [0.0] * phases  # flowing now
        self.pilot_volts = 12.0
        self.pwm_hi_us = _PWM_US
        self.pilot_hi_counts = self.pilot_lo_counts = _MID
        self.temp_c = 25.0
        self.temp_counts = 0
        self._lock_pos = 0
        self._lock_target = 0
        self._lock_due = None
        # pins for the drivers
        self.relay_pin = SimPin(0, self._update)
        self.relay_feedback = SimInput(self._contact)
        self.lock_pin = SimPin(0, self._lock_drive)
        self.unlock_pin = SimPin(0, self._lock_drive)
        self.lock_sense = SimInput(self._lock_sensed)
        self.pilot_pwm = SimPWM(self._update)
        self.pilot_adc = SimPilotAdc(self)
        third = 1000000 // mains_hz // 3
        self.adc_currents = tuple(
            SimWaveAdc(i * third, _MID + 37 - 23 * i, 101 + 10 * connector_id + i,
                       mains_hz) for i in range(phases))
        self.adc_volts = tuple(
            SimWaveAdc(i * third, _MID - 51 + 17 * i, 202 + 10 * connector_id + i,
                       mains_hz) for i in range(phases))
        self.temp_adc = SimTempAdc(self)
        self._state_path = state_path
        self._restore()
        self._update()

    # --- the EV across a power cut ---
    def _restore(self):
        path = self._state_path
        if path is None:
            return
        try:
            with open(path) as f:
                st = json.load(f)
            ev = st["ev"]
            want = [float(a) for a in st["amps"]]
        except (OSError, ValueError, KeyError, TypeError):
            return  # no EV remembered (or a write cut short): unplugged
        if ev in EV_STATES and ev != "A" and len(want) == self.phases:
            self.plugged = bool(st.get("plugged"))
            self.ev = ev
            self._want = want

    def _save(self):
        path = self._state_path
        if path is None:
            return
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"plugged": self.plugged, "ev": self.ev, "amps": self._want}, f)
        os.rename(tmp, path)

    # --- EV side (bench commands) ---
    def plug_in(self, ev="C"):
        self.plugged = True
        self.ev_state(ev)

    def plug_out(self):
        self.plugged = False
        self._save()
        self._update()

    def ev_state(self, s):
        # "B" pause, "C"/"D" want energy, "E"/"F" inject a pilot fault,
        # "A" unplug.
        if s not in EV_STATES:
            raise ValueError("EV state must be one of A..F, got %r" % (s,))
        if s == "A":
            self.plug_out()
            return
        self.plugged = True
        self.ev = s
        self._save()
        self._update()

    def load(self, amps=None, volts=None, pf=None):
        # What the EV draws per phase when allowed, the mains voltage, and
        # the power factor of the load (0 < pf <= 1: the current lags).
        if amps is not None:
            self._want = _per_phase(amps, self.phases, "amps")
            self._save()
        if volts is not None:
            self._grid = _per_phase(volts, self.phases, "volts")
        if pf is not None:
            f = _per_phase(pf, self.phases, "pf")
            for x in f:
                if not 0.0 < x <= 1.0:
                    raise ValueError("pf must be in (0, 1], got %r" % (x,))
            self._pf = f
        self._update()

    def inject(self, kind, on=True):
        if kind not in FAULTS:
            raise ValueError("fault must be one of %s" % ", ".join(FAULTS))
        if on:
            self.faults.add(kind)
        else:
            self.faults.discard(kind)
        self._update()

    # --- hardware model ---
    def _contact(self):
        if "weld" in self.faults:
            return 1
        if "stuck_open" in self.faults:
            return 0
        return self.relay_pin.value()

    def _lock_drive(self):
        now = time.ticks_ms()
        for pin, pos in ((self.lock_pin, 1), (self.unlock_pin, 0)):
            if pin.value() and "lock_jam" not in self.faults:
                self._lock_target = pos
                self._lock_due = time.ticks_add(now, _LOCK_MS)

    def _lock_sensed(self):
        due = self._lock_due
        if due is not None and time.ticks_diff(time.ticks_ms(), due) >= 0:
            self._lock_pos = self._lock_target
            self._lock_due = None
        return self._lock_pos

    @property
    def duty(self):
        return self.pilot_pwm.duty_u16() * 100 / _FULL

    @property
    def offered_amps(self):
        from mpocpp_board.pilot import duty_to_amps
        return duty_to_amps(self.duty)

    def _update(self):
        # Re-derive the EV's reaction and every analogue level after an event.
        offered = self.offered_amps
        duty = self.pilot_pwm.duty_u16()
        if not self.plugged:
            level = 12.0
        elif self.ev == "E":
            level = 0.0
        elif self.ev == "F":
            level = -12.0
        elif self.ev in "CD" and offered > 0:
            level = 6.0 if self.ev == "C" else 3.0
        else:
            level = 9.0  # paused, or nothing offered: S2 open
        if duty == 0:
            level = -12.0  # EVSE holds the line at -12 V (state F)
        self.pilot_volts = level
        self.pwm_hi_us = duty * _PWM_US // _FULL
        self.pilot_hi_counts = int(_MID + level * _PILOT_CPV)
        lo = -12.0
        if "diode" in self.faults and self.plugged and 0 < level < 12:
            lo = -level  # no diode: the EV's resistors load the low phase too
        self.pilot_lo_counts = int(_MID + lo * _PILOT_CPV)
        flowing = self._contact() and self.plugged and level in (6.0, 3.0)
        k = math.sqrt(2) / METER_CAL["vref"] * _FULL
        ka = k * METER_CAL["burden_ohms"] / METER_CAL["ct_ratio"]
        total = 0.0
        period = 1000000 // self.mains_hz
        for i in range(self.phases):
            a = min(self._want[i], offered) if flowing else 0.0
            a = max(a, 0.0)
            self.amps[i] = a
            total += a
            c = self.adc_currents[i]
            c.set_peak(a * ka)
            lag = int(math.acos(self._pf[i]) / (2 * math.pi) * period + 0.5)
            c.set_shift(i * (period // 3) - lag)
            self.adc_volts[i].set_peak(self._grid[i] * k / METER_CAL["divider"])
        self.temp_c = self.ambient_c + 0.1 * total  # warms with the current
        self.temp_counts = int((self.temp_c - TEMP_CAL[1]) / TEMP_CAL[0] + 0.5)

    def pilot_state(self):
        from mpocpp_board.pilot import classify
        return classify(self.pilot_volts)

    def snapshot(self):
        return {
            "connector": self.connector_id,
            "plugged": self.plugged,
            "ev": self.ev,
            "pilot": self.pilot_state(),
            "pilot_volts": self.pilot_volts,
            "duty": round(self.duty, 2),
            "offered_amps": round(self.offered_amps, 2),
            "relay": bool(self.relay_pin.value()),
            "contact": bool(self._contact()),
            "locked": bool(self._lock_sensed()),
            "amps": list(self.amps),
            "volts": list(self._grid),
            "pf": list(self._pf),
            "temperature": round(self.temp_c, 1),
            "faults": sorted(self.faults),
        }

    def drivers(self):
        # The common drivers wired to this connector's pins, with the unix
        # board's calibration (boards/common must be on sys.path).
        from mpocpp_board.relay import Relay
        from mpocpp_board.lock import CableLock
        from mpocpp_board.pilot import ControlPilot
        from mpocpp_board.adcmeter import AdcMeter
        relay = Relay(self.relay_pin, self.relay_feedback)
        lock = CableLock(self.lock_pin, self.unlock_pin, self.lock_sense,
                         pulse_ms=100, timeout_ms=1000)
        pilot = ControlPilot(self.pilot_pwm, self.pilot_adc, self.max_amps,
                             PILOT_VPC, PILOT_ZERO)
        meter = AdcMeter(self.adc_currents, self.adc_volts,
                         mains_hz=self.mains_hz, temp=self.temp_adc,
                         temp_cal=TEMP_CAL, **METER_CAL)
        return Drivers(self, pilot, relay, lock, meter)


class Drivers(ConnectorHw):
    # One connector's driver bundle (.pilot .relay .lock .meter) and .sim,
    # the SimConnectorHw behind them, for the bench.
    def __init__(self, sim, pilot, relay, lock, meter):
        super().__init__(pilot, relay, lock, meter)
        self.sim = sim


def make_connector(connector_id, phases=3, max_amps=32, state_path=None):
    return SimConnectorHw(connector_id, phases, max_amps, state_path=state_path).drivers()


def make_led():
    # The board's status LED on simulated RGB PWM pins; .sim reads them back.
    return SimStatusLed(SimLed())


class SimStatusLed(Led):
    # The common LED driver; .sim reads the PWM channels back.
    def __init__(self, sim):
        super().__init__(sim.r, sim.g, sim.b)
        self.sim = sim


class SimLed:
    # Three PWM channels whose output the bench can read back.
    def __init__(self):
        self.r = SimPWM()
        self.g = SimPWM()
        self.b = SimPWM()

    def rgb(self):
        return tuple((c.duty_u16() * 255 + _FULL // 2) // _FULL
                     for c in (self.r, self.g, self.b))
