# Unit tests of the OCPP-J RPC layer (mpocpp/protocol/rpc.py) inside MicroPython:
# framing, correlation of the one outstanding CALL, MessageTimeout, CALLERROR
# codes for bad input, the Rejected-registration silence and follow-ups.
import asyncio
import json
from mpocpp.protocol import rpc, surrogates


class Wire:
    # Collects what the RPC layer sends.
    def __init__(self):
        self.out = []

    async def send(self, text):
        self.out.append(json.loads(text))


class Ids:
    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1
        return "id%d" % self.n


class Handlers:
    def __init__(self):
        self.calls = []
        self.after = []

    def __call__(self, action, payload):
        self.calls.append((action, payload))
        if action == "GetConfiguration":
            return {"configurationKey": []}
        if action == "Reset":
            return {"status": "Accepted"}, self.follow_up
        if action == "ClearCache":
            raise rpc.Reply("GenericError", "told to")
        if action == "UnlockConnector":
            return self._async_unlock()
        if action == "DataTransfer":
            return {"status": "Bogus"}  # an invalid answer of our own
        raise ValueError("boom")

    async def _async_unlock(self):
        await asyncio.sleep_ms(1)
        return {"status": "Unlocked"}

    def follow_up(self):
        self.after.append(True)


def make():
    w = Wire()
    h = Handlers()
    r = rpc.Rpc(h, Ids())
    r.attach(w.send)
    return r, w, h


async def test_call_result_correlated():
    r, w, h = make()
    t = asyncio.create_task(r.call("Heartbeat", {}, 5))
    await asyncio.sleep_ms(0)
    assert w.out == [[2, "id1", "Heartbeat", {}]]
    await r.on_message('[3,"other",{"currentTime":"2026-01-01T00:00:00Z"}]')  # unknown id: ignored
    await r.on_message('[3,"id1",{"currentTime":"2026-01-01T00:00:00Z"}]')
    assert await t == {"currentTime": "2026-01-01T00:00:00Z"}
    await r.on_message('[3,"id1",{"currentTime":"2026-01-01T00:00:00Z"}]')  # duplicate: ignored


async def test_call_error_and_timeout():
    r, w, h = make()
    t = asyncio.create_task(r.call("Heartbeat", {}, 5))
    await asyncio.sleep_ms(0)
    await r.on_message('[4,"id1","InternalError","no",{}]')
    try:
        await t
        raise AssertionError("no CallError")
    except rpc.CallError as e:
        assert e.code == "InternalError" and e.description == "no"
    try:
        await r.call("Heartbeat", {}, 0.05)
        raise AssertionError("no timeout")
    except rpc.CallTimeout:
        pass


async def test_invalid_answer_is_a_failure():
    r, w, h = make()
    t = asyncio.create_task(r.call("Heartbeat", {}, 5))
    await asyncio.sleep_ms(0)
    await r.on_message('[3,"id1",{"currentTime":5}]')
    try:
        await t
        raise AssertionError("accepted an invalid answer")
    except rpc.CallError as e:
        assert e.code == "TypeConstraintViolation"


async def test_one_outstanding_call():
    r, w, h = make()
    t1 = asyncio.create_task(r.call("Heartbeat", {}, 5))
    t2 = asyncio.create_task(r.call("Heartbeat", {}, 5))
    await asyncio.sleep_ms(5)
    assert len(w.out) == 1  # the second waits for the first answer
    # A CALL from the CSMS is served meanwhile.
    await r.on_message('[2,"c1","GetConfiguration",{}]')
    assert w.out[-1] == [3, "c1", {"configurationKey": []}]
    await r.on_message('[3,"id1",{"currentTime":"2026-01-01T00:00:00Z"}]')
    await t1
    await asyncio.sleep_ms(1)
    assert w.out[-1][:3] == [2, "id2", "Heartbeat"]
    await r.on_message('[3,"id2",{"currentTime":"2026-01-01T00:00:00Z"}]')
    await t2


async def test_offline_and_connection_lost():
    r, w, h = make()
    t = asyncio.create_task(r.call("Heartbeat", {}, 5))
    await asyncio.sleep_ms(0)
    r.detach()
    try:
        await t
        raise AssertionError("no Offline")
    except rpc.Offline:
        pass
    try:
        await r.call("Heartbeat", {}, 5)
        raise AssertionError("no Offline")
    except rpc.Offline:
        pass


