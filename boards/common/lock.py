# Cable lock actuator with optional position feedback.
# Two drive pins: an H-bridge motor, each direction pulsed for pulse_ms.
# One drive pin (drive_unlock None): a level actuator, 1 = locked.
# The sense pin then has to confirm the new position within timeout_ms;
# False tells the caller to report UnlockFailed / ConnectorLockFailure.
import time
import asyncio
from micropython import const
from mpocpp.util import log

_POLL_MS = const(10)
_TAG = "lock"


class CableLock:
    def __init__(self, drive_lock, drive_unlock=None, sense=None, sense_active=1,
                 pulse_ms=200, timeout_ms=1000):
        self._dl = drive_lock
        self._du = drive_unlock
        self._sense = sense
        self._sense_on = sense_active
        self._pulse = pulse_ms
        self._timeout = timeout_ms
        self._want = False  # last successful position when there is no sense
        self._mutex = asyncio.Lock()  # one movement at a time
        drive_lock.value(0)
        if drive_unlock is not None:
            drive_unlock.value(0)

    @property
    def locked(self):
        if self._sense is None:
            return self._want
        return self._sense.value() == self._sense_on

    async def lock(self):
        return await self._move(True)

    async def unlock(self):
        return await self._move(False)

    async def _move(self, lock):
        async with self._mutex:
            t0 = time.ticks_ms()
            if self._du is None:
                self._dl.value(1 if lock else 0)
            else:
                pin = self._dl if lock else self._du
                pin.value(1)
                try:
                    await asyncio.sleep_ms(self._pulse)
                finally:
                    pin.value(0)  # never leave the motor energized
            if self._sense is None:
                self._want = lock
                return True
            while self.locked != lock:
                if time.ticks_diff(time.ticks_ms(), t0) >= self._timeout:
                    log.warn(
                        _TAG,
                        "%s not confirmed in %d ms",
                        "lock" if lock else "unlock",
                        self._timeout,
                    )
                    return False
                await asyncio.sleep_ms(_POLL_MS)
            return True
