"""FirmwareManagement end to end on the simulated charger (scenarios 59, 60
and 61's DiagnosticsStatusNotification trigger): UpdateFirmware over HTTP,
HTTPS and FTP into the flash, reboot into the new firmware, rollback;
GetDiagnostics to HTTP and FTP; failures after the retries."""
import datetime
import os
import subprocess
import sys
import time

import pytest

from harness import ROOT
from fileservers import FtpServer, HttpFileServer
from csms_lib import CallErrorResult

sys.path.insert(0, os.path.join(ROOT, "tools"))
import build_mpy  # noqa: E402
import make_image  # noqa: E402

NEW = "2.0.0-test"
OLD = "0.1.0-test"  # conftest FAST identity
MARKER = "IMAGE-APP-MARKER"


def now_iso(dt=0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=dt)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _compile(src_text, name, tmp):
    src = tmp / (name + ".py")
    src.write_text(src_text)
    out = tmp / (name + ".mpy")
    subprocess.run(
        [build_mpy.mpy_cross(), "-o", str(out), "-s", name + ".py", str(src)], check=True
    )
    return out.read_bytes()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Images built from build/mpy-unix: good (its app.mpy prints a marker),
    corrupt (one byte flipped), broken (app.mpy raises at import)."""
    tmp = tmp_path_factory.mktemp("img")
    src = build_mpy.build("unix", quiet=True)
    files = dict(make_image.collect(src))
    with open(os.path.join(ROOT, "mpocpp", "app.py")) as f:
        app = f.read()
    good = dict(files, **{"mpocpp/app.mpy": _compile('print("%s")\n' % MARKER + app, "app", tmp)})
    img = make_image.pack(sorted(good.items()), NEW, "unix")
    bad = bytearray(img)
    bad[len(bad) - 40] ^= 0xFF  # in the last file: only the SHA-256 can tell
    broken = dict(
        files, **{"mpocpp/app.mpy": _compile('raise RuntimeError("broken build")\n', "app", tmp)}
    )
    return {"good": img, "corrupt": bytes(bad),
            "broken": make_image.pack(sorted(broken.items()), "3.0.0-broken", "unix")}


@pytest.fixture
def http():
    s = HttpFileServer().start()
    yield s
    s.stop()


def fsn(csms, status, after, timeout=20):
    return csms.wait_for("FirmwareStatusNotification", after=after, timeout=timeout,
                         pred=lambda m: m.payload["status"] == status)


def statuses(csms, action, after=0):
    return [m.payload["status"] for m in csms.calls(action, after=after)]


def update(csms, url, retries=1, interval=1, date=None):
    return csms.call("CP1", "UpdateFirmware", {"location": url, "retrieveDate": date or now_iso(),
                                               "retries": retries, "retryInterval": interval})


def expect_installed(csms, charger, mark, version=NEW):
    fsn(csms, "Installing", mark)
    boot = csms.wait_for("BootNotification", after=mark, timeout=30)
    assert boot.payload["firmwareVersion"] == version
    fsn(csms, "Installed", mark, timeout=15)
    assert statuses(csms, "FirmwareStatusNotification", mark) == [
        "Downloading", "Downloaded", "Installing", "Installed"]
    # the security events of the update: the restart, the boot, the update
    ev = csms.wait_for("SecurityEventNotification", after=mark, timeout=15,
                       pred=lambda m: m.payload["type"] == "FirmwareUpdated")
    assert ev.payload["techInfo"] == version
    kinds = [m.payload["type"] for m in csms.calls("SecurityEventNotification", after=mark)]
    # (a SettingSystemTime may come between on a loaded machine: the restart
    # took long enough for the central system's time to move the clock)
    # and the first boot's StartupOfTheDevice may still be on its way
    # when the test began (queued behind the first StatusNotifications)
    update_kinds = ("ResetOrReboot", "StartupOfTheDevice", "FirmwareUpdated")
    got = [k for k in kinds if k in update_kinds]
    assert "ResetOrReboot" in got, kinds
    i = got.index("ResetOrReboot")
    assert got[:i] in ([], ["StartupOfTheDevice"]), kinds
    assert got[i:i + 3] == list(update_kinds), kinds


# --- scenario 59: UpdateFirmware ---

def test_update_http_reboots_into_new_firmware(csms, charger, http, images):
    http.add("/fw/a.img", redirect="/fw/real.img")  # one redirect on the way
    http.add("/fw/real.img", images["good"])
    mark = csms.mark()
    assert update(csms, http.url("/fw/a.img")) == {}
    expect_installed(csms, charger, mark)
    charger.wait_log(MARKER, timeout=10)  # modules now come from the flash slot
    charger.wait_log("running firmware %s from /flash/fw/a" % NEW)
    # Not busy any more: a triggered status reads Idle (4.5).
    m = csms.mark()
    assert csms.call("CP1", "TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})[
        "status"] == "Accepted"
    assert fsn(csms, "Idle", m).payload == {"status": "Idle"}
    # A power cut now keeps the new firmware (the pointer is confirmed).
    m = csms.mark()
    charger.restart()
    boot = csms.wait_for("BootNotification", after=m, timeout=20)
    assert boot.payload["firmwareVersion"] == NEW
    time.sleep(1)
    assert csms.calls("FirmwareStatusNotification", after=m) == []


def test_update_404_download_failed_after_retries(csms, charger, http):
    mark = csms.mark()
    update(csms, http.url("/missing.img"), retries=2, interval=1)
    fsn(csms, "DownloadFailed", mark)
    assert statuses(csms, "FirmwareStatusNotification", mark) == ["Downloading", "DownloadFailed"]
    assert http.requests.count(("GET", "/missing.img")) == 3  # first try + 2 retries
    assert charger.state()["boot"] == 1


def test_update_waits_for_retrieve_date(csms, charger, http):
    mark = csms.mark()
    t0 = time.time()
    update(csms, http.url("/missing.img"), retries=0, date=now_iso(3))
    fsn(csms, "Downloading", mark, timeout=10)
    assert time.time() - t0 >= 1.5  # not before retrieveDate (whole seconds)
    fsn(csms, "DownloadFailed", mark)


def test_update_corrupt_image_keeps_old_firmware(csms, charger, http, images):
    http.add("/bad.img", images["corrupt"])
    mark = csms.mark()
    update(csms, http.url("/bad.img"))
    fsn(csms, "InstallationFailed", mark)
    assert statuses(csms, "FirmwareStatusNotification", mark) == [
        "Downloading", "Downloaded", "Installing", "InstallationFailed"]
    time.sleep(1)
    assert csms.calls("BootNotification", after=mark) == []
    st = charger.state()
    assert st["boot"] == 1 and st["connectors"][0]["status"] == "Available"
    assert "SHA-256 mismatch" in charger.log_text()


def test_update_waits_for_the_transaction(csms, charger_factory, http, images):
    ch = charger_factory(connectors=2)
    csms.wait_for("StatusNotification", pred=lambda m: m.payload["connectorId"] == 2, timeout=15)
    http.add("/fw.img", images["good"])
    ch.ok("plug_in", connector=1)
    ch.ok("swipe", idTag="TAG1")
    csms.wait_for("StartTransaction", timeout=10)
    mark = csms.mark()
    update(csms, http.url("/fw.img"))
    fsn(csms, "Downloaded", mark)
    # The idle connector goes Unavailable; no install while charging.
    csms.wait_for(
        "StatusNotification",
        after=mark,
        timeout=5,
        pred=lambda m: m.payload["connectorId"] == 2 and m.payload["status"] == "Unavailable",
    )
    time.sleep(2)
    assert "Installing" not in statuses(csms, "FirmwareStatusNotification", mark)
    m = csms.mark()  # still busy: a triggered status says where it stands
    csms.call("CP1", "TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
    assert fsn(csms, "Downloaded", m).payload == {"status": "Downloaded"}
    ch.ok("swipe", idTag="TAG1")  # the driver ends the session
    stop = csms.wait_for("StopTransaction", after=mark, timeout=10)
    inst = fsn(csms, "Installing", mark)
    assert stop.t <= inst.t
    boot = csms.wait_for("BootNotification", after=mark, timeout=30)
    assert boot.payload["firmwareVersion"] == NEW
    fsn(csms, "Installed", mark)
    # After the reboot both connectors are available again.
    csms.wait_for(
        "StatusNotification",
        after=mark,
        timeout=10,
        pred=lambda m: m.payload["connectorId"] == 2 and m.payload["status"] == "Available",
    )


def test_update_https_with_provisioned_ca(csms, charger_factory, images):
    import certs
    from test_security import _pem
    pki = certs.pki()
    s = HttpFileServer(tls=pki).start()
    try:
        s.add("/fw.img", images["good"])
        ch = charger_factory(config={"settings": {"caCert": _pem(pki.ca_der)}})
        csms.wait_for(
            "StatusNotification", pred=lambda m: m.payload.get("connectorId") == 1, timeout=15
        )
        mark = csms.mark()
        update(csms, s.url("/fw.img", host="localhost"))
        expect_installed(csms, ch, mark)
    finally:
        s.stop()


def test_update_https_wrong_ca_fails_download(csms, charger_factory, images):
    import certs
    from test_security import _pem
    pki = certs.pki()
    s = HttpFileServer(tls=pki).start()
    try:
        s.add("/fw.img", images["good"])
        charger_factory(config={"settings": {"caCert": _pem(pki.other_ca_der)}})
        csms.wait_for(
            "StatusNotification", pred=lambda m: m.payload.get("connectorId") == 1, timeout=15
        )
        mark = csms.mark()
        update(csms, s.url("/fw.img", host="localhost"), retries=0)
        fsn(csms, "DownloadFailed", mark)
    finally:
        s.stop()


def test_update_ftp(csms, charger, images, tmp_path):
    ftp = FtpServer(tmp_path / "ftp", accounts={"fw": "s3cret"}).start()
    try:
        (tmp_path / "ftp" / "images").mkdir()
        (tmp_path / "ftp" / "images" / "new.img").write_bytes(images["good"])
        mark = csms.mark()
        update(csms, ftp.url("/images/new.img", "fw", "s3cret"))
        expect_installed(csms, charger, mark)
        assert "TYPE I" in ftp.commands and "PASV" in ftp.commands
    finally:
        ftp.stop()


def test_broken_firmware_rolls_back(csms, charger, http, images):
    http.add("/broken.img", images["broken"])
    mark = csms.mark()
    update(csms, http.url("/broken.img"))
    fsn(csms, "Installing", mark)
    # The new build cannot start: the board goes back to the old firmware,
    # which boots and reports the failed installation.
    boot = csms.wait_for("BootNotification", after=mark, timeout=30)
    assert boot.payload["firmwareVersion"] == OLD
    fsn(csms, "InstallationFailed", mark)
    assert "broken build" in charger.log_text()


def test_unsupported_scheme_is_refused(csms, charger):
    for action, p in (
        ("UpdateFirmware", {"location": "sftp://h/fw.img", "retrieveDate": now_iso()}),
        ("GetDiagnostics", {"location": "sftp://h/diag/"}),
    ):
        with pytest.raises(CallErrorResult) as e:
            csms.call("CP1", action, p)
        assert e.value.code == "PropertyConstraintViolation"


# --- scenario 60: GetDiagnostics ---

def dsn(csms, status, after, timeout=20):
    return csms.wait_for("DiagnosticsStatusNotification", after=after, timeout=timeout,
                         pred=lambda m: m.payload["status"] == status)


def test_diagnostics_http(csms, charger, http):
    # The transfers' state (transfer/jobs.py) is made by the first transfer
    # (Charger.use_jobs), not at boot.
    assert "mpocpp.transfer.jobs" not in charger.ok("heap")["modules"]
    mark = csms.mark()
    res = csms.call("CP1", "GetDiagnostics", {"location": http.url("/upload"), "retries": 1,
                                              "retryInterval": 1, "startTime": now_iso(-3600)})
    name = res["fileName"]
    assert name.startswith("diag-CP1-") and len(name) <= 255
    dsn(csms, "Uploaded", mark)
    assert statuses(csms, "DiagnosticsStatusNotification", mark) == ["Uploading", "Uploaded"]
    (path, field, fname, data) = http.uploads[-1]
    assert (path, field, fname) == ("/upload", "file", name)
    text = data.decode()
    assert "[configuration]" in text and "HeartbeatInterval=" in text
    assert "mpocpp.transfer.jobs" in charger.ok("heap")["modules"]  # kept from then on
    # The transfer code is released with the job (heap on a board).
    deadline = time.time() + 10
    while True:
        mods = charger.ok("heap")["modules"]
        loaded = [m for m in mods
                  if m.startswith("mpocpp.transfer.") and m != "mpocpp.transfer.jobs"]
        if not loaded:
            break
        assert time.time() < deadline, loaded
        time.sleep(0.2)
    assert "\nAuthorizationKey=" not in text and "BEGIN CERTIFICATE" not in text
    assert "BootNotification Accepted" in text  # the log lines in flash
    assert "connector1=Available" in text


def test_diagnostics_ftp(csms, charger, tmp_path):
    ftp = FtpServer(tmp_path / "ftp", accounts={"diag": "pw"}).start()
    try:
        mark = csms.mark()
        name = csms.call("CP1", "GetDiagnostics", {"location": ftp.url("/logs/", "diag", "pw")})[
            "fileName"
        ]
        dsn(csms, "Uploaded", mark)
        assert ftp.stored[-1][0] == "logs/" + name
        assert (tmp_path / "ftp" / "logs" / name).read_bytes().startswith(b"# diagnostics CP1")
    finally:
        ftp.stop()


def test_diagnostics_http_500_fails_after_retries(csms, charger, http):
    http.post_status = 500
    mark = csms.mark()
    csms.call(
        "CP1",
        "GetDiagnostics",
        {"location": http.url("/upload"), "retries": 2, "retryInterval": 1},
    )
    dsn(csms, "UploadFailed", mark)
    assert statuses(csms, "DiagnosticsStatusNotification", mark) == ["Uploading", "UploadFailed"]
    assert http.requests.count(("POST", "/upload")) == 3


def test_diagnostics_ftp_login_refused(csms, charger, tmp_path):
    ftp = FtpServer(tmp_path / "ftp", accounts={"diag": "pw"}).start()
    try:
        mark = csms.mark()
        csms.call("CP1", "GetDiagnostics", {"location": ftp.url("/", "diag", "wrong"),
                                            "retries": 1, "retryInterval": 1})
        dsn(csms, "UploadFailed", mark)
        assert ftp.commands.count("PASS wrong") == 2
        assert ftp.stored == []
    finally:
        ftp.stop()


# --- scenario 61: DiagnosticsStatusNotification trigger while idle ---

def test_trigger_diagnostics_status_idle(csms, charger):
    mark = csms.mark()
    assert (
        csms.call("CP1", "TriggerMessage", {"requestedMessage": "DiagnosticsStatusNotification"})[
            "status"
        ]
        == "Accepted"
    )
    assert dsn(csms, "Idle", mark).payload == {"status": "Idle"}
