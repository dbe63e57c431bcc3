"""The emulated Raspberry Pi Pico for host tests and benches (CPython).

    from pico.harness import Pico, find_uf2
    p = Pico(fs="flash.img").start()     # boots the UF2 on the rp2040js emulator
    p.wait_for(">>> ")                   # the USB REPL's output, as text
    out = p.exec_raw("print(1 + 1)")     # a script through the raw REPL
    p.set_adc(0, 2048)                   # ADC channel 0 (GP26), 12-bit counts
    p.adc_sine(1, dc=2048, amp=600, hz=50)
    p.set_gpio(12, 0); p.gpio(15)        # drive an input, read an output
    p.pwm(16)                            # {"duty": 0.2667, "freq": 1000.0, "enabled": True}
    path = p.pty()                       # the USB REPL on a pseudo-terminal (mpremote)
    p.power_cut(); p.start()             # again, on the same flash
    p.stop()

The filesystem region is the file `fs` (1408 KiB, as the RPI_PICO port
formats it): every flash write is in it when it returns. `mkfs()` builds such
an image from host files with littlefs-python. The UF2 and the RP2040 bootrom
come from PICO_UF2 / PICO_BOOTROM, else ../shared/targets/rp2/ beside the
repository (docs/pico-emulator.md says where to get them).
"""
import base64
import json
import os
import pty
import select
import shutil
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNNER = os.path.join(ROOT, "tools", "pico", "runner.mjs")
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "targets", "rp2")

FS_BLOCKS = 352
FS_BLOCK = 4096


def find_uf2(romfs=False):
    """-> (uf2, bootrom) paths, or None with the reason as a string. romfs:
    a build with a 192 KiB ROMFS partition (PICO_ROMFS_UF2)."""
    uf2 = os.environ.get("PICO_ROMFS_UF2" if romfs else "PICO_UF2")
    if not uf2 and os.path.isdir(SHARED):
        names = sorted(n for n in os.listdir(SHARED)
                       if n.endswith(".uf2") and ("ROMFS" in n) == romfs)
        uf2 = os.path.join(SHARED, names[0]) if names else None
    rom = os.environ.get("PICO_BOOTROM") or os.path.join(SHARED, "bootrom-b1.bin")
    if not uf2 or not os.path.exists(uf2):
        if romfs:
            return None, ("no MicroPython UF2 with a ROMFS partition for the Pico: set "
                          "PICO_ROMFS_UF2 to one (RPI_PICO built with "
                          "MICROPY_HW_ROMFS_BYTES = 192 KiB, docs/pico-emulator.md)")
        return None, ("no MicroPython UF2 for the Raspberry Pi Pico: set PICO_UF2 to one "
                      "(the RPI_PICO UF2 from https://micropython.org/download/RPI_PICO/, "
                      "v1.23 or newer)")
    if not os.path.exists(rom):
        return None, ("no RP2040 bootrom: set PICO_BOOTROM to the B1 bootrom "
                      "(bootrom-b1.bin, from the raspberrypi/pico-bootrom releases)")
    return (uf2, rom), None


def node_ready():
    """-> None when node and rp2040js are there, else what to do."""
    if not shutil.which("node"):
        return "node is not installed (node 18 or newer is needed for the emulator)"
    if not os.path.isdir(os.path.join(ROOT, "node_modules", "rp2040js")):
        return "rp2040js is not installed: run `make node_modules`"
    return None


def mkfs(out, files):
    """A littlefs image for the Pico's filesystem region from host files:
    files = {"/lib/a.mpy": bytes_or_path, ...} (directories made as needed)."""
    from littlefs import LittleFS
    # The geometry of MicroPython's rp2 port: _boot.py formats with
    # progsize=256, extmod/vfs_lfsx.c reads 32, caches 4 x max(read, prog).
    lfs = LittleFS(block_size=FS_BLOCK, block_count=FS_BLOCKS, prog_size=256,
                   read_size=32, cache_size=1024, lookahead_size=32, name_max=255)
    made = set()
    for dest in sorted(files):
        parts = dest.strip("/").split("/")
        cur = ""
        for part in parts[:-1]:
            cur += "/" + part
            if cur not in made:
                try:
                    lfs.mkdir(cur)
                except Exception:  # littlefs-python's FileExistsError
                    pass
                made.add(cur)
        data = files[dest]
        if isinstance(data, str):
            with open(data, "rb") as f:
                data = f.read()
        with lfs.open(dest, "wb") as f:
            f.write(data)
    with open(out, "wb") as f:
        f.write(lfs.context.buffer)
    return out


