"""Security events (whitepaper A04): the critical ones reach the CSMS as
SecurityEventNotification through the persistent queue (across an outage
and reboots, in order); the others only go to the security log."""
import datetime
import time

from csms_lib import CallErrorReply
from test_security import KEY, KEY_HEX, booted, change, sp1_config

SEN = "SecurityEventNotification"


def events(csms, after=0):
    return [(m.payload["type"], m.payload.get("techInfo"))
            for m in csms.calls(SEN, after=after)]


def wait_event(csms, kind, after=0, timeout=15):
    return csms.wait_for(SEN, pred=lambda m: m.payload["type"] == kind, after=after,
                         timeout=timeout)


def test_startup_and_reset(csms, charger_factory):
    ch = charger_factory()
    booted(csms)
    m = wait_event(csms, "StartupOfTheDevice")
    assert m.payload["techInfo"] == "boot 1"
    datetime.datetime.fromisoformat(m.payload["timestamp"].replace("Z", "+00:00"))
    mark = csms.mark()
    assert csms.call("CP1", "Reset", {"type": "Soft"})["status"] == "Accepted"
    wait_event(csms, "StartupOfTheDevice", after=mark, timeout=30)
    got = events(csms, after=mark)
    assert got[:2] == [("ResetOrReboot", "Reset Soft"), ("StartupOfTheDevice", "boot 2")]
    # not critical: logged, not sent
    assert change(csms, "CpoName", "Example") == "Accepted"
    assert "SettingSystemTime" not in ch.log_text()  # the clock was right


def test_events_survive_an_outage_in_order(csms, charger_factory):
    # The CSMS refuses the charger (wrong password) while it reboots twice:
    # the StartupOfTheDevice events queue in flash and arrive in order once
    # the CSMS lets it in.
    csms.passwords = {"CP1": KEY}
    ch = charger_factory(config=sp1_config(KEY_HEX))
    booted(csms)
    wait_event(csms, "StartupOfTheDevice")
    csms.passwords = {"CP1": b"not-the-key-of-the-charger"}
    ch.restart()
    ch.wait_log("StartupOfTheDevice: boot 2", timeout=15)
    time.sleep(0.5)  # a connect refused
    ch.restart()
    ch.wait_log("StartupOfTheDevice: boot 3", timeout=15)
    assert [e for e in events(csms) if e[0] == "StartupOfTheDevice"] == \
        [("StartupOfTheDevice", "boot 1")]
    mark = csms.mark()
    csms.passwords = {"CP1": KEY}
    wait_event(csms, "StartupOfTheDevice", after=mark, timeout=20)
    deadline = time.time() + 15
    while ("StartupOfTheDevice", "boot 3") not in events(csms, after=mark) \
            and time.time() < deadline:
        time.sleep(0.2)
    # at least once: boot 1's event may come again when the charger was cut
    # after the CSMS had it and before it read the answer
    got = events(csms, after=mark)
    assert got[-2:] == [("StartupOfTheDevice", "boot 2"), ("StartupOfTheDevice", "boot 3")]
    assert set(got[:-2]) <= {("StartupOfTheDevice", "boot 1")}
    assert len(csms.calls("BootNotification", after=mark)) == 1


def test_unanswered_event_is_retried(csms, charger_factory):
    # A CALLERROR counts as a failed attempt: sent again after the retry
    # interval, as a transaction message is.
    answers = []

    def first_fails(cp_id, payload):
        answers.append(payload["type"])
        if len(answers) == 1:
            return CallErrorReply("InternalError", "try again")
        return {}
    csms.set_handler(SEN, first_fails)
    charger_factory()
    booted(csms)
    deadline = time.time() + 15
    while len(answers) < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert answers[:2] == ["StartupOfTheDevice", "StartupOfTheDevice"]


def test_setting_system_time(csms, charger_factory):
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2)

    def boot(cp_id, payload):
        return {"status": "Accepted", "interval": 300,
                "currentTime": later.strftime("%Y-%m-%dT%H:%M:%SZ")}
    csms.set_handler("BootNotification", boot)
    charger_factory()
    m = wait_event(csms, "SettingSystemTime")
    assert m.payload["techInfo"].endswith("-> " + later.strftime("%Y-%m-%dT%H:%M:%SZ"))


def test_security_reconfiguration_logged_not_sent(csms, charger_factory):
    ch = charger_factory()
    booted(csms)
    wait_event(csms, "StartupOfTheDevice")
    assert change(csms, "AuthorizationKey", KEY_HEX) == "Accepted"
    ch.wait_log("ReconfigurationOfSecurityParameters: AuthorizationKey")
    assert KEY_HEX not in ch.log_text()
    time.sleep(0.5)
    assert [e[0] for e in events(csms)] == ["StartupOfTheDevice"]


def test_invalid_central_system_certificate(charger_factory):

    from certs import pki
    from csms_lib import BenchCSMS
    from test_security import _pem
    p = pki()
    with BenchCSMS(ssl_context=p.server_context()) as c:
        url = c.url.replace("127.0.0.1", "localhost")
        ch = charger_factory(url=url, config={"security": {"SecurityProfile": 2,
                                                           "AuthorizationKey": KEY_HEX,
                                                           "caCert": _pem(p.other_ca_der)},
                                              "settings": {"csmsUrl": url}})
        ch.wait_log("InvalidCentralSystemCertificate", timeout=15)
        time.sleep(2)  # several failed attempts, one event
        assert ch.log_text().count("I security: InvalidCentralSystemCertificate") == 1


