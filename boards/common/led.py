# Status LED: one table maps a state to a colour and a pattern.
# RGB through three PWM outputs (duty_u16), or a single pin / PWM (any
# colour lights it). LightIntensity (0..100 %) scales the brightness.
from micropython import const
from mpocpp.util import log

_STEADY = const(0)
_BLINK = const(1)  # 1 s period, half on
_FAST = const(2)  # 250 ms period, half on
_PULSE = const(3)  # 2 s triangle "breathing", never fully dark
_PULSE_MS = const(2000)
_PULSE_MIN = const(10)  # % of full at the bottom of a pulse
_TAG = "led"

# state: (r, g, b 0..255, pattern)
TABLE = {
    "booting": (255, 255, 255, _PULSE),
    "available": (0, 255, 0, _STEADY),
    "preparing": (0, 160, 255, _BLINK),
    "charging": (0, 0, 255, _PULSE),
    "suspended": (0, 0, 255, _STEADY),
    "reserved": (160, 0, 255, _STEADY),
    "unavailable": (255, 0, 0, _STEADY),
    "faulted": (255, 0, 0, _FAST),
    "offline": (255, 120, 0, _BLINK),
}
_PATTERNS = ("steady", "blink", "fast", "pulse")
_DARK = (0, 0, 0, _STEADY)  # before the first show()


class Led:
    def __init__(self, r, g=None, b=None, intensity=100, pwm=True):
        # pwm False: the channels are plain pins, on above half brightness.
        self._ch = (r,) if g is None else (r, g, b)
        self._pwm = pwm
        self._pct = 100
        self._t = 0
        self._col = _DARK
        self._flash_ms = 0
        self._out = [0, 0, 0]
        self.state = None
        self.intensity(intensity)

    def show(self, state):
        col = TABLE.get(state)
        if col is None:
            log.warn(_TAG, "unknown state %r", state)
            return
        if state != self.state:
            self.state = state
            if self._flash_ms <= 0:
                self._start(col)

    def flash(self, state, ms=1000):
        # Show `state` for `ms` (a refused card, say), then .state again.
        col = TABLE.get(state)
        if col is None:
            log.warn(_TAG, "unknown state %r", state)
            return
        self._flash_ms = ms
        self._start(col)

    def _start(self, col):
        self._col = col
        self._t = 0  # start a pattern at its on phase
        self._apply()

    def intensity(self, percent):
        try:
            p = int(percent)
        except (TypeError, ValueError):
            log.warn(_TAG, "bad intensity %r", percent)
            return
        self._pct = 0 if p < 0 else 100 if p > 100 else p
        self._apply()

    def tick(self, ms):
        if self._flash_ms > 0:
            self._flash_ms -= ms
            if self._flash_ms <= 0:
                self._start(TABLE.get(self.state, _DARK))
                return
        self._t = (self._t + ms) % _PULSE_MS  # every period divides 2 s
        if self._col[3] != _STEADY:
            self._apply()

    @property
    def pattern(self):
        return _PATTERNS[self._col[3]]

    @property
    def percent(self):
        # The LightIntensity in effect (0-100).
        return self._pct

    @property
    def rgb(self):
        o = self._out
        return (o[0], o[1], o[2])

    def _level(self):
        # Pattern brightness at the current phase, in % of full.
        p = self._col[3]
        t = self._t
        if p == _BLINK:
            return 100 if t % 1000 < 500 else 0
        if p == _FAST:
            return 100 if t % 250 < 125 else 0
        if p == _PULSE:
            half = _PULSE_MS // 2
            tri = t if t < half else _PULSE_MS - t  # 0..half..0
            return _PULSE_MIN + (100 - _PULSE_MIN) * tri // half
        return 100

    def _apply(self):
        k = self._level() * self._pct  # 0..10000
        col = self._col
        out = self._out
        mono = len(self._ch) == 1
        lit = max(col[0], col[1], col[2]) if mono else 0
        for i in range(len(self._ch)):
            v = (lit if mono else col[i]) * k // 10000
            out[i] = v
            if self._pwm:
                self._ch[i].duty_u16(v * 257)  # 255 * 257 = 65535
            else:
                self._ch[i].value(1 if v >= 128 else 0)
        if mono:
            out[1] = out[2] = out[0]  # one colour: show it as grey levels
