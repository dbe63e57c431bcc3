"""The firmware on a real MicroPython port: the rp2 (Raspberry Pi Pico) build
of MicroPython on the rp2040js emulator (tools/pico). The harness drives the
pins and ADCs as the charger's hardware would (pilot, CT, mains voltage,
contactor feedback, lock sense), reads the relay and the pilot's PWM back,
and cuts the power by killing the emulator. Skipped, with what to install,
where there is no UF2, bootrom or node (docs/pico-emulator.md)."""
import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from harness import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import build_mpy  # noqa: E402
from pico.harness import Pico, find_uf2, mkfs, mkromfs, node_ready, read_fs  # noqa: E402

_found, _why = find_uf2()
_node = node_ready()
pytestmark = pytest.mark.skipif(_found is None or _node is not None,
                                reason="emulated Pico: %s" % (_why or _node))

PY = sys.executable
MPREMOTE = os.path.join(os.path.dirname(sys.executable), "mpremote")

# boards/rp2/board.py: GP26 pilot read-back (0 V at 32768 counts, 24 V over
# the 16-bit range), GP27 CT (1000:1 into 22 ohm), GP28 mains through a
# 330:1 divider, all into the 3.3 V 12-bit ADC.
_A_PER_COUNT = 3.3 / 4096 * 1000 / 22
_V_PER_COUNT = 3.3 / 4096 * 330


def pilot(volts):
    return max(0, min(4095, int((32768 + volts * 65535 / 24) / 16)))


def wire(p):
    """The charger's hardware around the Pico."""
    p.follow(14, 15, invert=True)     # contactor feedback (active low) follows the relay
    p.latch(12, 10, 11, active=0)     # lock sense: pulses on GP10 lock, GP11 unlock
    p.set_adc(4, 876)                 # the die at 27 degC
    ev(p, 12)


def ev(p, volts):
    # The pilot's high level as the EV sets it (12 A, 9 B, 6 C); -12 V in the
    # PWM's low phase (the EV's diode).
    p.adc_follow(0, 16, pilot(volts), pilot(-12))


def load(p, amps, volts=230.0):
    p.adc_sine(1, 2048, amps / _A_PER_COUNT * 2 ** 0.5)
    p.adc_sine(2, 2048, volts / _V_PER_COUNT * 2 ** 0.5)


def until(p, pred, what, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.3)
    raise AssertionError("timed out waiting for %s; console tail:\n%s" % (
        what, p.console()[-2500:]))


PROVISIONING = {
    "identity": {"chargePointVendor": "OpenCharge", "chargePointModel": "PICO-AC"},
    "settings": {"csmsUrl": "ws://127.0.0.1:9/ocpp", "chargeBoxId": "PICO1"},
    "keys": {"FreeCharging": True},
}

# A main.py that runs the firmware as boards/rp2/main.py does and prints the
# heap in use (after a collection) every 5 s of emulated time.
HEAP_MAIN = """\
import gc, json, asyncio
from mpocpp_board.board import Board
from mpocpp.charger import Charger
prov = json.load(open("/provisioning.json"))
ch = Charger(Board(prov.get("settings", {}), flash_dir="/data"), prov)
gc.collect()
print("HEAP built %d %d" % (gc.mem_alloc(), gc.mem_free()))
async def report():
    while True:
        await asyncio.sleep(5)
        gc.collect()
        print("HEAP run %d %d" % (gc.mem_alloc(), gc.mem_free()))
async def main():
    asyncio.create_task(report())
    await ch.run()
asyncio.run(main())
"""


_BUILT = []  # the bundle's build directory, made once per test process


def bundle():
    """The files tools/deploy puts on a board: {path on the board: host path}."""
    # A build of this test process's own: another test building the
    # shared build/mpy-rp2 at the same moment once gave the emulated Pico
    # an "incompatible .mpy file" (a fresh clone's `make test`).
    if not _BUILT:
        d = tempfile.mkdtemp(prefix="mpy-rp2-pico-")
        atexit.register(shutil.rmtree, d, True)
        _BUILT.append(build_mpy.build("rp2", out=os.path.join(d, "mpy"), quiet=True))
    out = _BUILT[0]
    files = {"/lib/" + rel: os.path.join(out, rel) for rel in build_mpy.bundle_files(out)}
    files["/main.py"] = os.path.join(ROOT, "boards", "rp2", "main.py")
    return files