def mkromfs(out, files):
    """A ROMFS image (mounted at /rom, /rom/lib on sys.path) from host files
    {"/lib/a.mpy": path, ...}, built by mpremote as `tools/deploy --romfs`
    deploys one; the bytecode then runs in place from flash."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="romfs-") as d:
        for dest, src in files.items():
            full = os.path.join(d, dest.strip("/"))
            os.makedirs(os.path.dirname(full), exist_ok=True)
            shutil.copyfile(src, full)
        mpremote = os.path.join(ROOT, ".venv", "bin", "mpremote")
        subprocess.run([mpremote if os.path.exists(mpremote) else "mpremote", "romfs",
                        "--no-mpy", "-o", out, "build", d],
                       check=True, stdout=subprocess.DEVNULL)
    if os.path.getsize(out) > 192 * 1024:
        raise PicoError("ROMFS image over the 192 KiB partition: %d bytes" % os.path.getsize(out))
    return out


def read_fs(image, path):
    """The bytes of `path` in a filesystem image (None when absent)."""
    from littlefs import LittleFS
    with open(image, "rb") as f:
        data = f.read()
    lfs = LittleFS(block_size=FS_BLOCK, block_count=FS_BLOCKS, prog_size=256, read_size=32,
                   cache_size=1024, lookahead_size=32, name_max=255, mount=False)
    lfs.context.buffer = bytearray(data)
    lfs.mount()
    try:
        with lfs.open(path, "rb") as f:
            return f.read()
    except Exception:
        return None


class PicoError(Exception):
    pass


class Pico:
    def __init__(self, fs, uf2=None, bootrom=None, romfs=None):
        found, why = find_uf2(romfs is not None)
        if uf2 is None or bootrom is None:
            if found is None:
                raise PicoError(why)
            uf2, bootrom = uf2 or found[0], bootrom or found[1]
        self.uf2, self.bootrom, self.fs, self.romfs = uf2, bootrom, fs, romfs
        self.proc = None
        self._cond = threading.Condition()
        self._console = bytearray()  # everything the USB REPL printed, this power-up
        self._uart = [bytearray(), bytearray()]
        self._states = {}
        self._qid = 0
        self._pty = None
        self._setup = {}  # commands replayed at every power-up (inputs, ADC sources, rules)
        self.boots = 0

    # --- power ---
    def start(self):
        cmd = ["node", RUNNER, "--uf2", self.uf2, "--bootrom", self.bootrom, "--fs", self.fs]
        if self.romfs:
            cmd += ["--romfs", self.romfs]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=ROOT)
        with self._cond:
            self._console = bytearray()
            self._uart = [bytearray(), bytearray()]
        self.boots += 1
        threading.Thread(target=self._reader, args=(self.proc,), daemon=True).start()
        for c in self._setup.values():
            self._send(c)
        return self

    def power_cut(self):
        """Kill the emulator at once: the flash keeps every completed write."""
        p = self.proc
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(10)
        self.proc = None

    def stop(self):
        self.power_cut()
        if self._pty is not None:
            os.close(self._pty[0])
            os.close(self._pty[1])
            self._pty = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- the runner's events ---
    def _reader(self, proc):
        for line in proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            kind = ev.get("ev")
            if kind == "usb" and self._pty is not None:
                # outside the lock: a slow reader of the pty must not stop
                # the console and the states from being read
                try:
                    os.write(self._pty[0], base64.b64decode(ev["data"]))
                except OSError:
                    pass
            with self._cond:
                if kind == "usb":
                    self._console += base64.b64decode(ev["data"])
                elif kind == "uart":
                    self._uart[ev["n"]] += base64.b64decode(ev["data"])
                elif kind == "state":
                    self._states[ev["id"]] = ev
                self._cond.notify_all()

    def _send(self, obj):
        p = self.proc
        if p is None or p.poll() is not None:
            raise PicoError("the emulator is not running")
        p.stdin.write((json.dumps(obj) + "\n").encode())
        p.stdin.flush()

    # --- the USB REPL ---
    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        # the emulated USB FIFO is small: the runner feeds it gradually
        self._send({"cmd": "usb", "data": base64.b64encode(data).decode()})

    def console(self):
        with self._cond:
            return self._console.decode("utf-8", "replace")

    def mark(self):
        with self._cond:
            return len(self._console)

    def wait_for(self, text, timeout=60, after=0):
        """Wait until `text` appears in the console output after `after`
        (a mark()); -> the output up to and including it."""
        want = text.encode() if isinstance(text, str) else text
        deadline = time.time() + timeout
        with self._cond:
            while True:
                i = self._console.find(want, after)
                if i >= 0:
                    return self._console[after:i + len(want)].decode("utf-8", "replace")
                left = deadline - time.time()
                if left <= 0 or self.proc is None or self.proc.poll() is not None:
                    raise PicoError("%r not seen in %ds; console tail:\n%s" % (
                        text, timeout, self._console[-1500:].decode("utf-8", "replace")))
                self._cond.wait(min(left, 0.5))

    def interrupt(self):
        """Ctrl-C until the friendly prompt shows (a running main.py stops)."""
        for _ in range(5):
            m = self.mark()
            self.write(b"\r\x03\x03")
            try:
                self.wait_for(">>> ", timeout=15, after=m)
                return
            except PicoError:
                continue
        raise PicoError("no prompt after Ctrl-C")

    def exec_raw(self, code, timeout=120):
        """Run code through the raw REPL; -> its stdout. Raises PicoError with
        the traceback when it fails."""
        m = self.mark()
        self.write(b"\x01")
        self.wait_for("raw REPL; CTRL-B to exit\r\n>", timeout=15, after=m)
        m = self.mark()
        self.write(code.encode() + b"\x04")
        self.wait_for("OK", timeout=15, after=m)
        start = m + 2
        with self._cond:
            deadline = time.time() + timeout
            while self._console.count(b"\x04", start) < 2:
                left = deadline - time.time()
                if left <= 0 or self.proc is None or self.proc.poll() is not None:
                    raise PicoError("script timed out; console tail:\n" +
                                    self._console[-1500:].decode("utf-8", "replace"))
                self._cond.wait(min(left, 0.5))
            body = self._console[start:].decode("utf-8", "replace")
        outp, err = body.split("\x04")[:2]
        self.write(b"\x02")  # back to the friendly REPL
        if err.strip():
            raise PicoError("script failed:\n" + err)
        return outp

    def pty(self):
        """The USB REPL on a pseudo-terminal: -> its path (for mpremote)."""
        if self._pty is None:
            master, slave = pty.openpty()
            import termios
            import tty
            tty.setraw(slave)
            attrs = termios.tcgetattr(slave)
            attrs[3] &= ~termios.ECHO
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            self._pty = (master, slave)
            threading.Thread(target=self._pty_pump, daemon=True).start()
        return os.ttyname(self._pty[1])

    def _pty_pump(self):
        while True:
            fds = self._pty
            if fds is None:
                return
            try:
                r, _, _ = select.select([fds[0]], [], [], 0.2)
                if r:
                    data = os.read(fds[0], 4096)
                    if data and self.proc is not None and self.proc.poll() is None:
                        self.write(data)
            except (OSError, ValueError, PicoError):
                time.sleep(0.1)

    # --- UARTs (UART0: GP0 TX / GP1 RX) ---
    def uart_write(self, data, n=0):
        self._send({"cmd": "uart", "n": n, "data": base64.b64encode(data).decode()})

    def uart_data(self, n=0):
        """Everything UART n sent since the last uart_read (not consumed)."""
        with self._cond:
            return bytes(self._uart[n])

    def uart_read(self, n=0):
        """Everything UART n sent since the last call."""
        with self._cond:
            d = bytes(self._uart[n])
            self._uart[n] = bytearray()
            return d

    # --- GPIO and ADC ---
    def _setup_cmd(self, c, keep):
        if keep:  # the latest of each input or rule, for the next power-up
            self._setup[(c["cmd"], c.get("ch"), c.get("pin"))] = c
        if self.proc is not None:
            self._send(c)

    def set_gpio(self, pin, value, keep=True):
        self._setup_cmd({"cmd": "gpio", "pin": pin, "value": 1 if value else 0}, keep)

    def set_adc(self, ch, counts, keep=True):
        """ADC channel ch (0-3: GP26-29, 4: temperature) reads `counts` (12-bit)."""
        self._setup_cmd({"cmd": "adc", "ch": ch, "mode": "const", "value": int(counts)}, keep)

    def adc_sine(self, ch, dc, amp, hz=50.0, phase=0.0, keep=True):
        """dc + amp x sin(2 pi hz t + phase) in 12-bit counts, t the emulated time."""
        self._setup_cmd({"cmd": "adc", "ch": ch, "mode": "sine", "dc": dc, "amp": amp, "hz": hz,
                         "phase": phase}, keep)

    def adc_follow(self, ch, pin, hi, lo, keep=True):
        """The channel reads `hi` while GPIO `pin`'s output is high, else `lo`
        (a control pilot read back through its PWM)."""
        self._setup_cmd({"cmd": "adc", "ch": ch, "mode": "pin", "pin": pin, "hi": hi, "lo": lo},
                        keep)

    def follow(self, pin, src, invert=False):
        """Input `pin` follows output `src` (a contactor's feedback)."""
        self._setup_cmd({"cmd": "rule", "kind": "follow", "pin": pin, "src": src,
                         "invert": invert}, True)

    def latch(self, pin, set_pin, reset_pin, active=0):
        """Input `pin` reads `active` after a pulse on set_pin, the other level
        after one on reset_pin (a cable lock's sense switch)."""
        self._setup_cmd({"cmd": "rule", "kind": "latch", "pin": pin, "set": set_pin,
                         "reset": reset_pin, "active": active}, True)

    def query(self, pwm=(), timeout=10):
        self._qid += 1
        q = self._qid
        self._send({"cmd": "query", "id": q, "pwm": list(pwm)})
        deadline = time.time() + timeout
        with self._cond:
            while q not in self._states:
                left = deadline - time.time()
                if left <= 0:
                    raise PicoError("no answer from the emulator")
                self._cond.wait(min(left, 0.5))
            return self._states.pop(q)

    def gpio(self, pin):
        """The output level of GPIO `pin` (0/1), or None when it is not an output."""
        return self.query()["gpio"][pin]

    def pwm(self, pin):
        return self.query(pwm=[pin])["pwm"][0]

    def emu_ms(self):
        return self.query()["emu_ms"]