def test_invalid_tls_version(charger_factory):
    # A CSMS that offers TLS 1.1 at most: mbedTLS names the protocol
    # version, InvalidTLSVersion (not critical) once in the security log.
    import ssl
    import warnings
    from certs import pki
    from csms_lib import BenchCSMS
    from test_security import _pem
    p = pki()
    ctx = p.server_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with BenchCSMS(ssl_context=ctx) as c:
        url = c.url.replace("127.0.0.1", "localhost")
        ch = charger_factory(url=url, config={"security": {"SecurityProfile": 2,
                                                           "AuthorizationKey": KEY_HEX,
                                                           "caCert": _pem(p.ca_der)},
                                              "settings": {"csmsUrl": url}})
        ch.wait_log("InvalidTLSVersion", timeout=15)
        deadline = time.time() + 20
        while ch.log_text().count("connect failed") < 2:
            assert time.time() < deadline
            time.sleep(0.2)
        assert ch.log_text().count("I security: InvalidTLSVersion") == 1
        assert "InvalidCentralSystemCertificate" not in ch.log_text()


def test_invalid_messages_logged_with_a_rate_limit(csms, charger_factory):
    ch = charger_factory()
    booted(csms)
    csms.send_raw("CP1", '[2,"x1","Reset",{"type":"Sideways"}]')
    ch.wait_log("InvalidMessages: PropertyConstraintViolation")
    csms.send_raw("CP1", "this is not JSON")
    csms.send_raw("CP1", '[7,"x2"]')
    r = csms.call("CP1", "GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert r["configurationKey"][0]["value"] == "300"
    assert ch.log_text().count("I security: InvalidMessages") == 1  # then counted
    assert not [m for m in csms.calls(SEN) if m.payload["type"] == "InvalidMessages"]


def test_tamper_switch_sends_an_event_per_opening(csms, charger_factory):
    # The board's enclosure switch (the unix board's: bench op tamper):
    # TamperDetectionActivated is critical, sent once per opening.
    ch = charger_factory()
    booted(csms)
    wait_event(csms, "StartupOfTheDevice")
    mark = csms.mark()
    ch.ok("tamper", open=True)
    m = wait_event(csms, "TamperDetectionActivated", after=mark)
    assert m.payload["techInfo"] == "enclosure opened"
    time.sleep(0.5)  # still open: no second event
    ch.ok("tamper", open=False)
    time.sleep(0.3)  # polled every 50 ms: a shorter blink goes unseen (a bounce)
    ch.ok("tamper", open=True)
    deadline = time.time() + 15
    while len([e for e in events(csms, after=mark) if e[0] == "TamperDetectionActivated"]) < 2:
        assert time.time() < deadline, events(csms, after=mark)
        time.sleep(0.1)
    assert ch.log_text().count("I security: TamperDetectionActivated") == 2
    bad = ch.op("tamper", open="yes")
    assert not bad["ok"] and "true or false" in bad["error"]


def test_replayed_call_id_logged_and_answered(csms, charger_factory):
    # A CALL repeating the id of one answered on the same connection is not
    # a resend after a network problem (TCP delivered the answer):
    # AttemptedReplayAttacks in the security log (not critical), and the
    # CALL answered as before. A new connection starts afresh.
    ch = charger_factory()
    booted(csms)
    wait_event(csms, "StartupOfTheDevice")
    call = '[2,"replay-1","GetConfiguration",{"key":["HeartbeatInterval"]}]'
    csms.send_raw("CP1", call)
    csms.send_raw("CP1", call)
    ch.wait_log("AttemptedReplayAttacks: id replay-1 again")
    r = csms.call("CP1", "GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert r["configurationKey"][0]["value"] == "300"
    # both raw CALLs answered (the bench CSMS counts the second answer)
    assert csms.violations == ["CP1 second answer to GetConfiguration 'replay-1'"]
    csms.violations.clear()
    assert not [m for m in csms.calls(SEN) if m.payload["type"] == "AttemptedReplayAttacks"]
    assert ch.log_text().count("I security: AttemptedReplayAttacks") == 1


def test_refused_credentials_logged_once(csms, charger_factory):
    # The CSMS answers the charger's Basic auth with HTTP 401:
    # FailedToAuthenticateAtCentralSystem (not critical) once until a
    # connect works, then again at the next refusal.
    csms.passwords = {"CP1": b"not-the-key-of-the-charger"}
    ch = charger_factory(config=sp1_config(KEY_HEX))
    ch.wait_log("FailedToAuthenticateAtCentralSystem: HTTP 401", timeout=15)
    deadline = time.time() + 20
    while ch.log_text().count("connect failed") < 2:
        assert time.time() < deadline
        time.sleep(0.2)
    assert ch.log_text().count("I security: FailedToAuthenticateAtCentralSystem") == 1
    csms.passwords = {"CP1": KEY}
    booted(csms)
    assert not [m for m in csms.calls(SEN)
                if m.payload["type"] == "FailedToAuthenticateAtCentralSystem"]
