# The GPIO / ADC drivers of boards/common, on the unix board's simulated pins.
import sys

sys.path.append(__file__.rsplit("/", 1)[0] + "/../../boards/common"
                if "/" in __file__ else "../../boards/common")

import gc
import time
import asyncio
import micropython
from mpocpp_board import simhw
from mpocpp_board.relay import Relay
from mpocpp_board.lock import CableLock
from mpocpp_board.led import Led, TABLE
from mpocpp_board.pilot import ControlPilot, amps_to_duty, duty_to_amps, classify
from mpocpp_board.adcmeter import AdcMeter

STATES = ("available", "preparing", "charging", "suspended", "reserved",
          "unavailable", "faulted", "offline", "booting")


def close(a, b, tol):
    return abs(a - b) <= tol


class ConstAdc:
    def __init__(self, counts):
        self.counts = counts

    def read_u16(self):
        return self.counts


# --- relay ---

def test_relay_follows_and_weld():
    hw = simhw.SimConnectorHw(1)
    r = Relay(hw.relay_pin, hw.relay_feedback, settle_ms=40)
    assert not r.closed and hw.relay_pin.value() == 0 and r.check() is None
    r.close()
    assert r.closed and hw.relay_pin.value() == 1 and r.sensed is True
    time.sleep_ms(50)
    assert r.check() is None
    hw.inject("weld")
    r.open()
    assert r.sensed is True and r.check() is None  # still settling
    time.sleep_ms(50)
    assert r.check() == "PowerSwitchFailure"
    hw.inject("weld", False)
    assert r.check() is None


def test_relay_not_closing_and_no_feedback():
    hw = simhw.SimConnectorHw(1)
    hw.inject("stuck_open")
    r = Relay(hw.relay_pin, hw.relay_feedback, settle_ms=20)
    r.close()
    time.sleep_ms(30)
    assert r.check() == "PowerSwitchFailure"
    r.open()
    assert r.check() is None
    bare = Relay(simhw.SimPin(), invert=True)  # no feedback: never a fault
    assert bare._pin.value() == 1  # inverted: open = 1
    bare.close()
    assert bare._pin.value() == 0 and bare.check() is None and bare.sensed is None


def test_relay_feedback_active_low():
    fb = simhw.SimPin(1)
    r = Relay(simhw.SimPin(), fb, feedback_active=0, settle_ms=0)
    assert r.check() is None  # open, feedback 1 = open
    r.close()
    assert r.check() == "PowerSwitchFailure"
    fb.value(0)
    assert r.check() is None and r.sensed


# --- cable lock ---

async def test_lock_unlock_confirmed():
    hw = simhw.SimConnectorHw(1)
    lk = CableLock(hw.lock_pin, hw.unlock_pin, hw.lock_sense, pulse_ms=20,
                   timeout_ms=300)
    assert not lk.locked
    assert await lk.lock() is True
    assert lk.locked and hw.lock_pin.value() == 0  # pulse ended
    assert await lk.unlock() is True
    assert not lk.locked and hw.unlock_pin.value() == 0


async def test_lock_jam_times_out():
    hw = simhw.SimConnectorHw(1)
    lk = CableLock(hw.lock_pin, hw.unlock_pin, hw.lock_sense, pulse_ms=20,
                   timeout_ms=150)
    assert await lk.lock()
    hw.inject("lock_jam")
    t0 = time.ticks_ms()
    assert await lk.unlock() is False
    assert time.ticks_diff(time.ticks_ms(), t0) >= 150
    assert lk.locked and hw.unlock_pin.value() == 0
    hw.inject("lock_jam", False)
    assert await lk.unlock() is True


async def test_lock_concurrent_moves_serialize():
    hw = simhw.SimConnectorHw(1)
    lk = CableLock(hw.lock_pin, hw.unlock_pin, hw.lock_sense, pulse_ms=20,
                   timeout_ms=300)
    r = await asyncio.gather(lk.lock(), lk.unlock())
    assert r == [True, True] and not lk.locked


