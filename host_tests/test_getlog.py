"""The security whitepaper's GetLog and LogStatusNotification (N01) and
ExtendedTriggerMessage (F06), end to end on the simulated charger against
the bench CSMS: the SecurityLog and the DiagnosticsLog uploaded by HTTP and
FTP, filtered by timestamps, the failures named as precisely as the server
allows, a GetLog that cancels one in progress, and each message
ExtendedTriggerMessage can ask for."""
import datetime
import time

import pytest

from fileservers import FtpServer, HttpFileServer

LSN = "LogStatusNotification"
SEN = "SecurityEventNotification"


def iso(dt=0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=dt)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def http():
    s = HttpFileServer().start()
    yield s
    s.stop()


def booted(csms):
    csms.wait_for(SEN, pred=lambda m: m.payload["type"] == "StartupOfTheDevice", timeout=15)


def statuses(csms, after, request_id=None):
    return [m.payload["status"] for m in csms.calls(LSN, after=after)
            if request_id is None or m.payload.get("requestId") == request_id]


def wait_status(csms, status, after, request_id, timeout=20):
    return csms.wait_for(LSN, after=after, timeout=timeout,
                         pred=lambda m: m.payload["status"] == status
                         and m.payload.get("requestId") == request_id)


def get_log(csms, kind, location, request_id, **kw):
    p = {"logType": kind, "requestId": request_id, "log": {"remoteLocation": location}}
    for k in ("oldestTimestamp", "latestTimestamp"):
        if k in kw:
            p["log"][k] = kw.pop(k)
    p.update(kw)
    return csms.call("CP1", "GetLog", p)


@pytest.mark.unix32
def test_security_log_over_http_with_its_events(csms, charger, http):
    booted(csms)
    charger.ok("tamper", open=True)  # one more event, critical
    csms.wait_for(SEN, pred=lambda m: m.payload["type"] == "TamperDetectionActivated",
                  timeout=15)
    mark = csms.mark()
    res = get_log(csms, "SecurityLog", http.url("/logs"), 11, retries=1, retryInterval=1)
    assert res["status"] == "Accepted"
    name = res["filename"]
    assert name.startswith("security-CP1-") and len(name) <= 255
    wait_status(csms, "Uploaded", mark, 11)
    assert statuses(csms, mark, 11) == ["Uploading", "Uploaded"]  # N01.FR.07-09
    path, field, fname, data = http.uploads[-1]
    assert (path, fname) == ("/logs", name)
    text = data.decode()
    assert text.startswith("# security log CP1 ")
    lines = text.splitlines()[1:]
    kinds = [line.split(" ")[1] for line in lines]
    assert kinds[:1] == ["StartupOfTheDevice"] and "TamperDetectionActivated" in kinds
    for line in lines:  # "<ISO time> <type> <techInfo>"
        datetime.datetime.fromisoformat(line.split(" ")[0].replace("Z", "+00:00"))
    # Only what is in [oldest, latest]: nothing from the future.
    mark = csms.mark()
    get_log(csms, "SecurityLog", http.url("/logs"), 12, oldestTimestamp=iso(3600))
    wait_status(csms, "Uploaded", mark, 12)
    assert http.uploads[-1][3].decode().splitlines()[1:] == []
    # The transfer code goes with the job (heap on a board).
    deadline = time.time() + 10
    while [m for m in charger.ok("heap")["modules"] if m.startswith("mpocpp.transfer.")
           and m != "mpocpp.transfer.jobs"]:
        assert time.time() < deadline
        time.sleep(0.2)


def test_diagnostics_log_over_ftp(csms, charger, tmp_path):
    ftp = FtpServer(tmp_path / "ftp", accounts={"logs": "pw"}).start()
    try:
        mark = csms.mark()
        res = get_log(csms, "DiagnosticsLog", ftp.url("/up/", "logs", "pw"), 21,
                      oldestTimestamp=iso(-3600), latestTimestamp=iso(3600))
        assert res["status"] == "Accepted" and res["filename"].startswith("diag-CP1-")
        wait_status(csms, "Uploaded", mark, 21)
        assert ftp.stored[-1][0] == "up/" + res["filename"]
        text = (tmp_path / "ftp" / "up" / res["filename"]).read_text()
        assert text.startswith("# diagnostics CP1") and "[configuration]" in text
        assert "BootNotification Accepted" in text
        assert "\nAuthorizationKey=" not in text
    finally:
        ftp.stop()


