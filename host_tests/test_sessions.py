"""Charging sessions end to end (checklist §2 Core, §2.2, §2.3, scenarios
21-29): the firmware in micropython, driven through the bench interface,
against the bench CSMS; every scenario with one connector and with two (then
on connector 2, while connector 1 must stay untouched).

The helpers here are shared by test_sessions_remote.py and test_sessions_hw.py."""
import time

import pytest

# the sessions also run on the 32-bit unix port (board-sized objects)
pytestmark = pytest.mark.unix32

BOTH = pytest.mark.parametrize("n", [1, 2], ids=["1conn", "2conn"])


# --- every test: the StatusNotifications follow the transition table ----------

_CODE = {"Available": "A", "Preparing": "B", "Charging": "C", "SuspendedEV": "D",
         "SuspendedEVSE": "E", "Finishing": "F", "Reserved": "G", "Unavailable": "H",
         "Faulted": "I"}
_ALLOWED = {"A": "BCDEGHI", "B": "ACDEFI", "C": "ADEFHI", "D": "ACEFHI", "E": "ACDFHI",
            "F": "ABHI", "G": "ABHI", "H": "ABCDEI", "I": "ABCDEFGH"}


def transition_errors(messages):
    """Reported status changes outside checklist §2.2, per connector; a new
    BootNotification starts afresh (the state before a reboot is gone)."""
    last = {}
    bad = []
    for m in messages:
        if m.direction != "in" or m.type != 2:
            continue
        if m.action == "BootNotification":
            last = {}
        elif m.action == "StatusNotification":
            cid, st = m.payload["connectorId"], m.payload["status"]
            if cid == 0 and st not in ("Available", "Unavailable", "Faulted"):
                bad.append("connector 0: %s" % st)
            old = last.get(cid)
            if old is not None and old != st and _CODE[st] not in _ALLOWED[_CODE[old]]:
                bad.append("connector %d: %s -> %s" % (cid, old, st))
            last[cid] = st
    return bad


@pytest.fixture(autouse=True)
def transitions_checked(csms):
    yield
    bad = transition_errors(csms.messages)
    assert not bad, "transitions outside the table: %s" % bad


# --- helpers ---------------------------------------------------------------

def boot(factory, csms, n=1, keys=None, **kw):
    """A booted charger with n connectors; returns it once every connector's
    first StatusNotification is in."""
    ch = factory(connectors=n, config={"keys": keys or {}}, **kw)
    for cid in range(n + 1):
        csms.wait_for("StatusNotification", timeout=15,
                      pred=lambda m, c=cid: m.payload["connectorId"] == c)
    return ch


def is_sn(cid, status=None, error=None):
    def pred(m):
        p = m.payload
        return p["connectorId"] == cid and (status is None or p["status"] == status) \
            and (error is None or p["errorCode"] == error)
    return pred


def wait_sn(csms, cid, status, after=0, timeout=10, error=None):
    return csms.wait_for("StatusNotification", pred=is_sn(cid, status, error), after=after,
                         timeout=timeout)


def sns(csms, cid, after=0):
    return [m.payload["status"] for m in csms.calls("StatusNotification", after=after)
            if m.payload["connectorId"] == cid]


def conf(csms, action, after=0, timeout=10):
    """The CSMS's answer to the charger's CALL `action`."""
    return csms.wait_for(action, direction="out", after=after, timeout=timeout)


def start(ch, csms, cid=1, tag="TAG1", authorize=True):
    """Plug, swipe, and wait until charging; returns the transactionId."""
    m = csms.mark()
    ch.ok("plug_in", connector=cid)
    wait_sn(csms, cid, "Preparing", m)
    ch.ok("swipe", idTag=tag)
    if authorize:
        csms.wait_for("Authorize", after=m, pred=lambda x: x.payload["idTag"] == tag)
    st = csms.wait_for("StartTransaction", after=m, pred=lambda x: x.payload["idTag"] == tag)
    assert st.payload["connectorId"] == cid
    wait_sn(csms, cid, "Charging", m)
    txid = csms.wait_for("StartTransaction", direction="out", after=m,
                         pred=lambda x: x.id == st.id).payload["transactionId"]
    ch.wait_state(lambda s: s["connectors"][cid - 1]["transaction"] is not None and
                  s["connectors"][cid - 1]["transaction"]["id"] == txid and
                  s["connectors"][cid - 1]["locked"], what="transaction id and cable locked")
    return txid


