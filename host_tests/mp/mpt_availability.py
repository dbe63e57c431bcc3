# ChangeAvailability (model/availability.py): Accepted / Scheduled, connector
# 0, applied at the transaction's end, kept in flash across a restart.
from fakes import Rig

from mpocpp.model.availability import Availability


def test_inoperative_and_back():
    r = Rig(n=2)
    av = r.availability
    assert av.change(2, False) == "Accepted"
    assert r.con(2).status == "Unavailable" and r.con(1).status == "Available"
    assert av.change(2, False) == "Accepted"  # already: still Accepted
    assert av.change(2, True) == "Accepted" and r.con(2).status == "Available"
    assert av.change(3, False) == "Rejected" and av.change(-1, True) == "Rejected"


def test_connector_zero_takes_all():
    r = Rig(n=2)
    assert r.availability.change(0, False) == "Accepted"
    assert [c.status for c in r.cons] == ["Unavailable"] * 3
    assert r.availability.change(0, True) == "Accepted"
    assert [c.status for c in r.cons] == ["Available"] * 3


async def test_scheduled_during_a_transaction():
    r = Rig(n=2)
    c = await r.start("TAG1", cid=1)
    assert r.availability.change(1, False) == "Scheduled"
    assert c.status == "Charging" and c.operative
    assert r.availability.change(0, False) == "Scheduled"  # connector 0 waits for all
    assert r.con(2).status == "Unavailable"  # idle: at once
    r.sessions.stop(c, "Local")
    assert not c.operative and c.scheduled is None
    assert not r.cons[0].operative


async def test_kept_in_flash_scheduled_included():
    r = Rig(n=2)
    c = await r.start("TAG1", cid=1)
    r.availability.change(2, False)
    assert r.availability.change(1, False) == "Scheduled"
    # a restart: new objects over the same flash directory
    r2 = Rig(n=2, d=r.dir)
    Availability(r2.dir, r2.cons).load()
    assert not r2.con(2).operative
    assert not r2.con(1).operative  # the scheduled change applies after a reboot
    assert r2.cons[0].operative
    assert c.operative  # the running one is untouched in the old run


async def test_scheduled_while_preparing_until_available():
    # §4.9 has no Preparing -> Unavailable: Scheduled, applied at Available.
    r = Rig(n=2)
    av = r.availability
    r.ev("B", 1)  # plugged, no card yet
    assert r.con(1).status == "Preparing"
    assert av.change(1, False) == "Scheduled"
    assert r.con(1).status == "Preparing" and r.con(1).operative
    assert av.change(0, False) == "Scheduled"  # connector 0: one is Preparing
    assert r.con(2).status == "Unavailable" and r.cons[0].operative
    r.ev("A", 1)  # unplugged: Available, then the change applies
    assert r.statuses(1)[-2:] == ["Available", "Unavailable"]
    assert not r.con(1).operative and not r.cons[0].operative
    assert r.cons[0].status == "Unavailable"


async def test_scheduled_while_preparing_for_a_card():
    r = Rig(n=1, answers={"T1": {"status": "Accepted"}})
    await r.swipe("T1")  # authorized, waiting for the plug
    assert r.con(1).status == "Preparing"
    assert r.availability.change(1, False) == "Scheduled"
    assert r.availability.change(1, True) == "Accepted"  # cancels the scheduled change
    assert r.con(1).scheduled is None
    assert r.availability.change(1, False) == "Scheduled"
    r.ev("B", 1)  # the session starts: now the transaction's end decides
    c = r.con(1)
    assert c.tx is not None and c.operative
    r.sessions.stop(c, "Local")
    assert not c.operative  # Finishing (cable in) is not Preparing: applies
    assert r.statuses(1)[-2:] == ["Finishing", "Unavailable"]
