"""Boot gates, Heartbeat, StatusNotification, reconnects (checklist §2 boot,
scenarios 17-20): the firmware in micropython against the bench CSMS."""
import time

import pytest

from csms_lib import NoReply


def sn(m, cid):
    return m.payload.get("connectorId") == cid


def test_boot_accepted_then_status_and_heartbeat(csms, charger_factory):
    csms.boot_interval = 2
    ch = charger_factory()
    boot = csms.wait_for("BootNotification", timeout=15)
    # Identity comes from the provisioning file, not from code.
    assert boot.payload["chargePointVendor"] == "OpenCharge"
    assert boot.payload["chargePointModel"] == "MPY-AC22"
    assert boot.payload["chargePointSerialNumber"] == "SIM-0001"
    assert boot.payload["firmwareVersion"] == "0.1.0-test"
    s0 = csms.wait_for("StatusNotification", pred=lambda m: sn(m, 0))
    s1 = csms.wait_for("StatusNotification", pred=lambda m: sn(m, 1))
    assert s0.payload["status"] == "Available" and s1.payload["status"] == "Available"
    hb = csms.wait_for("Heartbeat", timeout=6)
    # Nothing but BootNotification came before the Accepted answer.
    first = [m for m in csms.messages if m.direction == "in" and m.type == 2]
    assert first[0].action == "BootNotification"
    hb2 = csms.wait_for("Heartbeat", after=csms.messages.index(hb) + 1, timeout=6)
    assert 1.0 <= hb2.t - hb.t <= 4.0  # HeartbeatInterval := interval of the answer
    st = ch.state()
    assert st["connection"] == "online" and st["registration"] == "Accepted"
    assert st["connectors"][0]["status"] == "Available"


def test_two_connectors_status_after_boot(csms, charger_factory):
    charger_factory(connectors=2)
    for cid in (0, 1, 2):
        csms.wait_for("StatusNotification", pred=lambda m, c=cid: sn(m, c), timeout=15)


def test_boot_pending_gates(csms, charger_factory):
    csms.boot_status = "Pending"
    csms.boot_interval = 2
    ch = charger_factory()
    csms.wait_for("BootNotification", timeout=15)
    mark = csms.mark()
    # Configuration calls are answered while Pending.
    r = csms.call("CP1", "GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert r["configurationKey"][0]["key"] == "HeartbeatInterval"
    # RemoteStartTransaction is refused while Pending.
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "TAG1"})["status"] == "Rejected"
    # TriggerMessage(StatusNotification) is the one way to get a status out.
    assert csms.call("CP1", "TriggerMessage", {"requestedMessage": "StatusNotification",
                                               "connectorId": 1})["status"] == "Accepted"
    csms.wait_for("StatusNotification", after=mark, timeout=5)
    # Boot is retried after the interval, and nothing else was sent.
    csms.wait_for("BootNotification", after=mark, timeout=6)
    sent = {m.action for m in csms.messages[mark:] if m.direction == "in" and m.type == 2}
    assert sent <= {"BootNotification", "StatusNotification"}, sent
    csms.boot_status = "Accepted"
    csms.wait_for("StatusNotification", pred=lambda m: sn(m, 0),
                  after=csms.mark(), timeout=8)
    assert ch.state()["registration"] == "Accepted"


def test_boot_rejected_is_silent_for_interval(csms, charger_factory):
    csms.boot_status = "Rejected"
    csms.boot_interval = 4
    charger_factory()
    b1 = csms.wait_for("BootNotification", timeout=15)
    # No answers while Rejected.
    with pytest.raises(TimeoutError):
        csms.call("CP1", "GetConfiguration", {}, timeout=1.5)
    csms.boot_status = "Accepted"
    b2 = csms.wait_for("BootNotification", after=csms.messages.index(b1) + 1, timeout=8)
    assert b2.t - b1.t >= 3.5
    between = [
        m
        for m in csms.messages
        if b1.t < m.t < b2.t and m.direction == "in" and m.type in (2, 3, 4)
    ]
    assert between == [], between


def test_boot_unanswered_is_retried(csms, charger_factory):
    csms.set_handler("BootNotification", lambda cp, p: NoReply())
    charger_factory(config={"keys": {"MessageTimeout": 2}})
    b1 = csms.wait_for("BootNotification", timeout=15)
    b2 = csms.wait_for("BootNotification", after=csms.messages.index(b1) + 1, timeout=10)
    assert b2.t - b1.t >= 2  # after the MessageTimeout, then its own back-off
    assert b2.id != b1.id
    csms.clear_handler("BootNotification")
    csms.wait_for("StatusNotification", after=csms.mark(), timeout=10)


def test_trigger_boot_after_accepted_rejected(csms, charger):
    r = csms.call("CP1", "TriggerMessage", {"requestedMessage": "BootNotification"})
    assert r["status"] == "Rejected"  # errata E3.35


