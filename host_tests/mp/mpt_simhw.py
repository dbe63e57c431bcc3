# The unix board's simulated hardware: the EV behind the pilot, what flows
# through the contactor, fault injection, and the pins the drivers use.
import sys

sys.path.append(__file__.rsplit("/", 1)[0] + "/../../boards/common"
                if "/" in __file__ else "../../boards/common")

import time
import micropython
from mpocpp_board import simhw


def close(a, b, tol):
    return abs(a - b) <= tol


def _conn(**kw):
    d = simhw.make_connector(1, **kw)
    return d.sim, d


def test_ev_sequence_plug_offer_pause_unplug():
    hw, d = _conn()
    cp = d.pilot
    assert hw.snapshot()["pilot"] == "A" and cp.read_state() == "A"
    hw.plug_in()
    assert hw.snapshot()["pilot"] == "B" and cp.read_state() == "B"
    cp.offer(16)  # the EV wants energy: closes S2
    assert cp.read_state() == "C"
    s = hw.snapshot()
    assert s["pilot"] == "C" and s["duty"] == 26.67 and close(s["offered_amps"], 16, 0.01)
    assert s["amps"] == [0.0, 0.0, 0.0]  # relay still open
    d.relay.close()
    assert hw.snapshot()["amps"] == [16.0, 16.0, 16.0]
    hw.ev_state("B")  # the EV pauses
    assert cp.read_state() == "B" and hw.snapshot()["amps"] == [0.0, 0.0, 0.0]
    hw.ev_state("C")  # and resumes
    assert cp.read_state() == "C" and hw.snapshot()["amps"][0] == 16.0
    cp.stop()  # 100 %: the EV must open S2
    assert cp.read_state() == "B" and hw.snapshot()["amps"][0] == 0.0
    cp.offer(10)
    assert cp.read_state() == "C"
    hw.plug_out()
    assert cp.read_state() == "A" and hw.snapshot()["amps"][0] == 0.0
    hw.ev_state("C")  # an EV state implies a plugged cable
    assert hw.plugged and cp.read_state() == "C"
    hw.ev_state("A")
    assert not hw.plugged and cp.read_state() == "A"


def test_paused_ev_stays_b_and_plug_in_paused():
    hw, d = _conn()
    hw.plug_in("B")  # an EV that does not want energy
    d.pilot.offer(32)
    assert d.pilot.read_state() == "B"
    hw.ev_state("D")  # ventilation asked
    assert d.pilot.read_state() == "D"
    d.relay.close()
    assert hw.snapshot()["amps"] == [16.0, 16.0, 16.0]


def test_ev_draws_min_of_load_and_offer():
    hw, d = _conn(max_amps=32)
    hw.load([20, 12, 40], [231, 229, 230])
    hw.plug_in()
    d.pilot.offer(16)
    d.relay.close()
    a = hw.snapshot()["amps"]
    assert close(a[0], 16, 0.01) and a[1] == 12.0 and close(a[2], 16, 0.01)
    assert hw.snapshot()["volts"] == [231.0, 229.0, 230.0]
    d.pilot.offer(100)  # clamped to the board's 32 A
    assert d.pilot.offered_amps == 32 and close(hw.snapshot()["amps"][2], 32, 0.01)
    hw.load(8)  # one number: every phase
    assert hw.snapshot()["amps"] == [8.0, 8.0, 8.0]
    hw.load([5])  # missing phases draw nothing
    assert hw.snapshot()["amps"] == [5.0, 0.0, 0.0]
    a, v, t = d.meter.read()
    assert close(a[0], 5.0, 0.05) and a[1] == 0.0 and close(v[1], 229.0, 2.3)


def test_weld_and_stuck_open():
    hw, d = _conn()
    hw.plug_in()
    d.pilot.offer(16)
    d.relay.close()
    hw.inject("weld")
    d.relay.open()
    s = hw.snapshot()
    assert not s["relay"] and s["contact"] and s["amps"][0] == 16.0
    assert s["faults"] == ["weld"]
    hw.inject("weld", False)
    hw.inject("stuck_open")
    d.relay.close()
    s = hw.snapshot()
    assert s["relay"] and not s["contact"] and s["amps"][0] == 0.0


