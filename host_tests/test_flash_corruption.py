"""Every file the firmware keeps in flash, corrupted (issue 12,
docs/reliability.md): truncated, bits flipped, emptied, and the
provisioning file fuzzed. The charger boots once with a log line and safe
defaults: no crash, no boot loop, registered, connectors Available, and a
session can still be charged and stopped."""
import json
import os
import random
import shutil
import subprocess
import time

import pytest

from harness import MICROPYTHON, mp_env

# Runs inside micropython on the simulated flash: lists the files, or
# corrupts them (mode: truncate, flip, empty; seed for the flips).
CORRUPT = r"""
import sys, os
data, mode, seed, only = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
from mpocpp_board.board import Board
Board(data)
import random
random.seed(seed)

def walk(d):
    for name, kind, *_ in os.ilistdir(d):
        p = d + "/" + name
        if kind == 0x4000:
            yield from walk(p)
        else:
            yield p

for p in sorted(walk("/flash")):
    rel = p[len("/flash/"):]
    if only != "*" and rel != only:
        continue
    with open(p, "rb") as f:
        b = bytearray(f.read())
    if mode == "truncate":
        b = b[:len(b) // 2]
    elif mode == "empty":
        b = b""
    elif mode == "flip":
        for _ in range(1 + len(b) // 64):
            if b:
                b[random.getrandbits(16) % len(b)] ^= 1 << random.getrandbits(3)
    if mode != "list":
        with open(p, "wb") as f:
            f.write(b)
    print(rel, len(b))
"""


def run_mp(tmp_path, data, mode, seed=1, only="*"):
    path = tmp_path / "corrupt.py"
    path.write_text(CORRUPT)
    p = subprocess.run([MICROPYTHON, "-X", "heapsize=2M", str(path), data, mode, str(seed), only],
                       env=mp_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return dict(line.rsplit(" ", 1) for line in p.stdout.splitlines() if " " in line)


def _boots(ch):
    return ch.log_text().count("starting (boot")


def _fill_the_flash(csms, ch):
    # A charger with every kind of file: a transaction running (tx, txdata,
    # meter registers, the authorization cache), a local list, a charging
    # profile, a connector scheduled Inoperative, queued messages.
    ch.ok("plug_in", connector=1)
    ch.ok("swipe", idTag="CARD1")
    csms.wait_for("StartTransaction", timeout=10)
    ch.ok("load", connector=1, amps=[32, 32, 32], volts=[230, 230, 230])
    ch.wait_state(lambda s: s["connectors"][0]["relay"], what="charging")
    csms.call("CP1", "SendLocalList", {"listVersion": 3, "updateType": "Full",
                                       "localAuthorizationList": [{
                                           "idTag": "LOCAL1",
                                           "idTagInfo": {"status": "Accepted"}}]})
    csms.call("CP1", "SetChargingProfile", {"connectorId": 0, "csChargingProfiles": {
        "chargingProfileId": 5, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {
            "chargingRateUnit": "A", "startSchedule": "2020-01-01T00:00:00Z",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 20.0}]}}})
    csms.call("CP1", "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    time.sleep(2.5)  # a few meter ticks, the registers written
    csms.heartbeat_reply = False


def _check_boots_once(csms, ch, log_at, conns):
    csms.wait_connected("CP1", timeout=20, count=conns + 1)
    st = ch.wait_state(lambda s: s["registration"] == "Accepted", timeout=20,
                       what="registered")
    time.sleep(1.5)
    assert ch.proc.poll() is None, ch.tail(40)
    log = ch.log_text()[log_at:]
    assert "Traceback" not in log, log
    assert log.count("starting (boot") == 1, log  # no boot loop
    assert st["connectors"][0]["status"] in ("Available", "Finishing", "Preparing",
                                             "Unavailable", "Charging", "SuspendedEV",
                                             "SuspendedEVSE"), st
    return log


@pytest.mark.parametrize("mode", ["truncate", "flip", "empty"])
def test_every_file_corrupted_boots_once(csms, charger_factory, tmp_path, mode):
    ch = charger_factory()
    csms.wait_for("StatusNotification", pred=lambda m: m.payload.get("connectorId") == 1,
                  timeout=15)
    _fill_the_flash(csms, ch)
    ch.power_cut()
    files = run_mp(tmp_path, ch.data_dir, mode, seed=7)
    # the files the architecture lists are all there to corrupt
    for name in ("config.json", "bootcount", "tx1", "chprofiles", "availability",
                 "auth/authlist.bin", "auth/authcache.log"):
        assert name in files, sorted(files)
    assert any(n.startswith("queue/") for n in files), sorted(files)
    log_at = len(ch.log_text())
    conns = csms.connections("CP1")
    csms.heartbeat_reply = True
    ch.start()
    log = _check_boots_once(csms, ch, log_at, conns)
    print("---- the boot on corrupted flash (%s) ----" % mode)
    print("\n".join(x for x in log.splitlines() if " W " in x or " E " in x))
    # what could not be read is said
    assert "config.json unreadable: using defaults" in log, log
    if mode == "truncate":  # (a flipped bit may leave valid JSON there)
        assert "availability unreadable" in log, log
    if mode != "empty":
        assert "unreadable transaction record dropped" in log, log
        assert "stored profiles unreadable" in log, log
    # still a charger: a session starts and stops
    ch.ok("plug_out", connector=1)
    csms.call("CP1", "ChangeAvailability", {"connectorId": 0, "type": "Operative"})
    ch.wait_state(lambda s: s["connectors"][0]["status"] == "Available", timeout=15,
                  what="Available")
    mark = csms.mark()
    ch.ok("plug_in", connector=1)
    ch.ok("swipe", idTag="CARD2")
    csms.wait_for("StartTransaction", after=mark, timeout=15)
    ch.ok("swipe", idTag="CARD2")
    csms.wait_for("StopTransaction", after=mark,
                  pred=lambda m: m.payload.get("idTag") == "CARD2", timeout=15)
    assert ch.proc.poll() is None, log
    csms.violations[:] = [v for v in csms.violations if "StopTransaction" not in v
                          and "MeterValues" not in v]


def test_provisioning_file_fuzzed(csms, charger_factory, tmp_path):
    # A provisioning file of the wrong shape: the charger says so and boots
    # with its defaults (or what of the file it could use), once.
    r = random.Random(5)
    from conftest import FAST
    bad = [None, [], "text", {"keys": []}, {"keys": {"HeartbeatInterval": "x" * 5000}},
           {"identity": 7}, {"settings": {"reconnectMinMs": -1, "pongTimeoutMs": "x"}},
           {"keys": {"NoSuchKey": 1, "MeterValueSampleInterval": -5,
                     "SupportedFeatureProfiles": 12}},
           dict(FAST, keys={k: r.choice((None, [], {}, -1, 2 ** 40, "é" * 300))
                            for k in FAST["keys"]})]
    for i, cfg in enumerate(bad):
        ch = charger_factory(cp_id="CP1", start=False, config=None)
        ch.data_dir = str(tmp_path / ("prov%d" % i))
        os.makedirs(ch.data_dir)
        path = os.path.join(ch.data_dir, "provisioning.json")
        with open(path, "w") as f:
            f.write(json.dumps(cfg) if i % 2 else json.dumps(cfg)[:-1] if cfg else "{")
        ch.log_path = os.path.join(ch.data_dir, "sim.log")
        ch.extra = ["--config", path]
        conns = csms.connections("CP1")
        ch.start()
        try:
            _check_boots_once(csms, ch, 0, conns)
        finally:
            ch.stop()
        shutil.rmtree(ch.data_dir, ignore_errors=True)
