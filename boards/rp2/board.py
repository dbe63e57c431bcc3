# Raspberry Pi Pico W (RP2040) AC wall charger, as the firmware sees it
# (docs/architecture.md, "Board"). The pin map and the construction of the
# drivers are in wiring.py, imported for Board() only: that code is not in
# the heap after the boot. The queue uses the littlefs backend (the rp2
# flash programs whole 256-byte pages, see docs/queue.md).
import machine

_WIRING = "mpocpp_board.wiring"


class Board:
    name = "rp2"

    def __init__(self, settings, max_amps=32, flash_dir="/data"):
        from mpocpp.util import modules
        self.flash_dir = flash_dir
        try:
            import os
            os.mkdir(self.flash_dir)
        except OSError:
            pass
        self.queue_dev = None
        try:
            p = modules.load(_WIRING).build(settings, max_amps, self.feed)
        finally:
            modules.release(_WIRING)
        self.clock = p["clock"]
        self.net = p["net"]
        self.limits = p["limits"]
        self._hw = p["hw"]
        self.led = p["led"]
        self.tamper = p["tamper"]
        self._wdt = None

    def connector_hw(self, i):
        return self._hw if i == 1 else None

    def feed(self):
        if self._wdt is None:
            self._wdt = machine.WDT(timeout=8000)  # RP2040 maximum is 8388 ms
        self._wdt.feed()

    def reset(self, hard):
        machine.reset()