@pytest.fixture
def pico(tmp_path):
    ps = []

    def make(files=None, **kw):
        img = str(tmp_path / ("fs%d.img" % len(ps)))
        if files is not None:
            mkfs(img, files)
        p = Pico(fs=img, **kw)
        ps.append(p)
        return p
    yield make
    for p in ps:
        p.stop()


# --- the harness itself ---------------------------------------------------

def test_repl_pins_adc_pwm(pico):
    p = pico()
    p.set_gpio(12, 1)
    p.set_adc(0, 3000)
    p.start()
    p.wait_for(">>> ")
    out = p.exec_raw(
        "import machine\n"
        "print(machine.Pin(12, machine.Pin.IN).value(), machine.ADC(26).read_u16())\n"
        "machine.Pin(15, machine.Pin.OUT).value(1)\n"
        "pw = machine.PWM(machine.Pin(16)); pw.freq(1000); pw.duty_u16(65535 * 40 // 100)\n")
    assert out.split() == ["1", str(3000 << 4 | 3000 >> 8)]
    assert p.gpio(15) == 1
    pw = p.pwm(16)
    assert abs(pw["duty"] - 0.40) < 0.001 and abs(pw["freq"] - 1000) < 1 and pw["enabled"]


def test_sine_and_pin_following_sources(pico):
    p = pico()
    p.adc_sine(1, 2048, 1000, hz=50)
    p.start()
    p.wait_for(">>> ")
    out = p.exec_raw(
        "import machine, time\na = machine.ADC(27)\nv = []\n"
        "t = time.ticks_us()\n"
        "while time.ticks_diff(time.ticks_us(), t) < 40000:\n"
        "    v.append(a.read_u16() >> 4)\n"
        "print(min(v), max(v), len(v))\n")
    lo, hi, n = map(int, out.split())
    assert lo < 1100 and hi > 3000 and n > 50


def test_flash_survives_a_power_cut(pico):
    p = pico()
    p.start()
    p.wait_for(">>> ")
    p.exec_raw("with open('/note.txt', 'w') as f:\n    f.write('kept')\n")
    p.power_cut()
    assert read_fs(p.fs, "/note.txt") == b"kept"
    p.start()
    p.wait_for(">>> ")
    assert "kept" in p.exec_raw("print(open('/note.txt').read())")


