# ESP32 (no PSRAM) AC wall charger: pin map and drivers.
# Wiring (see docs/boards.md): ADC1 only (ADC2 is unusable while WiFi runs).
import machine
from micropython import const

# --- pin map ---
PINS = {
    "relay": 26, "relay_fb": 27,            # contactor coil, auxiliary contact
    "lock_a": 18, "lock_b": 19, "lock_sense": 23,  # lock motor H-bridge, position switch
    "pilot_pwm": 25, "pilot_adc": 36,       # CP output stage, CP read-back divider
    "ct": (39, 34, 35), "volts": 32,        # CTs L1-L3, mains divider L1
    "led": (13, 12, 14),                    # RGB LED (PWM)
    "tamper": None,  # enclosure switch to GND, closed while shut: a GPIO here reports
                     # its opening as the security event TamperDetectionActivated
}
QUEUE_PARTITION = "ocppq"  # raw data partition for the flash-ring queue (optional)
_PILOT_ZERO = const(1650000)  # uV at the ADC for 0 V on the pilot (mid-rail)
_PILOT_UV_PER_V = 125000.0    # ADC uV per pilot volt through the divider


class _UvAdc:
    # read_u16() over the calibrated read_uv() (ESP32 ADC1 with 11 dB).
    def __init__(self, pin):
        self._a = machine.ADC(machine.Pin(pin), atten=machine.ADC.ATTN_11DB)

    def read_u16(self):
        return min(65535, self._a.read_uv() * 65535 // 3300000)


class Board:
    name = "esp32"

    def __init__(self, settings, max_amps=32, phases=3, flash_dir="/data"):
        from mpocpp_board.connectorhw import ConnectorHw
        from mpocpp_board.relay import Relay
        from mpocpp_board.lock import CableLock
        from mpocpp_board.pilot import ControlPilot
        from mpocpp_board.adcmeter import AdcMeter
        from mpocpp_board.led import Led
        from mpocpp_board.wifi import RtcClock, WifiNet
        P = machine.Pin
        self.clock = RtcClock()
        self.flash_dir = flash_dir
        try:
            import os
            os.mkdir(self.flash_dir)
        except OSError:
            pass
        self.queue_dev = None
        try:
            import esp32
            parts = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=QUEUE_PARTITION)
            if parts:
                self.queue_dev = parts[0]
        except ImportError:
            pass
        self.net = WifiNet(settings.get("wifiSsid", ""), settings.get("wifiPassword", ""),
                           self.feed)
        self.limits = {"NumberOfConnectors": 1, "maxCurrentA": max_amps, "phases": phases,
                       "nominalVolts": 230, "queueBytes": 65536}

        relay = Relay(P(PINS["relay"], P.OUT, value=0), P(PINS["relay_fb"], P.IN, P.PULL_UP),
                         feedback_active=0)
        lock = CableLock(P(PINS["lock_a"], P.OUT, value=0), P(PINS["lock_b"], P.OUT, value=0),
                            P(PINS["lock_sense"], P.IN, P.PULL_UP), sense_active=0)
        pwm = machine.PWM(P(PINS["pilot_pwm"]), freq=1000, duty_u16=65535)
        pilot_adc = _UvAdc(PINS["pilot_adc"])
        pilot = ControlPilot(pwm, pilot_adc, max_amps,
                                volts_per_count=3300000 / 65535 / _PILOT_UV_PER_V,
                                zero_counts=_PILOT_ZERO * 65535 // 3300000)
        meter = AdcMeter([_UvAdc(p) for p in PINS["ct"][:phases]], [_UvAdc(PINS["volts"])],
                            ct_ratio=1000, burden_ohms=22.0, divider=330.0, vref=3.3)
        self._hw = ConnectorHw(pilot, relay, lock, meter)
        r, g, b = PINS["led"]
        self.led = Led(machine.PWM(P(r), freq=1000), machine.PWM(P(g), freq=1000),
                       machine.PWM(P(b), freq=1000))
        t = PINS["tamper"]
        self.tamper = None if t is None else P(t, P.IN, P.PULL_UP)  # 1: open
        self._wdt = None

    def connector_hw(self, i):
        return self._hw if i == 1 else None

    def feed(self):
        # Started on the first feed, so a crash during boot is not a reboot loop trap.
        if self._wdt is None:
            self._wdt = machine.WDT(timeout=8000)
        self._wdt.feed()

    def reset(self, hard):
        machine.reset()
