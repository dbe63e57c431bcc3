# The real boards' clock: machine.RTC as unix seconds, whatever the port's
# epoch (1970 or 2000). `machine` is imported on use, so this module also
# compiles for unix.


class RtcClock:
    trusted = False

    def __init__(self):
        import machine
        import time
        self._time = time
        self._rtc = machine.RTC()
        self._epoch = 946684800 if time.gmtime(0)[0] == 2000 else 0

    def time(self):
        return self._time.time() + self._epoch

    def set(self, t):
        tm = self._time.gmtime(int(t) - self._epoch)
        self._rtc.datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))
