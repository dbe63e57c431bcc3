# Stand-in for the `machine` module of a real port, so that boards/esp32 and
# boards/rp2 can be constructed inside the unix port in tests.
class Pin:
    OUT = 1
    IN = 0
    PULL_UP = 2

    def __init__(self, n, mode=None, pull=None, value=None):
        self.n = n
        self._v = value or 0

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = v


class PWM:
    def __init__(self, pin, freq=None, duty_u16=None):
        self.pin = pin
        self._f = freq
        self._d = duty_u16 or 0

    def freq(self, f=None):
        if f is None:
            return self._f
        self._f = f

    def duty_u16(self, d=None):
        if d is None:
            return self._d
        self._d = d


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        self.pin = pin

    def read_u16(self):
        return 32768

    def read_uv(self):
        return 1650000


class RTC:
    def datetime(self, t=None):
        self.t = t


class WDT:
    def __init__(self, timeout):
        self.timeout = timeout

    def feed(self):
        pass


def reset():
    raise SystemExit(0)
