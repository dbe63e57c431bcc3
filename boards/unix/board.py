# The simulated `unix` board: the real firmware on the host, with simulated
# hardware (an EV behind the control pilot, relay, lock, LED, ADCs), a
# simulated NOR flash kept in files under --data, and a network the bench can cut.
import sys
import time
from micropython import const

RESTART_EXIT = const(75)  # tools/sim restarts the process on this exit code
FLASH_BYTES = const(1024 * 1024)
QUEUE_BYTES = const(64 * 1024)


class SimClock:
    # The host clock plus an offset the firmware may set (from the CSMS's
    # currentTime): like an RTC that keeps running across restarts.
    trusted = False

    def __init__(self):
        self.offset = 0.0

    def time(self):
        return time.time() + self.offset

    def set(self, t):
        self.offset = t - time.time()


class Board:
    name = "unix"

    def __init__(self, data_dir, connectors=1, queue="lfs", phases=3, max_amps=32, bridge=None,
                 rom_bytes=0):
        import vfs
        from mpocpp_board.fileflash import FileNorFlash
        from mpocpp_board.simnet import SimNet
        self.data_dir = data_dir
        self.rom_bytes = rom_bytes  # a ROMFS image read into the heap (main.py), or 0
        self.clock = SimClock()
        self.flash = FileNorFlash(data_dir + "/flash.bin", FLASH_BYTES)
        try:
            fs = vfs.VfsLfs2(self.flash)
        except OSError:
            print("board: blank flash: formatting littlefs")
            vfs.VfsLfs2.mkfs(self.flash)
            fs = vfs.VfsLfs2(self.flash)
        vfs.mount(fs, "/flash")
        self.flash_dir = "/flash"
        self.queue_kind = queue
        self.queue_dev = None
        if queue == "ring":
            self.queue_dev = FileNorFlash(data_dir + "/queue.bin", QUEUE_BYTES)
        if bridge:  # the connections through tools/bridge, as a board without WiFi
            from mpocpp_board.serialnet import tcp_line
            host, port = bridge.rsplit(":", 1)
            self.net = tcp_line(host, int(port))
        else:
            self.net = SimNet()
        self.n = connectors
        self.phases = phases
        self.max_amps = max_amps
        self.limits = {"NumberOfConnectors": connectors, "queueBytes": QUEUE_BYTES,
                       "maxCurrentA": max_amps, "phases": phases, "nominalVolts": 230}
        self._hw = {}
        self.led = None
        self.tamper = None
        self._make_hw()

    def _make_hw(self):
        try:
            from mpocpp_board import simhw
        except ImportError:
            return
        self.sim = simhw
        for i in range(1, self.n + 1):
            # the simulated EV is kept beside the flash image (ev<N>.json):
            # it stays plugged across a power cut
            self._hw[i] = simhw.make_connector(i, phases=self.phases, max_amps=self.max_amps,
                                               state_path="%s/ev%d.json" % (self.data_dir, i))
        self.led = simhw.make_led()
        self.tamper = simhw.SimPin(0)  # the enclosure switch (bench op tamper)

    def connector_hw(self, i):
        return self._hw.get(i)

    def feed(self):
        pass  # no watchdog on the host

    def reset(self, hard):
        # Soft and hard reset both restart the process on this board; the
        # flash files stay, as they would on a real board.
        print("board: %s reset: restarting" % ("hard" if hard else "soft"))
        sys.exit(RESTART_EXIT)