def test_deploy_over_the_usb_repl(pico, tmp_path):
    # tools/deploy installs the bundle with mpremote, as on a real board;
    # the charger then boots from what was installed.
    p = pico()
    p.start()
    p.wait_for(">>> ")
    prov = tmp_path / "prov.json"
    prov.write_text(json.dumps(PROVISIONING))
    r = subprocess.run([PY, os.path.join(ROOT, "tools", "deploy"), "--board", "rp2",
                        "--port", p.pty(), "--config", str(prov)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    p.power_cut()
    names = read_fs(p.fs, "/lib/mpocpp/charger.mpy")
    assert names, "the bundle is not on the board"
    p.start()
    p.wait_for("charge point PICO1 starting", timeout=180)


# --- the firmware, offline --------------------------------------------------

def _firmware(pico, main=None, provisioning=PROVISIONING):
    files = bundle()
    if main is not None:
        files["/main.py"] = main.encode()
    files["/provisioning.json"] = json.dumps(provisioning).encode()
    p = pico(files)
    wire(p)
    return p


def test_offline_session_relay_energy_and_power_cut(pico):
    p = _firmware(pico)
    p.start()
    p.wait_for("charge point PICO1 starting", timeout=180)
    p.wait_for("no network on this board: running offline", timeout=60)  # no WiFi: no crash
    assert p.gpio(15) == 0
    load(p, 16)
    ev(p, 9)  # plugged: FreeCharging starts a transaction
    p.wait_for("transaction started for FFFFFFFF", timeout=60)
    until(p, lambda: p.pwm(16)["duty"] < 0.99, "current offered on the pilot")
    assert abs(p.pwm(16)["duty"] - 32 / 0.6 / 100) < 0.002  # 32 A: 53.3 %
    assert p.gpio(15) == 0  # the EV has not asked for energy yet
    ev(p, 6)  # state C
    until(p, lambda: p.gpio(15) == 1, "relay closed")
    t0 = p.emu_ms()
    until(p, lambda: p.emu_ms() - t0 > 8000, "8 s of charging", timeout=120)
    ev(p, 12)  # unplugged
    until(p, lambda: p.gpio(15) == 0, "relay open")
    p.wait_for("transaction stopped (EVDisconnected)", timeout=60)
    time.sleep(1)
    p.power_cut()
    regs = [read_fs(p.fs, "/data/meter.%d" % i) for i in (0, 1)]
    wh = max(json.loads(r.split(b"\n")[0])["wh"]["1"] for r in regs if r)
    assert wh >= 5, regs  # 16 A x 230 V for ~8 s: about 8 Wh
    # A power cut during a second transaction: stopped with PowerLoss at boot.
    p.start()
    p.wait_for("charge point PICO1 starting", timeout=180)
    ev(p, 9)
    p.wait_for("transaction started", timeout=60)
    ev(p, 6)
    until(p, lambda: p.gpio(15) == 1, "relay closed")
    p.power_cut()
    p.start()
    p.wait_for("interrupted by power loss", timeout=180)
    p.wait_for("transaction stopped (PowerLoss)", timeout=60)
    p.wait_for("charge point PICO1 starting", timeout=60)
    # the EV still plugged in state C after the restart: a new session
    p.wait_for("transaction started", timeout=60)


def test_heap_on_the_pico(pico):
    # The heap in use on the real rp2 port, .mpy files in /lib (stock
    # firmware), offline: a budget that catches a regression; the figures are
    # in docs/benchmarks.md (bench/bench_pico.py).
    p = _firmware(pico, main=HEAP_MAIN)
    p.start()
    built = p.wait_for("HEAP built", timeout=180)
    out = p.wait_for("HEAP run", timeout=60, after=p.mark())
    t0 = p.emu_ms()
    until(p, lambda: p.emu_ms() - t0 > 15000, "15 s of the main loop", timeout=180)
    tail = p.console()
    runs = [line.split() for line in tail.splitlines() if line.startswith("HEAP run")]
    alloc = max(int(r[2]) for r in runs)
    print("heap on the emulated Pico:", built.splitlines()[-1], runs)
    # 95.8 KB measured on 2026-12-04, the log messages in flash (101.6 KB
    # before them, bench/bench_pico.py; 118.1 KB while a board without
    # uplink made a WebSocket for each connect attempt), its names in six
    # qstr pools; the seventh pool would take 7.7 KB at once (docs/boards.md
    # "The qstr cliff").
    assert built and out and alloc < 104 * 1000, runs


def heap_run(p, seconds=15):
    """Boot HEAP_MAIN -> (heap in use after the build, highest heap in use
    sampled every 5 s of the main loop over `seconds`), in bytes."""
    p.start()
    p.wait_for("HEAP built", timeout=180)
    p.wait_for("HEAP run", timeout=60, after=p.mark())
    t0 = p.emu_ms()
    until(p, lambda: p.emu_ms() - t0 > seconds * 1000, "the main loop", timeout=180)
    lines = [line.split() for line in p.console().splitlines() if line.startswith("HEAP ")]
    built = [int(x[2]) for x in lines if x[1] == "built"]
    runs = [int(x[2]) for x in lines if x[1] == "run"]
    return built[-1], max(runs)


@pytest.mark.skipif(find_uf2(romfs=True)[0] is None, reason="emulated Pico with ROMFS: %s"
                    % find_uf2(romfs=True)[1])
def test_heap_on_the_pico_from_romfs(pico, tmp_path):
    # The same firmware run in place from a ROMFS partition (the image
    # `tools/deploy --romfs` writes; a board build with a ROMFS partition):
    # the bytecode stays in flash, the heap holds data and the qstr pool.
    files = bundle()
    img = mkromfs(str(tmp_path / "romfs.img"),
                  {k: v for k, v in files.items() if k.startswith("/lib/")})
    p = pico({"/main.py": HEAP_MAIN.encode(),
              "/provisioning.json": json.dumps(PROVISIONING).encode()}, romfs=img)
    wire(p)
    built, alloc = heap_run(p)
    print("heap on the emulated Pico, firmware in ROMFS: built %d, running %d" % (built, alloc))
    # 57.5 KB after the build, 58.8 KB running, measured at the end of
    # 2026-12-04 (docs/benchmarks.md, bench/bench_pico.py); with `.mpy`
    # files in /lib the same run takes 95.8 KB.
    assert alloc < 64 * 1000, alloc


# --- the firmware online, through the serial bridge ----------------------------

def test_online_through_the_usb_bridge(pico, csms):
    # A Pico without WiFi: the firmware's connection runs over the USB
    # REPL's serial line to tools/bridge, which opens the TCP connection to
    # the bench CSMS; every message is validated by the CSMS.
    # The heap is sampled (HEAP_MAIN) while the transaction runs, its
    # session code let go 5 s after the last event (idleReleaseMs).
    prov = dict(PROVISIONING, keys={"MeterValueSampleInterval": 5, "HeartbeatInterval": 300},
                settings={"csmsUrl": csms.url, "chargeBoxId": "PICO1", "net": "usb",
                          "idleReleaseMs": 5000})
    p = _firmware(pico, main=HEAP_MAIN, provisioning=prov)
    p.start()
    bridge = subprocess.Popen([PY, os.path.join(ROOT, "tools", "bridge"), "--serial", p.pty()],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        csms.wait_for("BootNotification", cp_id="PICO1", timeout=240)
        csms.wait_for("StatusNotification", cp_id="PICO1", timeout=60,
                      pred=lambda m: m.payload["connectorId"] == 1)
        csms.call("PICO1", "TriggerMessage", {"requestedMessage": "Heartbeat"}, timeout=60)
        csms.wait_for("Heartbeat", cp_id="PICO1", timeout=60)
        load(p, 16)
        m = csms.mark()
        r = csms.call("PICO1", "RemoteStartTransaction", {"idTag": "REMOTE1", "connectorId": 1},
                      timeout=60)
        assert r["status"] == "Accepted"
        ev(p, 9)
        start = csms.wait_for("StartTransaction", cp_id="PICO1", after=m, timeout=120)
        assert start.payload["idTag"] == "REMOTE1"
        ev(p, 6)
        until(p, lambda: p.gpio(15) == 1, "relay closed")
        mv = csms.wait_for("MeterValues", cp_id="PICO1", after=m, timeout=120)
        txid = mv.payload["transactionId"]
        assert txid > 0
        k = p.mark()
        t0 = p.emu_ms()
        until(p, lambda: p.emu_ms() - t0 > 16000, "16 s of charging", timeout=300)
        # (a bridge frame may share a line with the text: search, not startswith)
        runs = [int(n) for n in re.findall(r"HEAP run (\d+)", p.console()[k:])]
        print("heap on the emulated Pico, connected, charging:", runs)
        # 125.7 KB measured on 2026-12-05 (bench/bench_pico.py; 133.0 KB
        # while MeterValues' answers loaded the payload validator, 150.5 KB
        # before the session code and the authorization store were let go
        # while charging), MeterValues every 5 s here, every 10 s there.
        assert runs and max(runs) < 132 * 1000, runs
        r = csms.call("PICO1", "RemoteStopTransaction", {"transactionId": txid}, timeout=60)
        assert r["status"] == "Accepted"
        stop = csms.wait_for("StopTransaction", cp_id="PICO1", after=m, timeout=120)
        assert stop.payload["transactionId"] == txid and stop.payload["reason"] == "Remote"
        until(p, lambda: p.gpio(15) == 0, "relay open")
    finally:
        bridge.kill()
        err = bridge.stderr.read().decode()
        print("bridge log:\n" + err[-2000:])
        print("the Pico's console:\n" + p.console()[-3000:])
