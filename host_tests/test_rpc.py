"""OCPP-J framing and bad input (checklist §1, scenarios 10-16): every bad
input gets a clear answer or is logged and survived; the connection, the
running transaction and the queue stay intact."""
import json
import time

import pytest

from csms_lib import CallErrorResult


def answer(csms, mark, mid, timeout=5):
    return csms.wait_for(None, pred=lambda m: m.id == mid and m.type in (3, 4),
                         after=mark, timeout=timeout)


def raw_call(csms, frame, mid):
    mark = csms.mark()
    csms.send_raw("CP1", frame)
    return answer(csms, mark, mid)


def alive(csms):
    r = csms.call("CP1", "GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert r["configurationKey"][0]["key"] == "HeartbeatInterval"


def expect_error(csms, action, payload, codes):
    with pytest.raises(CallErrorResult) as e:
        csms.call("CP1", action, payload, validate_outgoing=False)
    assert e.value.code in codes, (e.value.code, e.value.description)
    return e.value


def test_unknown_action_not_implemented(csms, charger):
    m = raw_call(csms, '[2,"a","FooBar",{}]', "a")
    assert m.type == 4
    assert json.loads(m.raw)[2] == "NotImplemented"
    assert json.loads(m.raw)[4] == {}
    alive(csms)


def _transaction(csms, charger):
    charger.ok("plug_in", connector=1)
    charger.ok("swipe", idTag="TAGR")
    csms.wait_for("StartTransaction", timeout=10)
    st = charger.wait_state(lambda s: (s["connectors"][0]["transaction"] or {}).get("id", 0) > 0,
                            what="the transaction's id")
    return st["connectors"][0]["transaction"]


def _nothing_answered(csms, mark):
    # No CALLRESULT or CALLERROR went out for the garbage (it has no id to answer).
    return [m for m in csms.messages[mark:] if m.direction == "in" and m.type in (3, 4)]


@pytest.mark.parametrize("frame, logged", [
    ('[2,"x1","Heartbeat"', "not JSON, ignored"),                 # truncated JSON
    ('{"x":1}', "not an OCPP-J frame"),                            # not an array
    ('[9,"a"]', "unknown message type 9"),
    ('[]', "not an OCPP-J frame"), ('[2]', "CALL without an id"),
    ('null', "not an OCPP-J frame"), ('"text"', "not an OCPP-J frame"),
    ('12', "not an OCPP-J frame"),
    ('[3,"nobody-asked",{}]', "answer to unknown id"),
    ('[4,"nobody-asked","GenericError","",{}]', "answer to unknown id"),
])
def test_garbage_is_logged_and_changes_nothing(csms, charger, frame, logged):
    tx = _transaction(csms, charger)
    conns = csms.connections("CP1")
    mark = csms.mark()
    log_at = len(charger.log_text())
    csms.send_raw("CP1", frame)
    charger.wait_log(logged, after=log_at)
    assert _nothing_answered(csms, mark) == []
    alive(csms)
    assert csms.connections("CP1") == conns  # the same connection
    assert charger.state()["connectors"][0]["transaction"] == tx  # the session goes on
    csms.violations.clear()  # the bench CSMS flags its own garbage


def test_binary_frame_skipped(csms, charger):
    # (invalid UTF-8 inside a text frame is covered by mp/mpt_ws.py: the
    # bench CSMS cannot send one)
    tx = _transaction(csms, charger)
    log_at = len(charger.log_text())
    mark = csms.mark()
    csms.send_raw("CP1", b"\x00\x01\x02binary")
    charger.wait_log("binary message skipped", after=log_at)
    assert _nothing_answered(csms, mark) == []
    csms.send_raw("CP1", '[2,"u1","GetConfiguration",{}]')
    assert answer(csms, mark, "u1").type == 3  # the next text frame is answered
    assert charger.state()["connectors"][0]["transaction"] == tx
    csms.violations.clear()


def test_long_id_formation_violation(csms, charger):
    mid = "x" * 40
    m = raw_call(csms, '[2,"%s","GetConfiguration",{}]' % mid, mid)
    assert json.loads(m.raw)[2] == "FormationViolation"
    csms.violations.clear()
    alive(csms)


def test_payload_not_object_formation_violation(csms, charger):
    m = raw_call(csms, '[2,"p1","GetConfiguration",[]]', "p1")
    assert json.loads(m.raw)[2] == "FormationViolation"
    csms.violations.clear()


def test_missing_field(csms, charger):
    expect_error(csms, "ChangeAvailability", {"connectorId": 1},
                 ("ProtocolError", "OccurenceConstraintViolation", "FormationViolation"))
    assert charger.connector(1)["status"] == "Available"
    assert charger.connector(1)["operative"] is True


def test_type_constraint(csms, charger):
    expect_error(csms, "ChangeConfiguration", {"key": "HeartbeatInterval", "value": 60},
                 ("TypeConstraintViolation",))
    r = csms.call("CP1", "GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert r["configurationKey"][0]["value"] != "60"


def test_property_constraint(csms, charger):
    expect_error(csms, "Reset", {"type": "Medium"}, ("PropertyConstraintViolation",))
    expect_error(csms, "GetCompositeSchedule",
                 {"connectorId": 1, "duration": 60, "chargingRateUnit": "X"},
                 ("PropertyConstraintViolation",))
    alive(csms)


def test_too_many_keys_occurence_violation(csms, charger):
    r = csms.call("CP1", "GetConfiguration", {"key": ["GetConfigurationMaxKeys"]})
    n = int(r["configurationKey"][0]["value"])
    expect_error(csms, "GetConfiguration", {"key": ["K%d" % i for i in range(n + 1)]},
                 ("OccurenceConstraintViolation",))


def test_oversize_message_closes_1009_and_keeps_going(csms, charger):
    big = '[2,"big","DataTransfer",{"vendorId":"x","data":"%s"}]' % ("A" * 65536)
    conns = csms.connections("CP1")
    csms.send_raw("CP1", big)
    csms.wait_connected("CP1", timeout=10, count=conns + 1)
    alive(csms)
    assert "1009" in charger.log_text() or "too big" in charger.log_text()
    assert csms.calls("BootNotification") and len(csms.calls("BootNotification")) == 1


def test_duplicate_answer_ignored(csms, charger):
    # A second CALLRESULT to an id already answered is ignored.
    mark = csms.mark()
    csms.call("CP1", "TriggerMessage", {"requestedMessage": "Heartbeat"})
    hb = csms.wait_for("Heartbeat", after=mark)
    time.sleep(0.2)
    csms.send_raw("CP1", '[3,"%s",{"currentTime":"2026-01-01T00:00:00Z"}]' % hb.id)
    time.sleep(0.2)
    alive(csms)
    csms.violations.clear()


def test_data_transfer_unknown_vendor(csms, charger):
    r = csms.call(
        "CP1", "DataTransfer", {"vendorId": "com.example", "messageId": "x", "data": "y"}
    )
    assert r == {"status": "UnknownVendorId"}


def test_trigger_unknown_message_not_implemented(csms, charger):
    r = csms.call("CP1", "TriggerMessage", {"requestedMessage": "StartTransaction"},
                  validate_outgoing=False)
    assert r == {"status": "NotImplemented"}
    r = csms.call("CP1", "TriggerMessage", {"requestedMessage": "StatusNotification",
                                            "connectorId": 2})
    assert r == {"status": "Rejected"}  # TC_055: no connector 2


def test_trigger_meter_values_connector_0(csms, charger):
    mark = csms.mark()
    assert csms.call("CP1", "TriggerMessage", {"requestedMessage": "MeterValues",
                                               "connectorId": 0})["status"] == "Accepted"
    m = csms.wait_for("MeterValues", after=mark, timeout=5)
    assert m.payload["connectorId"] == 0
    assert m.payload["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"


def test_trigger_answer_goes_first(csms, charger):
    for what, extra in (("Heartbeat", {}), ("StatusNotification", {"connectorId": 1})):
        mark = csms.mark()
        csms.call("CP1", "TriggerMessage", dict(extra, requestedMessage=what))
        msg = csms.wait_for(what, after=mark, timeout=5)
        conf = [m for m in csms.messages[mark:] if m.type == 3 and m.action == "TriggerMessage"][0]
        assert csms.messages.index(conf) < csms.messages.index(msg)
        assert conf.t <= msg.t