async def test_error_codes_for_bad_calls():
    r, w, h = make()
    cases = (
        ('[2,"a","FooBar",{}]', "NotImplemented"),
        ('[2,"b","GetConfiguration",[]]', "FormationViolation"),
        ('[2,"c","GetConfiguration"]', "FormationViolation"),
        ('[2,"%s","GetConfiguration",{}]' % ("x" * 37), "FormationViolation"),
        ('[2,"d","ChangeAvailability",{"connectorId":1}]', "ProtocolError"),
        ('[2,"e","ChangeConfiguration",{"key":"K","value":60}]', "TypeConstraintViolation"),
        ('[2,"f","Reset",{"type":"Medium"}]', "PropertyConstraintViolation"),
        ('[2,"g","ClearCache",{}]', "GenericError"),      # handler's Reply
        ('[2,"h","RemoteStopTransaction",{"transactionId":1}]', "InternalError"),  # handler raised
        ('[2,"i","DataTransfer",{"vendorId":"v"}]', "InternalError"),  # our answer invalid
    )
    for frame, code in cases:
        await r.on_message(frame)
        last = w.out[-1]
        assert last[0] == 4 and last[2] == code, (frame, last)
        assert isinstance(last[3], str) and last[4] == {}


async def test_garbage_is_ignored():
    r, w, h = make()
    for frame in ('[2,"x1","Heartbeat"', '{"x":1}', '[9,"a"]', "[]", "null", '"s"', "12",
                  "[true]", '[2,5,"Reset",{}]', "\xff\xfe"):
        await r.on_message(frame)
    assert w.out == []


async def test_follow_up_after_answer_and_async_handler():
    r, w, h = make()
    await r.on_message('[2,"r1","Reset",{"type":"Soft"}]')
    assert w.out[-1] == [3, "r1", {"status": "Accepted"}]
    assert h.after == [True]
    await r.on_message('[2,"u1","UnlockConnector",{"connectorId":1}]')
    assert w.out[-1] == [3, "u1", {"status": "Unlocked"}]


async def test_silent_when_rejected():
    r, w, h = make()
    r.silent = True
    await r.on_message('[2,"s1","GetConfiguration",{}]')
    assert w.out == [] and h.calls == []
    r.silent = False
    await r.on_message('[2,"s2","GetConfiguration",{}]')
    assert w.out[-1][1] == "s2"


def test_surrogate_escapes_become_valid_utf8():
    # Found by the fuzzer: MicroPython's json made each \uD83D\uDE00 escape
    # a lone surrogate, the id came back invalid UTF-8 and the central system
    # closed the connection (1007). A pair is the character it encodes, a
    # lone surrogate U+FFFD; an escaped backslash is not an escape.
    u = surrogates.unpair
    assert u('"\\ud83d\\ude00"') == '"\U0001f600"'
    assert u('"\\uD83D\\uDE00x\\ud800"') == '"\U0001f600x\ufffd"'
    assert u('"\\udc00\\ud83d"') == '"\ufffd\ufffd"'
    assert u('"\\\\ud83d"') == '"\\\\ud83d"'
    assert u('"\\\\\\ud83d"') == '"\\\\\ufffd"'
    assert u('"\\u00e9\\uzzzz"') == '"\\u00e9\\uzzzz"'
    s = '"plain"'
    assert u(s) is s


async def test_surrogate_escaped_id_answered_in_utf8():
    r, w, h = make()
    await r.on_message('[2,"\\ud83d\\ude00\\udead","GetConfiguration",{}]')
    assert w.out == [[3, "\U0001f600\ufffd", {"configurationKey": []}]]
    assert w.out[0][1].encode() == b"\xf0\x9f\x98\x80\xef\xbf\xbd"


async def test_charge_point_action_not_supported_whatever_the_payload():
    # Found by the fuzzer: a CALL of an action only the charge point sends
    # (MeterValues) was checked against its schema and answered with a
    # constraint violation; it is NotSupported, as with a valid payload.
    w = Wire()
    h = Handlers()
    r = rpc.Rpc(h, Ids(), lambda a: a != "MeterValues")
    r.attach(w.send)
    await r.on_message('[2,"m1","MeterValues",{"connectorId":1,"meterValue":[]}]')
    await r.on_message('[2,"m2","MeterValues",{}]')
    assert [m[2] for m in w.out] == ["NotSupported", "NotSupported"]
    assert h.calls == []