def test_reconnect_after_network_down_without_new_boot(csms, charger):
    boots = len(csms.calls("BootNotification"))
    charger.ok("network", up=False)
    csms.wait_disconnected("CP1", timeout=5)
    time.sleep(1.5)
    assert not csms.connected("CP1")  # reconnects refused while the uplink is down
    assert charger.state()["connection"] != "online"
    charger.ok("network", up=True)
    csms.wait_connected("CP1", timeout=10)
    charger.wait_state(lambda s: s["connection"] == "online", timeout=5)
    r = csms.call("CP1", "GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert r["configurationKey"]
    assert len(csms.calls("BootNotification")) == boots
    assert csms.connections("CP1") == 2


def test_reconnect_after_csms_restart(csms, charger_factory):
    from csms_lib import BenchCSMS
    charger_factory()
    csms.wait_for("StatusNotification", pred=lambda m: sn(m, 1), timeout=15)
    port = csms.port
    csms.stop()
    time.sleep(1)
    with BenchCSMS(port=port) as c2:
        c2.wait_connected("CP1", timeout=10)
        r = c2.call("CP1", "GetConfiguration", {"key": ["HeartbeatInterval"]})
        assert r["configurationKey"]
        assert c2.calls("BootNotification") == []
    csms.start()  # for the fixture's teardown


def test_back_off_grows_on_404(csms, charger_factory):
    csms.http_status = 404
    charger_factory(config={"settings": {"reconnectMinMs": 300, "reconnectMaxMs": 2400}})
    time.sleep(6)
    t = [a[0] for a in csms.attempts("CP1")]
    assert len(t) >= 3
    gaps = [b - a for a, b in zip(t, t[1:])]
    assert gaps[-1] > gaps[0]  # growing gaps (with jitter, capped)
    assert max(gaps) < 3.5
    csms.http_status = None
    csms.wait_connected("CP1", timeout=6)


def test_subprotocol_refused_then_retry(csms, charger_factory):
    csms.agree_subprotocol = False
    ch = charger_factory()
    time.sleep(2)
    assert csms.calls("BootNotification") == []
    assert ch.state()["connection"] != "online"
    csms.agree_subprotocol = True
    csms.wait_for("BootNotification", timeout=10)


def test_message_ids_unique_across_reconnect_and_reboot(csms, charger):
    def heartbeats(n):
        # one at a time: a Heartbeat triggered while one is still waiting
        # to go is sent once
        for _ in range(n):
            m = csms.mark()
            csms.call("CP1", "TriggerMessage", {"requestedMessage": "Heartbeat"})
            csms.wait_for("Heartbeat", after=m, timeout=5)

    heartbeats(60)
    charger.ok("network", up=False)
    csms.wait_disconnected("CP1", timeout=5)
    charger.ok("network", up=True)
    csms.wait_connected("CP1", timeout=10)
    heartbeats(60)
    mark = csms.mark()
    charger.restart()
    csms.wait_for("StatusNotification", pred=lambda m: sn(m, 1), after=mark, timeout=15)
    heartbeats(100)
    ids = [m.id for m in csms.messages if m.direction == "in" and m.type == 2]
    assert len(ids) >= 200
    assert len(set(ids)) == len(ids)
    assert max(len(i) for i in ids) <= 36


def test_message_timeout_one_outstanding_call(csms, charger_factory):
    # The CSMS holds its answer: no second charger CALL before MessageTimeout,
    # while a CALL from the CSMS is still answered.
    charger_factory(config={"keys": {"MessageTimeout": 4}})
    csms.wait_for("StatusNotification", pred=lambda m: sn(m, 1), timeout=15)
    csms.set_handler("Heartbeat", lambda cp, p: NoReply())
    mark = csms.mark()
    csms.call("CP1", "TriggerMessage", {"requestedMessage": "Heartbeat"})
    hb = csms.wait_for("Heartbeat", after=mark)
    csms.call(
        "CP1", "TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 1}
    )
    r = csms.call("CP1", "GetConfiguration", {"key": ["MessageTimeout"]})
    assert r["configurationKey"][0]["value"] == "4"
    snm = csms.wait_for("StatusNotification", after=mark, timeout=8)
    assert snm.t - hb.t >= 3.8


def test_bench_cli(charger):
    import subprocess
    import sys
    from harness import ROOT
    tool = [sys.executable, ROOT + "/tools/bench", "--port", str(charger.bench_port)]
    p = subprocess.run(tool + ["state"], capture_output=True, text=True)
    assert p.returncode == 0 and '"connection": "online"' in p.stdout
    p = subprocess.run(tool + ["plug_in", "connector=1"], capture_output=True, text=True)
    assert p.returncode == 0
    charger.wait_state(lambda s: s["connectors"][0]["status"] == "Preparing")
    p = subprocess.run(tool + ["plug_in", "connector=7"], capture_output=True, text=True)
    assert p.returncode == 1 and "no connector" in p.stdout