def wait_stop(csms, after, txid=None, timeout=10):
    return csms.wait_for("StopTransaction", after=after, timeout=timeout,
                         pred=lambda x: txid is None or x.payload["transactionId"] == txid)


def assert_idle(ch, cid):
    c = ch.connector(cid)
    assert c["status"] == "Available" and c["transaction"] is None and not c["relay"], c


def no_call(csms, action, after, wait=0.0):
    if wait:
        time.sleep(wait)
    got = csms.calls(action, after=after)
    assert got == [], [m.payload for m in got]


# --- scenario 21: plug, swipe, charge ---------------------------------------

@BOTH
def test_21_plug_swipe_authorize_start_charging(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    cid = n
    m = csms.mark()
    txid = start(ch, csms, cid)
    # Authorize went out before StartTransaction, and Preparing before Charging.
    acts = [x.action for x in csms.messages[m:] if x.direction == "in" and x.type == 2
            and x.action in ("Authorize", "StartTransaction")]
    assert acts == ["Authorize", "StartTransaction"]
    st = csms.calls("StartTransaction", after=m)[0].payload
    assert isinstance(st["meterStart"], int) and st["meterStart"] >= 0
    assert "reservationId" not in st
    assert sns(csms, cid, m)[:2] == ["Preparing", "Charging"]
    c = ch.connector(cid)
    assert c["relay"] and c["locked"] and c["pilot"] == "C" and c["offered_amps"] > 0
    assert c["transaction"]["idTag"] == "TAG1" and c["transaction"]["id"] == txid
    if n == 2:
        assert_idle(ch, 1)
        assert sns(csms, 1, m) == []


def test_21_periodic_meter_values_carry_transaction_id(csms, charger_factory):
    ch = boot(charger_factory, csms, 1, keys={"MeterValueSampleInterval": 1})
    ch.ok("load", connector=1, amps=[10, 10, 10])
    m = csms.mark()
    txid = start(ch, csms, 1)
    mv = csms.wait_for("MeterValues", after=m, timeout=5,
                       pred=lambda x: x.payload.get("transactionId") == txid)
    assert mv.payload["connectorId"] == 1


def test_21_two_connectors_two_transactions(csms, charger_factory):
    ch = boot(charger_factory, csms, 2)
    t1 = start(ch, csms, 1, "TAG1")
    t2 = start(ch, csms, 2, "TAG2")
    assert t1 != t2
    s = ch.state()["connectors"]
    assert s[0]["relay"] and s[1]["relay"]
    # Each card stops its own transaction only.
    m = csms.mark()
    ch.ok("swipe", idTag="TAG2")
    stop = wait_stop(csms, m)
    assert stop.payload["transactionId"] == t2
    wait_sn(csms, 2, "Finishing", m)
    assert ch.connector(1)["status"] == "Charging" and ch.connector(1)["relay"]
    no_call(csms, "Authorize", m)
    m = csms.mark()
    ch.ok("swipe", idTag="tag1")  # idTag is case-insensitive
    assert wait_stop(csms, m).payload["transactionId"] == t1


# --- scenario 22: swipe without a plug ---------------------------------------

@BOTH
def test_22_swipe_without_plug_times_out(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n, keys={"ConnectionTimeOut": 2})
    cid = n
    m = csms.mark()
    ch.ok("swipe", idTag="TAG1")
    csms.wait_for("Authorize", after=m)
    p = wait_sn(csms, cid, "Preparing", m)
    a = wait_sn(csms, cid, "Available", m, timeout=6)
    assert 1.5 <= a.t - p.t <= 4.0
    # A plug after the timeout starts nothing.
    ch.ok("plug_in", connector=cid)
    wait_sn(csms, cid, "Preparing", csms.messages.index(a) + 1)
    no_call(csms, "StartTransaction", m, wait=0.5)
    assert ch.connector(cid)["transaction"] is None and not ch.connector(cid)["relay"]


def test_22_swipe_then_plug_on_either_connector(csms, charger_factory):
    # Two free connectors: the card waits for whichever is plugged first.
    ch = boot(charger_factory, csms, 2, keys={"ConnectionTimeOut": 20})
    m = csms.mark()
    ch.ok("swipe", idTag="TAG1")
    wait_sn(csms, 1, "Preparing", m)
    wait_sn(csms, 2, "Preparing", m)
    ch.ok("plug_in", connector=2)
    st = csms.wait_for("StartTransaction", after=m)
    assert st.payload["connectorId"] == 2
    wait_sn(csms, 2, "Charging", m)
    wait_sn(csms, 1, "Available", m)
    assert ch.connector(1)["transaction"] is None


def test_22_plug_without_swipe_times_out_to_finishing(csms, charger_factory):
    ch = boot(charger_factory, csms, 1, keys={"ConnectionTimeOut": 2})
    m = csms.mark()
    ch.ok("plug_in", connector=1)
    p = wait_sn(csms, 1, "Preparing", m)
    f = wait_sn(csms, 1, "Finishing", m, timeout=6)  # cable still in
    assert f.t - p.t >= 1.5
    ch.ok("plug_out", connector=1)
    wait_sn(csms, 1, "Available", m)
    no_call(csms, "StartTransaction", m)


# --- scenario 23: the same card stops ------------------------------------------

@BOTH
def test_23_same_tag_stops_without_authorize(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    cid = n
    txid = start(ch, csms, cid)
    m = csms.mark()
    ch.ok("swipe", idTag="TAG1")
    stop = wait_stop(csms, m, txid)
    assert stop.payload["reason"] == "Local"  # always sent, Local included
    assert stop.payload["idTag"] == "TAG1"
    assert isinstance(stop.payload["meterStop"], int)
    wait_sn(csms, cid, "Finishing", m)
    no_call(csms, "Authorize", m)
    c = ch.wait_state(lambda s: not s["connectors"][cid - 1]["locked"], what="unlocked",
                      timeout=3)["connectors"][cid - 1]
    assert not c["relay"] and c["offered_amps"] == 0 and c["transaction"] is None
    ch.ok("plug_out", connector=cid)
    wait_sn(csms, cid, "Available", m)
    assert sns(csms, cid, m) == ["Finishing", "Available"]
    if n == 2:
        assert_idle(ch, 1)


# --- scenario 24: another card of the same group --------------------------------

GROUPS = {"TAG1": "GROUP1", "TAG2": "GROUP1", "TAG3": "GROUP2"}


@BOTH
def test_24_parent_id_tag_stops(csms, charger_factory, n):
    csms.authorize = lambda t: {"status": "Accepted", "parentIdTag": GROUPS.get(t, "X")}
    ch = boot(charger_factory, csms, n)
    cid = n
    txid = start(ch, csms, cid)
    # A card of another group is authorized, and the transaction goes on.
    m = csms.mark()
    ch.ok("swipe", idTag="TAG3")
    conf(csms, "Authorize", m)
    no_call(csms, "StopTransaction", m, wait=1.0)
    assert ch.connector(cid)["status"] == "Charging"
    if n == 2:  # ... it may charge on the free connector instead
        wait_sn(csms, 1, "Preparing", m)
    # A card of the same group stops it.
    m = csms.mark()
    ch.ok("swipe", idTag="TAG2")
    stop = wait_stop(csms, m, txid)
    assert stop.payload["idTag"] == "TAG2"
    assert stop.payload["reason"] == "Local"  # always sent, Local included
    wait_sn(csms, cid, "Finishing", m)


# --- scenario 25: refused cards -------------------------------------------------

@BOTH
def test_25_refused_cards_start_nothing(csms, charger_factory, n):
    answers = {"BAD1": "Invalid", "BAD2": "Blocked", "BAD3": "Expired"}
    csms.authorize = lambda t: answers.get(t, "Accepted")
    ch = boot(charger_factory, csms, n)
    cid = n
    m = csms.mark()
    ch.ok("plug_in", connector=cid)
    wait_sn(csms, cid, "Preparing", m)
    for tag in answers:
        k = csms.mark()
        ch.ok("swipe", idTag=tag)
        conf(csms, "Authorize", k)
        time.sleep(0.3)
        c = ch.connector(cid)
        assert c["transaction"] is None and not c["relay"] and c["offered_amps"] == 0, c
    no_call(csms, "StartTransaction", m, wait=0.3)
    assert ch.connector(cid)["status"] == "Preparing"
    # A good card still works afterwards.
    k = csms.mark()
    ch.ok("swipe", idTag="GOOD")
    csms.wait_for("StartTransaction", after=k)
    wait_sn(csms, cid, "Charging", k)


# --- scenario 26: StartTransaction answered Invalid -------------------------------

def _invalid_start(cp_id, p):
    return {"idTagInfo": {"status": "Invalid"}, "transactionId": 77}


@BOTH
def test_26_invalid_start_deauthorizes(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    cid = n
    csms.set_handler("StartTransaction", _invalid_start)
    m = csms.mark()
    ch.ok("plug_in", connector=cid)
    ch.ok("swipe", idTag="TAG1")
    stop = wait_stop(csms, m, 77)
    assert stop.payload["reason"] == "DeAuthorized"
    wait_sn(csms, cid, "Finishing", m)
    c = ch.wait_state(lambda s: not s["connectors"][cid - 1]["relay"] and
                      s["connectors"][cid - 1]["locked"], timeout=2)["connectors"][cid - 1]
    assert c["offered_amps"] == 0
    time.sleep(0.3)
    assert ch.connector(cid)["locked"], "cable stays locked after DeAuthorized"
    # Still locked after the EV leaves; the same card releases it.
    ch.ok("plug_out", connector=cid)
    wait_sn(csms, cid, "Available", m)
    time.sleep(0.3)
    assert ch.connector(cid)["locked"]
    k = csms.mark()
    ch.ok("swipe", idTag="TAG1")
    ch.wait_state(lambda s: not s["connectors"][cid - 1]["locked"], timeout=3, what="unlocked")
    no_call(csms, "StartTransaction", k, wait=0.3)


def test_26_invalid_start_suspends_when_not_stopping(csms, charger_factory):
    ch = boot(charger_factory, csms, 1, keys={"StopTransactionOnInvalidId": False})
    csms.set_handler("StartTransaction", _invalid_start)
    m = csms.mark()
    ch.ok("plug_in", connector=1)
    ch.ok("swipe", idTag="TAG1")
    wait_sn(csms, 1, "SuspendedEVSE", m)
    c = ch.connector(1)
    assert not c["relay"] and c["offered_amps"] == 0 and c["transaction"]["id"] == 77
    no_call(csms, "StopTransaction", m, wait=0.5)
    # The driver can still end it with the same card.
    k = csms.mark()
    ch.ok("swipe", idTag="TAG1")
    assert wait_stop(csms, k, 77).payload["reason"] == "Local"


def test_26_parent_releases_deauthorized_cable(csms, charger_factory):
    csms.authorize = lambda t: {"status": "Accepted", "parentIdTag": GROUPS.get(t, "X")}
    ch = boot(charger_factory, csms, 1)
    csms.set_handler("StartTransaction", _invalid_start)
    m = csms.mark()
    ch.ok("plug_in", connector=1)
    ch.ok("swipe", idTag="TAG1")
    wait_stop(csms, m, 77)
    time.sleep(0.3)
    assert ch.connector(1)["locked"]
    csms.clear_handler("StartTransaction")
    ch.ok("plug_out", connector=1)
    k = csms.mark()
    ch.ok("swipe", idTag="TAG3")  # another group: stays locked
    conf(csms, "Authorize", k)
    time.sleep(0.5)
    assert ch.connector(1)["locked"]
    ch.ok("swipe", idTag="TAG2")  # same group
    ch.wait_state(lambda s: not s["connectors"][0]["locked"], timeout=4, what="unlocked")


# --- scenario 27: EV-side unplug --------------------------------------------------

@BOTH
def test_27_ev_side_unplug_stops(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n)
    cid = n
    txid = start(ch, csms, cid)
    m = csms.mark()
    ch.ok("plug_out", connector=cid)
    # Open at once, unless the simulated pilot's sampling was starved of CPU
    # (a loaded machine: no reading, the previous state kept); then the
    # supervisor's next poll (50 ms) opens it. How fast: bench_session.
    ch.wait_state(lambda s: not s["connectors"][cid - 1]["relay"], timeout=1, what="relay open")
    stop = wait_stop(csms, m, txid)
    assert stop.payload["reason"] == "EVDisconnected"
    f = wait_sn(csms, cid, "Finishing", m)
    assert f.payload.get("info") == "EV side disconnected"
    wait_sn(csms, cid, "Available", m)
    # UnlockConnectorOnEVSideDisconnect (true by default): unlocked.
    ch.wait_state(lambda s: not s["connectors"][cid - 1]["locked"], timeout=3, what="unlocked")
    r = csms.call("CP1", "ChangeConfiguration",
                  {"key": "StopTransactionOnEVSideDisconnect", "value": "false"})
    assert r["status"] == "Rejected"


def test_27_ev_side_unplug_keeps_lock_when_configured(csms, charger_factory):
    ch = boot(charger_factory, csms, 1, keys={"UnlockConnectorOnEVSideDisconnect": False})
    txid = start(ch, csms, 1)
    m = csms.mark()
    ch.ok("plug_out", connector=1)
    assert wait_stop(csms, m, txid).payload["reason"] == "EVDisconnected"
    wait_sn(csms, 1, "Available", m)
    time.sleep(0.3)
    assert ch.connector(1)["locked"]
    ch.ok("swipe", idTag="TAG1")  # the user presents the card: unlocked
    ch.wait_state(lambda s: not s["connectors"][0]["locked"], timeout=3, what="unlocked")
    no_call(csms, "StartTransaction", m)


# --- scenario 28: remote start -----------------------------------------------------

@pytest.mark.parametrize("authorize,n", [(True, 1), (False, 1), (True, 2), (False, 2)])
def test_28_remote_start_then_plug(csms, charger_factory, authorize, n):
    ch = boot(charger_factory, csms, n, keys={"AuthorizeRemoteTxRequests": authorize})
    cid = n
    m = csms.mark()
    r = csms.call("CP1", "RemoteStartTransaction", {"idTag": "REM1", "connectorId": cid})
    assert r["status"] == "Accepted"
    wait_sn(csms, cid, "Preparing", m)
    if authorize:
        assert csms.wait_for("Authorize", after=m).payload["idTag"] == "REM1"
    ch.ok("plug_in", connector=cid)
    st = csms.wait_for("StartTransaction", after=m)
    assert st.payload["idTag"] == "REM1" and st.payload["connectorId"] == cid
    wait_sn(csms, cid, "Charging", m)
    if not authorize:
        no_call(csms, "Authorize", m)
    if n == 2:
        assert_idle(ch, 1)


def test_28_remote_start_plugged_starts_at_once(csms, charger_factory):
    ch = boot(charger_factory, csms, 1)
    m = csms.mark()
    ch.ok("plug_in", connector=1)
    wait_sn(csms, 1, "Preparing", m)
    r = csms.call("CP1", "RemoteStartTransaction", {"idTag": "REM1", "connectorId": 1})
    assert r["status"] == "Accepted"
    csms.wait_for("StartTransaction", after=m)
    wait_sn(csms, 1, "Charging", m)


def test_28_remote_start_refused_by_authorize(csms, charger_factory):
    csms.authorize = lambda t: "Blocked"
    ch = boot(charger_factory, csms, 1)
    m = csms.mark()
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "REM1", "connectorId": 1}) \
        == {"status": "Accepted"}
    conf(csms, "Authorize", m)
    ch.ok("plug_in", connector=1)
    no_call(csms, "StartTransaction", m, wait=0.8)


# --- scenario 29: remote start without a plug ----------------------------------------

@BOTH
def test_29_remote_start_without_plug_times_out(csms, charger_factory, n):
    ch = boot(charger_factory, csms, n, keys={"AuthorisationTimeout": 2})
    cid = n
    m = csms.mark()
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "REM1", "connectorId": cid}) \
        == {"status": "Accepted"}
    p = wait_sn(csms, cid, "Preparing", m)
    a = wait_sn(csms, cid, "Available", m, timeout=6)
    assert 1.5 <= a.t - p.t <= 4.0
    ch.ok("plug_in", connector=cid)
    no_call(csms, "StartTransaction", m, wait=0.5)