async def test_lock_single_pin_and_no_sense():
    drive = simhw.SimPin()
    lk = CableLock(drive)
    assert await lk.lock() and drive.value() == 1 and lk.locked
    assert await lk.unlock() and drive.value() == 0 and not lk.locked


# --- LED ---

def test_led_table_every_state():
    sl = simhw.SimLed()
    led = Led(sl.r, sl.g, sl.b)
    for s in STATES:
        assert s in TABLE, s
        led.show(s)
        r, g, b, _ = TABLE[s]
        assert led.state == s
        if led.pattern == "pulse":  # starts at the bottom of the breath
            assert led.rgb == (r // 10, g // 10, b // 10), (s, led.rgb)
        else:
            assert led.rgb == (r, g, b), (s, led.rgb)
        assert sl.rgb() == led.rgb
    # distinct looks: no two states share colour and pattern
    looks = [TABLE[s] for s in STATES]
    assert len(set(looks)) == len(looks)


def test_led_patterns():
    sl = simhw.SimLed()
    led = Led(sl.r, sl.g, sl.b)
    led.show("preparing")  # blink 1 s
    on = led.rgb
    led.tick(500)
    assert led.rgb == (0, 0, 0)
    led.tick(500)
    assert led.rgb == on
    led.show("faulted")  # fast blink 250 ms
    led.tick(130)
    assert led.rgb == (0, 0, 0)
    led.tick(120)
    assert led.rgb == (255, 0, 0)
    led.show("charging")  # pulse: peak at 1 s
    led.tick(1000)
    assert led.rgb == (0, 0, 255)
    led.tick(500)
    assert 0 < led.rgb[2] < 255
    led.show("available")
    led.tick(700)
    assert led.rgb == (0, 255, 0)  # steady


def test_led_intensity_and_bad_input():
    sl = simhw.SimLed()
    led = Led(sl.r, sl.g, sl.b, intensity=50)
    led.show("available")
    assert led.rgb == (0, 127, 0) and sl.g.duty_u16() == 127 * 257
    led.intensity(0)
    assert led.rgb == (0, 0, 0)
    led.intensity(250)  # clamped
    assert led.rgb == (0, 255, 0)
    led.intensity("bright")  # ignored, logged
    led.show("disco")  # ignored, logged
    assert led.state == "available" and led.rgb == (0, 255, 0)
    led.intensity(-3)
    assert led.rgb == (0, 0, 0)


def test_led_flash_then_back():
    sl = simhw.SimLed()
    led = Led(sl.r, sl.g, sl.b)
    led.show("available")
    led.flash("faulted", 300)
    assert led.rgb == (255, 0, 0) and led.state == "available"
    led.show("preparing")  # remembered, shown after the flash
    led.tick(100)
    led.tick(100)
    assert led.rgb in ((255, 0, 0), (0, 0, 0))
    led.tick(100)
    assert led.state == "preparing" and led.rgb == (0, 160, 255)
    led.flash("nonsense")  # ignored, logged
    assert led.rgb == (0, 160, 255)
    fresh = Led(simhw.SimPWM())
    fresh.flash("faulted", 100)
    fresh.tick(100)  # nothing shown before: dark again
    assert fresh.rgb == (0, 0, 0) and fresh.state is None


def test_led_single_pin():
    pin = simhw.SimPin()
    led = Led(pin, pwm=False)
    led.show("offline")  # blink
    assert pin.value() == 1
    led.tick(500)
    assert pin.value() == 0
    led.intensity(30)  # a plain pin cannot dim: below half is dark
    led.show("available")
    assert pin.value() == 0
    pwm = simhw.SimPWM()
    led = Led(pwm, intensity=30)
    led.show("available")
    assert pwm.duty_u16() == (255 * 30 // 100) * 257


# --- control pilot ---

def test_pilot_duty_formula():
    want = {6: 10.0, 10: 16.667, 16: 26.667, 32: 53.333, 51: 85.0,
            63: 89.2, 80: 96.0}
    for a, d in want.items():
        assert close(amps_to_duty(a), d, 0.001), (a, amps_to_duty(a))
        assert close(duty_to_amps(d), a, 0.01), (d, duty_to_amps(d))
    for a in (None, 0, 5.9):
        assert amps_to_duty(a) == 100.0
    assert duty_to_amps(100) == 0 and duty_to_amps(5) == 0 and duty_to_amps(9) == 6
    pwm = simhw.SimPWM()
    cp = ControlPilot(pwm, ConstAdc(0), 80)
    assert pwm.freq() == 1000 and pwm.duty_u16() == 65535 and cp.duty == 100.0
    for a, d in want.items():
        assert cp.offer(a) == a and close(cp.duty, d, 0.001)
        assert pwm.duty_u16() == int(amps_to_duty(a) * 65535 / 100)
        # the EV never reads more than offered
        assert duty_to_amps(pwm.duty_u16() * 100 / 65535) <= a + 1e-9
    assert cp.offer(200) == 80 and close(cp.duty, 96.0, 1e-6)


def test_pilot_clamp_stop_off():
    pwm = simhw.SimPWM()
    cp = ControlPilot(pwm, ConstAdc(0), 32)
    assert cp.offer(63) == 32 and close(cp.duty, 53.333, 0.001)
    assert cp.offered_amps == 32
    for bad in (5, 0, None, -4, "x", float("nan"), [1]):
        cp.offer(16)
        assert cp.offer(bad) == 0 and cp.duty == 100.0 and pwm.duty_u16() == 65535
    cp.offer(16)
    cp.stop()
    assert pwm.duty_u16() == 65535 and cp.offered_amps == 0
    cp.off()
    assert pwm.duty_u16() == 0 and cp.duty == 0.0
    cp2 = ControlPilot(pwm, ConstAdc(0), 32, neg_off=False)
    cp2.off()
    assert pwm.duty_u16() == 65535
    cp3 = ControlPilot(pwm, ConstAdc(0), 16, invert=True)
    assert pwm.duty_u16() == 0
    cp3.offer(32)
    assert cp3.offered_amps == 16 and pwm.duty_u16() == 65535 - int(amps_to_duty(16) * 65535 / 100)
    assert ControlPilot(pwm, ConstAdc(0), 4).offer(16) == 0  # limit below 6 A


def test_pilot_classify_thresholds():
    for v, s in ((12, "A"), (10.6, "A"), (9, "B"), (7.6, "B"), (6, "C"),
                 (4.6, "C"), (3, "D"), (1.6, "D"), (0, "E"), (-1.4, "E"),
                 (-5, "E"), (-12, "F"), (-10.1, "F")):
        assert classify(v) == s, (v, classify(v))


def test_pilot_read_hysteresis_and_calibration():
    adc = ConstAdc(0)
    vpc = simhw.PILOT_VPC
    cp = ControlPilot(simhw.SimPWM(), adc, 32, vpc, simhw.PILOT_ZERO)

    def at(v):
        adc.counts = int(simhw.PILOT_ZERO + v / vpc)
        return cp.read_state()

    assert at(9.0) == "B"
    assert at(7.4) == "B"  # within 0.3 V of the boundary: stays B
    assert at(7.0) == "C"
    assert at(7.6) == "C"
    assert at(7.9) == "B"
    assert close(cp.volts, 7.9, 0.01)
    cal = ControlPilot(simhw.SimPWM(), ConstAdc(1000), 32, lambda c: c / 100)
    assert cal.read_state() == "B" and cal.volts == 10.0


def test_pilot_reads_each_sim_voltage():
    hw = simhw.SimConnectorHw(1)
    cp = hw.drivers().pilot
    assert cp.read_state() == "A" and close(cp.volts, 12, 0.1)
    hw.plug_in()
    assert cp.read_state() == "B"
    for amps in (6, 16, 32):
        cp.offer(amps)
        assert cp.read_state() == "C" and close(cp.volts, 6, 0.1)
        assert close(cp.low_volts, -12, 0.1)
    hw.ev_state("D")
    assert cp.read_state() == "D"
    hw.ev_state("E")
    assert cp.read_state() == "E"
    hw.ev_state("C")
    assert cp.read_state() == "C"
    cp.off()
    assert cp.read_state() == "F"
    cp.stop()
    assert cp.read_state() == "B"


def test_pilot_diode_check():
    hw = simhw.SimConnectorHw(1)
    cp = hw.drivers().pilot
    hw.plug_in()
    hw.inject("diode")
    assert cp.read_state() == "B"  # 100 %: no low phase to check
    cp.offer(16)
    assert cp.read_state() == "E"
    hw.inject("diode", False)
    assert cp.read_state() == "C"


# --- ADC meter ---

def _charging(phases=3, amps=16.0, volts=230.0):
    hw = simhw.SimConnectorHw(1, phases=phases)
    d = hw.drivers()
    hw.load(amps, volts)
    hw.plug_in()
    d.pilot.offer(32)
    d.relay.close()
    return hw, d


def test_meter_three_phase_rms_within_1pct():
    hw, d = _charging(3, [16.0, 10.0, 16.0], [230.0, 225.0, 235.0])
    for _ in range(3):
        a, v, t = d.meter.read()
        for got, want in zip(a, (16.0, 10.0, 16.0)):
            assert close(got, want, want * 0.01), a
        for got, want in zip(v, (230.0, 225.0, 235.0)):
            assert close(got, want, want * 0.01), v
        assert close(t, hw.temp_c, 0.5), (t, hw.temp_c)
    d.relay.open()
    a, v, t = d.meter.read()
    assert a == (0.0, 0.0, 0.0), a  # noise alone is below the floor
    assert close(v[0], 230.0, 2.3)


def test_meter_single_phase_and_nominal():
    hw, d = _charging(1)
    a, v, t = d.meter.read()
    assert close(a[0], 16.0, 0.16) and a[1] == 0.0 and a[2] == 0.0
    assert close(v[0], 230.0, 2.3) and v[1] == 230.0 and v[2] == 230.0
    m = AdcMeter(hw.adc_currents, None, nominal_volts=240, **simhw.METER_CAL)
    a, v, t = m.read()
    assert close(a[0], 16.0, 0.16) and v == (240.0, 240.0, 240.0) and t is None


def test_meter_fixed_offset_and_cycles():
    hw, d = _charging(3, 32.0)
    m = AdcMeter(hw.adc_currents[0], hw.adc_volts[0], offset_counts=32768 + 37,
                 samples=40, cycles=2, temp=lambda: 31.5, **simhw.METER_CAL)
    a, v, t = m.read()
    assert close(a[0], 32.0, 0.32) and close(v[0], 230.0, 2.3) and t == 31.5
    assert m.elapsed_us >= 40000 * 79 // 80


def test_meter_bad_config_and_sensor():
    hw = simhw.SimConnectorHw(1)
    for cur, vol in (((), None), (hw.adc_currents * 2, None),
                     (hw.adc_currents, hw.adc_volts * 2)):
        try:
            AdcMeter(cur, vol)
        except ValueError:
            continue
        raise AssertionError((cur, vol))

    def broken():
        raise OSError(5)

    m = AdcMeter(hw.adc_currents, temp=broken)
    assert m.read()[2] is None


def test_meter_blocks_one_cycle_and_allocates_nothing_per_sample():
    hw, d = _charging(3)
    m = d.meter
    m.read()
    m.sample()
    micropython.heap_lock()  # sampling loop: no allocation at all
    try:
        m.sample()
    finally:
        micropython.heap_unlock()
    assert m.elapsed_us >= 20000 * 63 // 64  # spans the whole mains cycle
    per = []
    for samples in (64, 256):
        mm = AdcMeter(hw.adc_currents, hw.adc_volts, samples=samples,
                      **simhw.METER_CAL)
        mm.read()
        for _ in range(5):  # a busy host may starve a sampling (logs a line)
            gc.collect()
            m0 = gc.mem_alloc()
            late = mm.late
            mm.read()
            if mm.late == late:
                break
        per.append(gc.mem_alloc() - m0)
    print("alloc per read (64, 256 samples):", per, "elapsed_us", m.elapsed_us)
    # results only (a few floats and tuples), independent of the sample count
    assert per[0] == per[1] and per[0] < 1024, per
