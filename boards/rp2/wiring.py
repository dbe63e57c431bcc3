# Raspberry Pi Pico W (RP2040) AC wall charger: the pin map and the drivers
# built on it. Three ADC inputs (GP26-28): control-pilot read-back, L1
# current, L1 voltage, so metering is single-phase here. Imported by
# Board() for the boot and let go after it (board.py keeps what it built).
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


def _net(settings, feed):
    # The uplink from the provisioning settings: "net": "wifi" (the default
    # where the port has the network module: a Pico W), "usb" (the USB REPL's
    # serial line to tools/bridge on a host: docs/serial-bridge.md) or
    # "none": None, no uplink (a Pico without WiFi and no bridge), the
    # charger offline for good without loading the connection's code.
    kind = settings.get("net")
    if kind == "usb":
        from mpocpp_board.serialnet import usb_stdio
        return usb_stdio()
    if kind != "none":
        try:
            import network  # noqa: F401
        except ImportError:
            kind = "none"  # a board without WiFi (RPI_PICO)
    if kind == "none":
        return None
    from mpocpp_board.wifi import WifiNet
    return WifiNet(settings.get("wifiSsid", ""), settings.get("wifiPassword", ""), feed)


def build(settings, max_amps, feed):
    # -> the board's parts by name (board.py's Board attributes).
    from mpocpp_board.connectorhw import ConnectorHw
    from mpocpp_board.relay import Relay
    from mpocpp_board.lock import CableLock
    from mpocpp_board.pilot import ControlPilot
    from mpocpp_board.adcmeter import AdcMeter
    from mpocpp_board.led import Led
    from mpocpp_board.rtcclock import RtcClock
    P = machine.Pin
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
    leds = []
    for p in PINS["led"]:
        w = machine.PWM(P(p))
        w.freq(1000)
        leds.append(w)
    t = PINS["tamper"]
    return {
        "clock": RtcClock(),
        "net": _net(settings, feed),
        "limits": {"NumberOfConnectors": 1, "maxCurrentA": max_amps, "phases": 1,
                   "nominalVolts": 230, "queueBytes": 65536},
        "hw": ConnectorHw(pilot, relay, lock, meter),
        "led": Led(*leds),
        "tamper": None if t is None else P(t, P.IN, P.PULL_UP),  # 1: open
    }