# --- authorization offline (checklist §2.3) ------------------------------------------

def test_offline_cache_and_unknown_tags(csms, charger_factory):
    ch = boot(charger_factory, csms, 1)
    start(ch, csms, 1, "TAG1")  # Authorize Accepted: cached
    m = csms.mark()
    ch.ok("swipe", idTag="TAG1")
    wait_stop(csms, m)
    ch.ok("plug_out", connector=1)
    wait_sn(csms, 1, "Available", m)
    ch.ok("network", up=False)
    csms.wait_disconnected("CP1", timeout=5)
    ch.ok("plug_in", connector=1)
    # Unknown tag offline, AllowOfflineTxForUnknownId false: refused.
    ch.ok("swipe", idTag="NEW1")
    time.sleep(0.5)
    assert ch.connector(1)["transaction"] is None
    # Cached tag offline (LocalAuthorizeOffline): charges.
    ch.ok("swipe", idTag="TAG1")
    c = ch.wait_state(lambda s: s["connectors"][0]["relay"], timeout=3,
                      what="charging offline")["connectors"][0]
    assert c["transaction"]["idTag"] == "TAG1"
    m = csms.mark()
    ch.ok("network", up=True)
    st = csms.wait_for("StartTransaction", after=m, timeout=10)
    assert st.payload["idTag"] == "TAG1"
    no_call(csms, "Authorize", m)


