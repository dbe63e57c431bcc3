# Security events (model/securityevents.py): every event in the security log
# (written at once), the critical ones queued as transaction messages.
from mpocpp.model.securityevents import SecurityEvents
from fakes import init_clock


class Queue:
    def __init__(self, full=False):
        self.pushed = []
        self.full = full

    def push(self, action, payload, txn=True, placeholder=None):
        if self.full:
            return None
        self.pushed.append((action, payload, txn))
        return len(self.pushed)


class Ring:
    def __init__(self, fail=False):
        self.lines = []
        self.flushes = 0
        self.fail = fail

    def __call__(self, line):
        if self.fail:
            raise OSError(28)
        self.lines.append(line)

    def flush(self):
        self.flushes += 1

    def files(self):
        return ("a.old", "a")


def test_critical_queued_others_logged():
    init_clock()
    q = Queue()
    r = Ring()
    s = SecurityEvents(q, r)
    s.emit("StartupOfTheDevice", "boot 3")
    s.emit("ReconfigurationOfSecurityParameters", "SecurityProfile")
    s.emit("ResetOrReboot")
    assert r.lines == ["StartupOfTheDevice boot 3",
                       "ReconfigurationOfSecurityParameters SecurityProfile",
                       "ResetOrReboot "]
    assert r.flushes == 3
    assert [(a, p["type"], t) for a, p, t in q.pushed] == [
        ("SecurityEventNotification", "StartupOfTheDevice", True),
        ("SecurityEventNotification", "ResetOrReboot", True)]
    assert q.pushed[0][1] == {"type": "StartupOfTheDevice", "techInfo": "boot 3",
                              "timestamp": "2026-01-01T00:00:00Z"}
    assert "techInfo" not in q.pushed[1][1]
    assert s.files() == ("a.old", "a")


def test_non_critical_sent_when_asked():
    # L01.FR.02/03: the signed firmware's events are sent although not critical.
    init_clock()
    q = Queue()
    r = Ring()
    s = SecurityEvents(q, r)
    s.emit("InvalidFirmwareSignature", "does not verify", True)
    s.emit("InvalidFirmwareSigningCertificate")
    assert r.lines == ["InvalidFirmwareSignature does not verify",
                       "InvalidFirmwareSigningCertificate "]
    assert [p["type"] for _, p, _ in q.pushed] == ["InvalidFirmwareSignature"]


def test_tech_info_cut_and_failures_survived():
    init_clock()
    q = Queue()
    s = SecurityEvents(q, Ring(fail=True))
    s.emit("MemoryExhaustion", "x" * 300)  # the log write fails: still queued
    assert len(q.pushed[0][1]["techInfo"]) == 255
    SecurityEvents(Queue(full=True), Ring()).emit("SettingSystemTime", "a -> b")  # logged


def test_ring_rotation_dropping_entries_is_security_log_cleared():
    # The security log is a flash ring of two files: when the newer one
    # fills and replaces the older, that older's entries are gone, and the
    # whitepaper's SecurityLogWasCleared (critical) is sent.
    from fakes import tmpdir
    from mpocpp.util import log
    init_clock()
    d = tmpdir("mpt_seclog")
    q = Queue()
    s = SecurityEvents(q, log.FlashRing(d + "/seclog", lambda: 1767225600, size=200))
    sent = []
    for i in range(12):  # ~45 bytes a line: a rotation every 5 lines
        s.emit("ResetOrReboot", "Reset Soft %d" % i)
        sent.append(q.pushed[-1][1]["type"])
    cleared = [p for _, p, _ in q.pushed if p["type"] == "SecurityLogWasCleared"]
    # the first rotation only renamed (nothing dropped); the second dropped
    assert len(cleared) == 1, sent
    assert cleared[0]["techInfo"] == "oldest entries rotated out"
    with open(d + "/seclog.old") as f:
        old = f.read()
    with open(d + "/seclog") as f:
        new = f.read()
    assert "SecurityLogWasCleared" in old + new
    assert "Reset Soft 11" in old + new
    assert "Reset Soft 0\n" not in old + new  # rotated out
