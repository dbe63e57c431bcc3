# Raspberry Pi Pico W (RP2040) AC wall charger: pin map and drivers.
# Three ADC inputs (GP26-28): control-pilot read-back, L1 current, L1 voltage,
# so metering is single-phase here; the queue uses the littlefs backend (the
# rp2 flash programs whole 256-byte pages, see docs/queue.md).
import machine
from micropython import const

PINS = {
    "relay": 15, "relay_fb": 14,
    "lock_a": 10, "lock_b": 11, "lock_sense": 12,
    "pilot_pwm": 16, "pilot_adc": 26,
    "ct": 27, "volts": 28,
    "led": (18, 19, 20),
    "tamper": None,  # enclosure switch to GND, closed while shut: a GPIO here reports
                     # its opening as the security event TamperDetectionActivated
}
_PILOT_ZERO = const(32768)   # ADC counts for 0 V on the pilot (mid-rail divider)
_PILOT_VPC = 24.0 / 65535    # pilot volts per count through the divider


class Board:
    name = "rp2"

    def __init__(self, settings, max_amps=32, flash_dir="/data"):
        from mpocpp_board.connectorhw import ConnectorHw
        from mpocpp_board.relay import Relay
        from mpocpp_board.lock import CableLock
        from mpocpp_board.pilot import ControlPilot
        from mpocpp_board.adcmeter import AdcMeter
        from mpocpp_board.led import Led
        from mpocpp_board.wifi import RtcClock, make_net
        P = machine.Pin
        self.clock = RtcClock()
        self.flash_dir = flash_dir
        try:
            import os
            os.mkdir(self.flash_dir)
        except OSError:
            pass
        self.queue_dev = None
        self.net = make_net(settings, self.feed)
        self.limits = {"NumberOfConnectors": 1, "maxCurrentA": max_amps, "phases": 1,
                       "nominalVolts": 230, "queueBytes": 65536}

        relay = Relay(P(PINS["relay"], P.OUT, value=0), P(PINS["relay_fb"], P.IN, P.PULL_UP),
                         feedback_active=0)
        lock = CableLock(P(PINS["lock_a"], P.OUT, value=0), P(PINS["lock_b"], P.OUT, value=0),
                            P(PINS["lock_sense"], P.IN, P.PULL_UP), sense_active=0)
        pwm = machine.PWM(P(PINS["pilot_pwm"]))
        pwm.freq(1000)
        pwm.duty_u16(65535)
        pilot = ControlPilot(pwm, machine.ADC(PINS["pilot_adc"]), max_amps,
                                volts_per_count=_PILOT_VPC, zero_counts=_PILOT_ZERO)
        meter = AdcMeter(
            [machine.ADC(PINS["ct"])],
            [machine.ADC(PINS["volts"])],
            ct_ratio=1000,
            burden_ohms=22.0,
            divider=330.0,
            vref=3.3,
            temp=machine.ADC(4),
            temp_cal=(-3.3 / 65535 / 0.001721, 27 + 0.706 / 0.001721),
        )
        self._hw = ConnectorHw(pilot, relay, lock, meter)
        leds = []
        for p in PINS["led"]:
            w = machine.PWM(P(p))
            w.freq(1000)
            leds.append(w)
        self.led = Led(*leds)
        t = PINS["tamper"]
        self.tamper = None if t is None else P(t, P.IN, P.PULL_UP)  # 1: open
        self._wdt = None

    def connector_hw(self, i):
        return self._hw if i == 1 else None

    def feed(self):
        if self._wdt is None:
            self._wdt = machine.WDT(timeout=8000)  # RP2040 maximum is 8388 ms
        self._wdt.feed()

    def reset(self, hard):
        machine.reset()
