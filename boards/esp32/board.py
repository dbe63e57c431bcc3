# ESP32 (no PSRAM) AC wall charger: pin map and drivers.
# Wiring (see docs/boards.md): ADC1 only (ADC2 is unusable while WiFi runs).
import time
import machine
from micropython import const

# --- pin map ---
PINS = {
    "relay": 26, "relay_fb": 27,            # contactor coil, auxiliary contact
    "lock_a": 18, "lock_b": 19, "lock_sense": 23,  # lock motor H-bridge, position switch
    "pilot_pwm": 25, "pilot_adc": 36,       # CP output stage, CP read-back divider
    "ct": (39, 34, 35), "volts": 32,        # CTs L1-L3, mains divider L1
    "led": (13, 12, 14),                    # RGB LED (PWM)
}
QUEUE_PARTITION = "ocppq"  # raw data partition for the flash-ring queue (optional)
_PILOT_ZERO = const(1650000)  # uV at the ADC for 0 V on the pilot (mid-rail)
_PILOT_UV_PER_V = 125000.0    # ADC uV per pilot volt through the divider


class RtcClock:
    # machine.RTC as unix seconds whatever the port's epoch.
    trusted = False

    def __init__(self):
        self._rtc = machine.RTC()
        self._epoch = 946684800 if time.gmtime(0)[0] == 2000 else 0

    def time(self):
        return time.time() + self._epoch

    def set(self, t):
        tm = time.gmtime(int(t) - self._epoch)
        self._rtc.datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))


class _UvAdc:
    # read_u16() over the calibrated read_uv() (ESP32 ADC1 with 11 dB).
    def __init__(self, pin):
        self._a = machine.ADC(machine.Pin(pin), atten=machine.ADC.ATTN_11DB)

    def read_u16(self):
        return min(65535, self._a.read_uv() * 65535 // 3300000)


class WifiNet:
    def __init__(self, ssid, password):
        import network
        self._ssid = ssid
        self._pwd = password
        self._wlan = network.WLAN(network.STA_IF)
        self._addr = {}

    async def open_connection(self, host, port, ssl=None, server_hostname=None):
        import asyncio
        import socket
        w = self._wlan
        if not w.isconnected():
            w.active(True)
            w.connect(self._ssid, self._pwd)
            for _ in range(100):
                if w.isconnected():
                    break
                await asyncio.sleep_ms(100)
            else:
                raise OSError(118)  # EHOSTUNREACH: retried with back-off
        a = self._addr.get(host)
        if a is None:  # the notes: DNS blocks, so resolve once and reuse
            a = socket.getaddrinfo(host, port)[0][-1][0]
            self._addr[host] = a
        if ssl is None:
            return await asyncio.open_connection(a, port)
        return await asyncio.open_connection(a, port, ssl=ssl, server_hostname=server_hostname or host)


class Board:
    name = "esp32"

    def __init__(self, settings, max_amps=32, phases=3, flash_dir="/data"):
        import vfs
        from relay import Relay
        from lock import CableLock
        from pilot import ControlPilot
        from adcmeter import AdcMeter
        from led import Led
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
        self.net = WifiNet(settings.get("wifiSsid", ""), settings.get("wifiPassword", ""))
        self.limits = {"NumberOfConnectors": 1, "maxCurrentA": max_amps, "phases": phases,
                       "nominalVolts": 230, "queueBytes": 65536}

        class Hw:
            pass
        hw = Hw()
        hw.relay = Relay(P(PINS["relay"], P.OUT, value=0), P(PINS["relay_fb"], P.IN, P.PULL_UP),
                         feedback_active=0)
        hw.lock = CableLock(P(PINS["lock_a"], P.OUT, value=0), P(PINS["lock_b"], P.OUT, value=0),
                            P(PINS["lock_sense"], P.IN, P.PULL_UP), sense_active=0)
        pwm = machine.PWM(P(PINS["pilot_pwm"]), freq=1000, duty_u16=65535)
        pilot_adc = _UvAdc(PINS["pilot_adc"])
        hw.pilot = ControlPilot(pwm, pilot_adc, max_amps,
                                volts_per_count=3300000 / 65535 / _PILOT_UV_PER_V,
                                zero_counts=_PILOT_ZERO * 65535 // 3300000)
        hw.meter = AdcMeter([_UvAdc(p) for p in PINS["ct"][:phases]], [_UvAdc(PINS["volts"])],
                            ct_ratio=1000, burden_ohms=22.0, divider=330.0, vref=3.3)
        self._hw = hw
        r, g, b = PINS["led"]
        self.led = Led(machine.PWM(P(r), freq=1000), machine.PWM(P(g), freq=1000),
                       machine.PWM(P(b), freq=1000))
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
