# ESP32 (no PSRAM) AC wall charger, as the firmware sees it
# (docs/architecture.md, "Board"). The pin map and the construction of the
# drivers are in wiring.py, imported for Board() only: that code is not in
# the heap after the boot.
import machine

_WIRING = "mpocpp_board.wiring"


class Board:
    name = "esp32"

    def __init__(self, settings, max_amps=32, phases=3, flash_dir="/data"):
        from mpocpp.util import modules
        self.flash_dir = flash_dir
        try:
            import os
            os.mkdir(self.flash_dir)
        except OSError:
            pass
        try:
            p = modules.load(_WIRING).build(settings, max_amps, phases, self.feed)
        finally:
            modules.release(_WIRING)
        self.clock = p["clock"]
        self.queue_dev = p["queue_dev"]
        self.net = p["net"]
        self.limits = p["limits"]
        self._hw = p["hw"]
        self.led = p["led"]
        self.tamper = p["tamper"]
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
