"""The real boards (ESP32, Pico W): their code compiles for the target
architecture, constructs its drivers inside MicroPython (with a stand-in for
`machine`), and tools/deploy plans the right mpremote steps."""
import os
import subprocess
import sys

import pytest

from harness import ROOT, MICROPYTHON

sys.path.insert(0, os.path.join(ROOT, "tools"))
import build_mpy  # noqa: E402

PY = sys.executable


@pytest.mark.parametrize("board", ["esp32", "rp2"])
def test_build_for_board(board, tmp_path):
    out = tmp_path / board
    subprocess.run([PY, os.path.join(ROOT, "tools", "build_mpy.py"), "--board", board,
                    "--out", str(out), "--quiet"], check=True)
    names = build_mpy.bundle_files(str(out))
    assert "mpocpp_board/board.mpy" in names and "mpocpp/app.mpy" in names
    assert "mpocpp/protocol/link.mpy" in names
    # namespace packages: no __init__ module whose path would take a qstr
    assert not any(n.endswith("__init__.mpy") and n != "mpocpp/operations/__init__.mpy"
                   for n in names), names
    assert not any(n.endswith(("/main.mpy", "/manifest.mpy")) for n in names)
    # unix-only modules stay out
    assert "mpocpp_board/simhw.mpy" not in names and "mpocpp_board/bench.mpy" not in names


@pytest.mark.parametrize("board", ["esp32", "rp2"])
def test_board_constructs_drivers(board):
    script = r"""
import sys
from mpocpp_board.board import Board
b = Board({"wifiSsid": "x", "wifiPassword": "y"}, flash_dir=sys.argv[-1] + "/data")
assert "mpocpp_board.wiring" not in sys.modules  # the pin map: for the boot only
hw = b.connector_hw(1)
assert b.connector_hw(2) is None
assert hw.pilot.offer(16) == 16
assert abs(hw.pilot.duty - 16 / 0.6) < 0.1
hw.relay.close(); assert hw.relay.closed
hw.relay.open(); assert not hw.relay.closed
b.led.show("charging")
assert b.limits["NumberOfConnectors"] == 1
assert b.flash_dir.endswith("/data")
b.feed()
t = b.clock.time()
assert t > 1600000000
print("BOARD OK", b.name)
"""
    env = dict(os.environ, MICROPYPATH=":".join([
        ".frozen", os.path.join(ROOT, "host_tests", "mp", "fakehw"),
        build_mpy.source_tree(board)]))
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run([MICROPYTHON, "-c", script, d], env=env, capture_output=True, text=True,
                           cwd=d, timeout=60)
    assert "BOARD OK " + board in p.stdout, p.stdout + p.stderr


def test_deploy_plan(tmp_path):
    p = subprocess.run([PY, os.path.join(ROOT, "tools", "deploy"), "--board", "esp32", "--dry-run",
                        "--port", "/dev/ttyUSB9", "--config",
                        os.path.join(ROOT, "tools", "provisioning.example.json")],
                       capture_output=True, text=True, check=True)
    lines = p.stdout.splitlines()
    assert all("connect /dev/ttyUSB9" in l for l in lines)
    assert any(l.endswith(":/lib/") and "cp -r" in l and "/mpocpp " in l and "/mpocpp_board" in l
               for l in lines)
    assert any(l.endswith(":/main.py") for l in lines)
    assert any(l.endswith(":/provisioning.json") for l in lines)
    assert lines[-1].endswith("reset")


def test_deploy_plan_romfs():
    p = subprocess.run([PY, os.path.join(ROOT, "tools", "deploy"), "--board", "rp2", "--dry-run",
                        "--romfs"], capture_output=True, text=True, check=True)
    assert "romfs --no-mpy deploy" in p.stdout and ":/lib" not in p.stdout


@pytest.mark.parametrize("board", ["esp32", "rp2"])
def test_board_main_starts_the_firmware(board, tmp_path):
    # main.py -> boardmain.run(): slot selection, provisioning, Board, Charger.
    stub = tmp_path / "stub"
    pkg = stub / "mpocpp"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for sub in ("util", "transfer"):  # the real ones beside the stub app
        os.symlink(os.path.join(ROOT, "mpocpp", sub), str(pkg / sub))
    (pkg / "charger.py").write_text(
        "class Charger:\n"
        "    def __init__(self, board, prov, firmware_version=None, firmware_state=None):\n"
        "        print('APP RUN', board.name, firmware_state, prov['settings']['wifiSsid'])\n"
        "    async def run(self):\n"
        "        pass\n")
    prov = tmp_path / "provisioning.json"
    prov.write_text('{"settings": {"wifiSsid": "lab"}}')
    script = ("from mpocpp_board import boardmain\nboardmain.run(flash=%r, provisioning=%r)\n"
              % (str(tmp_path / "data"), str(prov)))
    (tmp_path / "data").mkdir()
    env = dict(os.environ, MICROPYPATH=":".join([
        ".frozen", str(stub), os.path.join(ROOT, "host_tests", "mp", "fakehw"),
        build_mpy.source_tree(board)]))
    p = subprocess.run([MICROPYTHON, "-c", script], env=env, capture_output=True, text=True,
                       cwd=str(tmp_path), timeout=60)
    assert "APP RUN %s" % board in p.stdout and "lab" in p.stdout, p.stdout + p.stderr