async def test_validator_loaded_for_messages_and_released_when_idle():
    # validate.py and its schema index leave the heap once no message has
    # been checked for idle_ms; the next message loads them again.
    import sys
    import time
    w = Wire()
    r = rpc.Rpc(Handlers(), Ids(), idle_ms=1000)
    r.attach(w.send)
    r.tick(time.ticks_ms())
    sys.modules.pop("mpocpp.protocol.validate", None)
    await r.on_message('[2,"a","GetConfiguration",{}]')
    assert "mpocpp.protocol.validate" in sys.modules
    t0 = time.ticks_ms()
    r.tick(time.ticks_add(t0, 900))
    assert "mpocpp.protocol.validate" in sys.modules  # still in use
    r.tick(time.ticks_add(t0, 1100))
    assert "mpocpp.protocol.validate" not in sys.modules
    await r.on_message('[2,"b","GetConfiguration",{"key":5}]')  # checked again: invalid
    assert w.out[-1][0] == 4 and w.out[-1][2] == "TypeConstraintViolation", w.out
    assert "mpocpp.protocol.validate" in sys.modules
    t = asyncio.create_task(r.call("Heartbeat", {}, 5))
    await asyncio.sleep_ms(0)
    r.tick(time.ticks_add(time.ticks_ms(), 1100))  # released while the CALL waits
    await r.on_message('[3,"id1",{"currentTime":"2026-01-01T00:00:00Z"}]')
    assert await t == {"currentTime": "2026-01-01T00:00:00Z"}  # its answer checked
    assert "mpocpp.util.timeparse" in sys.modules  # its date too
    r.tick(time.ticks_add(time.ticks_ms(), 1100))
    assert "mpocpp.util.timeparse" not in sys.modules  # with the validator


async def test_an_answer_without_fields_needs_no_validator():
    # MeterValues.conf and the notifications' answers are empty objects: any
    # object is valid, so a transaction's MeterValues do not load the
    # validator; an answer with fields still does.
    import sys
    name = "mpocpp.protocol.validate"
    r, w, h = make()
    sys.modules.pop(name, None)
    for i, action in enumerate(("MeterValues", "StatusNotification"), 1):
        t = asyncio.create_task(r.call(action, {}, 5))
        await asyncio.sleep_ms(0)
        await r.on_message('[3,"id%d",{"unknown":1}]' % i)
        assert await t == {"unknown": 1}
    assert name not in sys.modules
    t = asyncio.create_task(r.call("MeterValues", {}, 5))
    await asyncio.sleep_ms(0)
    await r.on_message('[3,"id3",[]]')  # not an object: still refused
    try:
        await t
        raise AssertionError("accepted a list")
    except rpc.CallError as e:
        assert e.code == "FormationViolation"
    t = asyncio.create_task(r.call("Heartbeat", {}, 5))
    await asyncio.sleep_ms(0)
    await r.on_message('[3,"id4",{"currentTime":"2026-01-01T00:00:00Z"}]')
    await t
    assert name in sys.modules


async def test_no_heap_for_the_validator():
    # Out of heap to load the validator: a CALL not yet handled is answered
    # InternalError; a handler that has acted has its answer sent unchecked.
    r, w, h = make()
    calls = []

    def validator():
        calls.append(1)
        if len(calls) in (1, 3):
            raise MemoryError("no heap")
        return rpc.modules.load("mpocpp.protocol.validate")

    r._validator = validator  # noqa: SLF001
    await r.on_message('[2,"a","Reset",{"type":"Hard"}]')
    assert w.out[-1] == [4, "a", "InternalError", "no memory to check it", {}], w.out
    assert h.calls == []  # not handled
    await r.on_message('[2,"b","Reset",{"type":"Hard"}]')  # checked, handled, answer unchecked
    assert h.calls == [("Reset", {"type": "Hard"})]
    assert w.out[-1] == [3, "b", {"status": "Accepted"}], w.out
    assert h.after == [True]
