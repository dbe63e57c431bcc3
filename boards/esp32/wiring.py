# ESP32 (no PSRAM) AC wall charger: the pin map and the drivers built on it.
# Wiring (see docs/boards.md): ADC1 only (ADC2 is unusable while WiFi runs).
# Imported by Board() for the boot and let go after it (board.py keeps what
# it built).
import machine
from micropython import const

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


def build(settings, max_amps, phases, feed):
    # -> the board's parts by name (board.py's Board attributes).
    from mpocpp_board.uvadc import UvAdc
    from mpocpp_board.connectorhw import ConnectorHw
    from mpocpp_board.relay import Relay
    from mpocpp_board.lock import CableLock
    from mpocpp_board.pilot import ControlPilot
    from mpocpp_board.adcmeter import AdcMeter
    from mpocpp_board.led import Led
    from mpocpp_board.rtcclock import RtcClock
    from mpocpp_board.wifi import WifiNet
    P = machine.Pin
    queue_dev = None
    try:
        import esp32
        parts = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=QUEUE_PARTITION)
        if parts:
            queue_dev = parts[0]
    except ImportError:
        pass
    relay = Relay(P(PINS["relay"], P.OUT, value=0), P(PINS["relay_fb"], P.IN, P.PULL_UP),
                  feedback_active=0)
    lock = CableLock(P(PINS["lock_a"], P.OUT, value=0), P(PINS["lock_b"], P.OUT, value=0),
                     P(PINS["lock_sense"], P.IN, P.PULL_UP), sense_active=0)
    pwm = machine.PWM(P(PINS["pilot_pwm"]), freq=1000, duty_u16=65535)
    pilot = ControlPilot(pwm, UvAdc(PINS["pilot_adc"]), max_amps,
                         volts_per_count=3300000 / 65535 / _PILOT_UV_PER_V,
                         zero_counts=_PILOT_ZERO * 65535 // 3300000)
    meter = AdcMeter([UvAdc(p) for p in PINS["ct"][:phases]], [UvAdc(PINS["volts"])],
                     ct_ratio=1000, burden_ohms=22.0, divider=330.0, vref=3.3)
    r, g, b = PINS["led"]
    t = PINS["tamper"]
    return {
        "clock": RtcClock(),
        "queue_dev": queue_dev,
        "net": WifiNet(settings.get("wifiSsid", ""), settings.get("wifiPassword", ""), feed),
        "limits": {"NumberOfConnectors": 1, "maxCurrentA": max_amps, "phases": phases,
                   "nominalVolts": 230, "queueBytes": 65536},
        "hw": ConnectorHw(pilot, relay, lock, meter),
        "led": Led(machine.PWM(P(r), freq=1000), machine.PWM(P(g), freq=1000),
                   machine.PWM(P(b), freq=1000)),
        "tamper": None if t is None else P(t, P.IN, P.PULL_UP),  # 1: open
    }