# --- the session code leaves the heap between sessions ------------------------

def test_session_code_leaves_the_heap_when_idle_and_comes_back(charger_factory, csms):
    # docs/architecture.md: MeterValues are made for a session and released
    # once every connector has been idle for idleReleaseMs; the session code
    # is loaded by each event and released once unused that long, while
    # charging too; the next session loads them again and runs as the
    # first did. The authorization store comes and goes with each use (a
    # card, the Authorize and StartTransaction answers): never kept.
    ch = charger_factory(config={"settings": {"idleReleaseMs": 1000},
                                 "keys": {"MeterValueSampleInterval": 1}})
    wait_sn(csms, 1, "Available")
    parts = ("mpocpp.model.sessionflow", "mpocpp.metering.metervalues")
    auth = ("mpocpp.model.authrules", "mpocpp.model.authstore")

    def loaded():
        mods = ch.ok("heap")["modules"]
        assert not [a for a in auth if a in mods], mods
        return [p for p in parts if p in mods]

    time.sleep(1.5)
    assert loaded() == []  # idle since boot: never loaded
    for k in range(2):
        m = csms.mark()
        txid = start(ch, csms, tag="TAG%d" % k)
        csms.wait_for("MeterValues", after=m, pred=lambda x: "transactionId" in x.payload)
        deadline = time.time() + 10
        while loaded() != [parts[1]]:  # charging: the session code let go
            assert time.time() < deadline, loaded()
            time.sleep(0.2)
        m = csms.mark()
        ch.ok("swipe", idTag="TAG%d" % k)
        assert wait_stop(csms, m, txid).payload["reason"] == "Local"
        ch.ok("plug_out", connector=1)
        wait_sn(csms, 1, "Available", m)
        deadline = time.time() + 10
        while loaded():
            assert time.time() < deadline, loaded()
            time.sleep(0.2)
