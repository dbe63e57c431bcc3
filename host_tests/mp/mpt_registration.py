# Registration (protocol/registration.py): the BootNotification payload, what
# each answer decides (interval, HeartbeatInterval, silence, the clock with its
# fraction of a second), and Heartbeat, against a fake call() and the real
# Config over a temporary directory.
import asyncio

from fakes import T0, config, init_clock

from mpocpp.protocol.registration import Registration
from mpocpp.protocol.rpc import CallError, CallTimeout
from mpocpp.util import clock


class Rpc:
    def __init__(self):
        self.silent = False


class Call:
    # call(action, payload, on_result) as the sender hands it in: records the
    # CALL, lets the registration read the answer first, then returns it.
    def __init__(self, answer=None, error=None):
        self.answer = answer
        self.error = error
        self.calls = []

    async def __call__(self, action, payload, on_result=None):
        self.calls.append((action, payload))
        if self.error:
            raise self.error
        if on_result:
            on_result(self.answer)
        return self.answer


def _boot(status, interval=300, t="2026-01-01T00:10:00Z"):
    return {"status": status, "interval": interval, "currentTime": t}


def _reg(trusted=False, fw="1.2.3"):
    init_clock(T0 - 86400)
    cfg = config()
    rpc = Rpc()
    return Registration(cfg, rpc, trusted, fw), cfg, rpc


def test_payload_identity_and_firmware():
    reg, cfg, _ = _reg()
    p = reg.payload()
    assert p["chargePointVendor"] == "OpenCharge"
    assert p["chargePointModel"] == "MPY-AC22"
    assert p["chargePointSerialNumber"] == "SIM-0001"
    assert p["firmwareVersion"] == "1.2.3"
    cfg.identity = {"chargePointVendor": "", "iccid": ""}
    p = Registration(cfg, Rpc(), False).payload()
    # Empty fields are left out; the two required ones are never missing.
    assert p == {"chargePointVendor": "Unknown", "chargePointModel": "Unknown"}


async def test_accepted_sets_interval_heartbeat_and_clock():
    reg, cfg, rpc = _reg()
    assert reg.status is None and not reg.accepted
    call = Call(_boot("Accepted", 120))
    assert await reg.boot(call) == "Accepted"
    assert call.calls[0][0] == "BootNotification"
    assert reg.interval == 120 and cfg.get("HeartbeatInterval") == 120
    assert clock.now() == T0 + 600
    assert not reg.accepted  # registered, but the link is not up yet
    reg.online = True
    assert reg.accepted
    assert not rpc.silent


async def test_pending_keeps_heartbeat_interval():
    reg, cfg, _ = _reg()
    before = cfg.get("HeartbeatInterval")
    reg.online = True
    assert await reg.boot(Call(_boot("Pending", 17))) == "Pending"
    assert reg.interval == 17  # the Boot retry interval, not the heartbeat's
    assert cfg.get("HeartbeatInterval") == before
    assert not reg.accepted


async def test_rejected_is_silent_until_ended():
    reg, _, rpc = _reg()
    assert await reg.boot(Call(_boot("Rejected", 60))) == "Rejected"
    assert rpc.silent
    reg.end_silence()
    assert not rpc.silent
    # The next answer, Accepted, ends silence as it is read.
    rpc.silent = True
    await reg.boot(Call(_boot("Accepted")))
    assert not rpc.silent


async def test_failed_boot_changes_nothing():
    reg, cfg, _ = _reg()
    reg.status = "Pending"
    for err in (CallError("InternalError", "boom"), CallTimeout()):
        assert await reg.boot(Call(error=err)) is None
        assert reg.status == "Pending"
    assert clock.now() < T0  # the clock was not touched


async def test_clock_keeps_the_fraction_of_a_second():
    reg, _, _ = _reg()
    await reg.boot(Call(_boot("Accepted", 300, "2026-01-01T00:00:00.900Z")))
    assert clock.now() == T0
    await asyncio.sleep_ms(150)
    # 0.9 s + 0.15 s: the next second has begun (without the fraction it would
    # take a whole second).
    assert clock.now() >= T0 + 1


async def test_heartbeat_sets_clock_and_survives_errors():
    reg, _, _ = _reg()
    call = Call({"currentTime": "2026-01-01T01:00:00Z"})
    await reg.heartbeat(call)
    assert call.calls == [("Heartbeat", {})]
    assert clock.now() == T0 + 3600
    await reg.heartbeat(Call(error=CallTimeout()))
    assert clock.now() >= T0 + 3600


async def test_bad_or_missing_time_and_trusted_rtc_leave_the_clock():
    reg, _, _ = _reg()
    t = clock.now()
    await reg.heartbeat(Call({"currentTime": "yesterday"}))
    await reg.heartbeat(Call({}))
    assert clock.now() - t <= 1
    reg, _, _ = _reg(trusted=True)
    t = clock.now()
    await reg.boot(Call(_boot("Accepted")))
    assert clock.now() - t <= 1  # the board's RTC is set by other means


async def test_clock_jump_reported():
    # SettingSystemTime: a change of 60 s or more is reported, a small one not.
    init_clock(T0)
    jumps = []
    reg = Registration(config(), Rpc(), False, None, lambda a, b: jumps.append((a, b)))
    await reg.heartbeat(Call({"currentTime": "2026-01-01T00:00:59Z"}))
    assert jumps == [] and clock.now() == T0 + 59
    await reg.heartbeat(Call({"currentTime": "2026-01-01T01:00:00Z"}))
    assert jumps == [(T0 + 59, T0 + 3600)]
    await reg.heartbeat(Call({"currentTime": "2025-12-31T23:00:00Z"}))
    assert jumps[1] == (T0 + 3600, T0 - 3600)