def test_failures_named_as_precisely_as_the_server_allows(csms, charger, http, tmp_path):
    # N01.FR.10: a refused login is PermissionDenied, a server error after
    # the retries UploadFailure, an HTTP server that does not take POST
    # NotSupportedOperation.
    ftp = FtpServer(tmp_path / "ftp", accounts={"logs": "pw"}).start()
    try:
        mark = csms.mark()
        get_log(csms, "SecurityLog", ftp.url("/", "logs", "wrong"), 31, retries=1,
                retryInterval=1)
        wait_status(csms, "PermissionDenied", mark, 31)
        assert ftp.commands.count("PASS wrong") == 2
    finally:
        ftp.stop()
    http.post_status = 500
    mark = csms.mark()
    get_log(csms, "SecurityLog", http.url("/logs"), 32, retries=2, retryInterval=1)
    wait_status(csms, "UploadFailure", mark, 32)
    assert http.requests.count(("POST", "/logs")) == 3
    assert statuses(csms, mark, 32) == ["Uploading", "UploadFailure"]
    http.post_status = 405
    mark = csms.mark()
    get_log(csms, "DiagnosticsLog", http.url("/logs"), 33, retries=0)
    wait_status(csms, "NotSupportedOperation", mark, 33)


def test_a_new_getlog_cancels_the_one_uploading(csms, charger, http):
    # N01.FR.11: AcceptedCanceled; the first one ends there, the second is
    # uploaded. A trigger meanwhile reports the running one (N01.FR.12).
    http.post_status = 500
    mark = csms.mark()
    assert get_log(csms, "SecurityLog", http.url("/a"), 41, retries=5,
                   retryInterval=30)["status"] == "Accepted"
    wait_status(csms, "Uploading", mark, 41)
    assert csms.call("CP1", "ExtendedTriggerMessage",
                     {"requestedMessage": "LogStatusNotification"}) == {"status": "Accepted"}
    m = csms.wait_for(LSN, after=mark, timeout=10,
                      pred=lambda m: m.payload["status"] == "Uploading"
                      and len(csms.calls(LSN, after=mark)) > 1)
    assert m.payload == {"status": "Uploading", "requestId": 41}
    http.post_status = 200
    assert get_log(csms, "SecurityLog", http.url("/b"), 42)["status"] == "AcceptedCanceled"
    wait_status(csms, "Uploaded", mark, 42)
    assert statuses(csms, mark, 41) == ["Uploading", "Uploading"]  # the upload, the trigger
    assert http.requests.count(("POST", "/a")) == 1
    # idle again: the trigger says so, without a requestId
    t = csms.mark()
    csms.call("CP1", "ExtendedTriggerMessage", {"requestedMessage": "LogStatusNotification"})
    m = csms.wait_for(LSN, after=t, timeout=10)
    assert m.payload == {"status": "Idle"}


def test_extended_trigger_message_sends_each_message(csms, charger):
    booted(csms)
    for what, action in (("Heartbeat", "Heartbeat"),
                         ("StatusNotification", "StatusNotification"),
                         ("FirmwareStatusNotification", "SignedFirmwareStatusNotification")):
        mark = csms.mark()
        assert csms.call("CP1", "ExtendedTriggerMessage",
                         {"requestedMessage": what, "connectorId": 1}) == {"status": "Accepted"}
        m = csms.wait_for(action, after=mark, timeout=10)
        if action == "SignedFirmwareStatusNotification":
            assert m.payload == {"status": "Idle"}
        if action == "StatusNotification":
            assert m.payload["connectorId"] == 1
    # registered: BootNotification is Rejected (as TriggerMessage's, E3.35)
    assert csms.call("CP1", "ExtendedTriggerMessage",
                     {"requestedMessage": "BootNotification"}) == {"status": "Rejected"}
    assert csms.call("CP1", "ExtendedTriggerMessage",
                     {"requestedMessage": "MeterValues", "connectorId": 7}) == \
        {"status": "Rejected"}
    # SignChargePointCertificate: no CpoName, no CSR; with one, a SignCertificate
    assert csms.call("CP1", "ExtendedTriggerMessage",
                     {"requestedMessage": "SignChargePointCertificate"}) == \
        {"status": "Rejected"}
    assert csms.call("CP1", "ChangeConfiguration",
                     {"key": "CpoName", "value": "Example CPO"})["status"] == "Accepted"
    mark = csms.mark()
    assert csms.call("CP1", "ExtendedTriggerMessage",
                     {"requestedMessage": "SignChargePointCertificate"}) == \
        {"status": "Accepted"}
    m = csms.wait_for("SignCertificate", after=mark, timeout=30)
    assert m.payload["csr"].startswith("-----BEGIN CERTIFICATE REQUEST-----")