def test_lock_moves_after_travel_time():
    hw, d = _conn()
    assert hw.lock_sense.value() == 0
    hw.lock_pin.value(1)
    hw.lock_pin.value(0)
    assert hw.lock_sense.value() == 0  # still travelling
    time.sleep_ms(70)
    assert hw.lock_sense.value() == 1 and hw.snapshot()["locked"]
    hw.inject("lock_jam")
    hw.unlock_pin.value(1)
    time.sleep_ms(70)
    assert hw.lock_sense.value() == 1


def test_pilot_faults_and_off():
    hw, d = _conn()
    hw.plug_in()
    hw.ev_state("E")
    assert hw.snapshot()["pilot"] == "E" and d.pilot.read_state() == "E"
    hw.ev_state("F")
    assert d.pilot.read_state() == "F"
    hw.ev_state("C")
    d.pilot.offer(16)
    assert d.pilot.read_state() == "C"
    d.pilot.off()  # EVSE not available: -12 V
    assert hw.snapshot()["pilot"] == "F" and d.pilot.read_state() == "F"
    assert hw.snapshot()["duty"] == 0.0


def test_bad_bench_input_is_a_clear_error():
    hw, d = _conn()
    for fn, arg in ((hw.ev_state, "X"), (hw.inject, "meltdown"),
                    (hw.load, "lots"), (hw.load, [1, "x"])):
        try:
            fn(arg)
        except ValueError as e:
            assert str(e)
            continue
        raise AssertionError((fn, arg))
    try:
        simhw.SimConnectorHw(1, phases=2)
    except ValueError:
        pass
    else:
        raise AssertionError("phases=2")
    assert hw.snapshot()["pilot"] == "A"  # nothing changed


def test_single_phase_hw_and_temperature():
    hw, d = _conn(phases=1)
    assert len(hw.adc_currents) == 1 and len(hw.adc_volts) == 1
    hw.plug_in()
    d.pilot.offer(32)
    d.relay.close()
    a, v, t = d.meter.read()
    assert close(a[0], 16.0, 0.16) and a[1] == a[2] == 0.0
    assert close(t, 25 + 1.6, 0.5), t  # warms with the current
    assert hw.snapshot()["amps"] == [16.0]


def test_adc_reads_allocate_nothing():
    hw, d = _conn()
    hw.plug_in()
    d.pilot.offer(16)
    d.relay.close()
    adcs = hw.adc_currents + hw.adc_volts + (hw.pilot_adc, hw.temp_adc)
    for a in adcs:
        a.read_u16()
    micropython.heap_lock()
    try:
        for _ in range(10):
            for a in adcs:
                a.read_u16()
    finally:
        micropython.heap_unlock()


def test_current_wave_has_bias_and_noise():
    hw, d = _conn()
    hw.plug_in()
    d.pilot.offer(32)
    d.relay.close()
    adc = hw.adc_currents[0]
    xs = []
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 100:  # five mains cycles
        xs.append(adc.read_u16())
        time.sleep_us(20)
    peak = 16 * 1.41421 / 1000 * 10 / 3.3 * 65535  # counts
    hi = max(xs)
    lo = min(xs)
    assert close((hi - lo) / 2, peak, peak * 0.03 + 10), (hi, lo, peak)
    assert close((hi + lo) / 2, 32805, 40), (hi, lo)  # bias: mid-rail + 37


def test_led_factory_reads_back():
    led = simhw.make_led()
    led.show("faulted")
    assert led.sim.rgb() == (255, 0, 0) == led.rgb
    led.intensity(50)
    assert led.sim.rgb() == (127, 0, 0)


def test_the_ev_stays_plugged_across_a_restart():
    # The EV is kept in a host file beside the flash image: a new
    # SimConnectorHw over the same file (the process restarted) finds it.
    from fakes import tmpdir, rmtree
    d0 = tmpdir("mpt_simhw_ev")
    path = d0 + "/ev1.json"
    try:
        hw, d = _conn(state_path=path)
        assert not hw.plugged
        hw.plug_in("B")
        hw.load(amps=[10, 11, 12])
        hw2, d2 = _conn(state_path=path)
        assert hw2.plugged and hw2.ev == "B" and hw2._want == [10.0, 11.0, 12.0]
        assert d2.pilot.read_state() == "B"
        hw2.plug_out()
        hw3, _ = _conn(state_path=path)
        assert not hw3.plugged
        with open(path, "w") as f:
            f.write("{\"plugged\": tr")  # a write cut short: unplugged
        hw4, _ = _conn(state_path=path)
        assert not hw4.plugged
    finally:
        rmtree(d0)
