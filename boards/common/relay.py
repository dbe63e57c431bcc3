# Relay / contactor with optional auxiliary-contact feedback. A feedback that
# disagrees with the command after the settle time means a welded contact
# (stays closed) or one that does not close: OCPP PowerSwitchFailure.
import time
from micropython import const

_SETTLE_MS = const(100)  # contactors take 20-50 ms to move; margin for bounce


class Relay:
    def __init__(self, pin, feedback=None, feedback_active=1, invert=False,
                 settle_ms=_SETTLE_MS):
        self._pin = pin
        self._fb = feedback
        self._fb_on = feedback_active
        self._on = 0 if invert else 1
        self._settle = settle_ms
        self._t = time.ticks_ms()
        self.closed = False  # commanded state
        pin.value(1 - self._on)

    def close(self):
        self._drive(True)

    def open(self):
        self._drive(False)

    def _drive(self, c):
        self._pin.value(self._on if c else 1 - self._on)
        if c != self.closed:
            self.closed = c
            self._t = time.ticks_ms()

    @property
    def sensed(self):
        # Contact state from the feedback input; None without feedback.
        if self._fb is None:
            return None
        return self._fb.value() == self._fb_on

    def check(self):
        # None while healthy (or settling); "PowerSwitchFailure" otherwise.
        if self._fb is None or self.sensed == self.closed:
            return None
        if time.ticks_diff(time.ticks_ms(), self._t) < self._settle:
            return None
        return "PowerSwitchFailure"
