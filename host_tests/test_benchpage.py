"""The bench page's server (tools/benchpage.py) with the real bench CSMS and a
simulated charger, spoken to over its WebSocket as a tab does: files, the
loopback-only rule, several tabs seeing the same state, a closed tab costing
nothing, bench requests, CSMS calls, the power switch, the traffic rows.
The page itself in a real browser: test_benchpage_browser.py."""
import asyncio
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from harness import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
from benchpage import BenchPage, PowerSwitch  # noqa: E402


class Tab:
    """One browser tab's WebSocket: keeps the newest state of each charger."""

    def __init__(self, ws):
        self.ws = ws
        self.hello = None
        self.states = []
        self.rows = []
        self.events = []
        self.replies = {}
        self._n = 0

    @classmethod
    async def open(cls, url, **kw):
        tab = cls(await connect(url, **kw))
        tab.hello = json.loads(await tab.ws.recv())
        return tab

    async def pump(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                msg = json.loads(await asyncio.wait_for(self.ws.recv(), end - time.monotonic()))
            except asyncio.TimeoutError:
                return
            kind = msg["type"]
            if kind == "state":
                self.states.append(msg)
            elif kind == "traffic":
                self.rows += msg["rows"]
            elif kind == "event":
                self.events.append(msg["event"])
            elif kind == "reply":
                self.replies[msg["req"]] = msg

    async def until(self, pred, timeout=20, what="a condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred(self):
                return
            await self.pump(0.2)
        raise AssertionError("tab never saw %s; last state %r" % (
            what, self.states[-1] if self.states else None))

    async def ask(self, **req):
        self._n += 1
        req["req"] = self._n
        await self.ws.send(json.dumps(req))
        await self.until(lambda t: self._n in t.replies, what="the reply to %r" % req)
        return self.replies[self._n]

    def connector(self, cid=1):
        st = self.states[-1]["state"] if self.states else None
        return st["connectors"][cid - 1] if st else None

    def status(self, cid=1):
        c = self.connector(cid)
        return c and c["status"]


@pytest.fixture
def page(csms, charger, monkeypatch):
    """The page for the charger, with a power switch wired to the test (as
    tools/run wires it): power on starts the charger on the same bench port."""
    import simcharger
    monkeypatch.setattr(simcharger, "free_port", lambda: charger.bench_port)
    r, w = os.pipe()
    page = BenchPage(
        csms, {"CP1": ("127.0.0.1", charger.bench_port)}, power=PowerSwitch(w)
    ).start()
    switched = []

    def switch():
        for line in os.fdopen(r):
            switched.append(line.split())
            if line.split() == ["CP1", "off"]:
                charger.power_cut()
            elif line.split() == ["CP1", "on"]:
                charger.start(wait_bench=False)

    threading.Thread(target=switch, daemon=True).start()
    page.switched = switched
    yield page
    page.stop()


def test_files_are_served_and_only_loopback_pages_may_talk(page):
    html = urllib.request.urlopen(page.url, timeout=5).read().decode()
    assert '<script src="bench.js">' in html
    with urllib.request.urlopen(page.url + "bench.js", timeout=5) as r:
        assert "javascript" in r.headers["Content-Type"]
    for bad in ("nope.js", "..%2Fbenchpage.py", ".hidden"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(page.url + bad, timeout=5)
        assert e.value.code == 404

    async def go():
        ws_url = "ws://127.0.0.1:%d/ws" % page.port
        with pytest.raises(InvalidStatus) as e:
            await connect(ws_url, origin="http://evil.example")
        assert e.value.response.status_code == 403
        tab = await Tab.open(ws_url, origin="http://127.0.0.1:%d" % page.port)
        await tab.ws.close()
    asyncio.run(go())


def test_two_tabs_see_the_same_charger_and_a_closed_tab_costs_nothing(page, csms, charger):
    async def go():
        url = "ws://127.0.0.1:%d/ws" % page.port
        a = await Tab.open(url)
        b = await Tab.open(url)
        assert [c["cp"] for c in a.hello["chargers"]] == ["CP1"]
        assert "RemoteStopTransaction" in a.hello["actions"]
        assert "ConnectorLockFailure" in a.hello["errorCodes"]
        await a.until(lambda t: t.status() == "Available", what="Available")
        st = a.states[-1]["state"]
        assert st["connection"] == "online" and st["registration"] == "Accepted"
        assert st["queue_depth"] == 0 and st["heap"]["alloc"] > 0 and len(st["led_rgb"]) == 3

        # a request from tab a; tab b sees its effect
        reply = await a.ask(op="bench", cp="CP1", request={"op": "plug_in", "connector": 1})
        assert reply["ok"], reply
        await b.until(lambda t: t.status() == "Preparing", what="Preparing in the other tab")
        bad = await a.ask(op="bench", cp="CP1", request={"op": "ev_state", "state": "Z"})
        assert not bad["ok"] and "A-F" in bad["error"]

        await a.ask(op="bench", cp="CP1", request={"op": "swipe", "idTag": "CAFE77"})
        await b.until(lambda t: t.status() == "Charging", what="Charging")
        await b.until(lambda t: any(s["points"].get("1") for s in t.states), what="a plot point")
        assert b.states[-1]["idTags"][0] == "CAFE77"
        # the id is the charger's own (negative) until StartTransaction.conf is stored
        def csms_id(t):
            tx = (t.connector() or {}).get("transaction") or {}
            return (tx.get("id") or 0) > 0
        await b.until(csms_id, what="the CSMS's transactionId")
        tx = b.connector()["transaction"]
        assert tx["idTag"] == "CAFE77"

        # a CSMS call from tab b, its answer to b alone
        stop = await b.ask(op="call", cp="CP1", action="RemoteStopTransaction",
                           payload={"transactionId": tx["id"]})
        assert stop["ok"] and stop["result"] == {"status": "Accepted"}, stop
        await a.until(lambda t: t.status() == "Finishing", what="Finishing")
        assert not [r for r in a.replies.values() if r.get("result") == {"status": "Accepted"}]
        invalid = await b.ask(op="call", cp="CP1", action="Reset", payload={"type": "Sideways"})
        assert not invalid["ok"] and "Sideways" in invalid["error"]

        # the traffic: the CALL out and its answer in, correlated
        await a.until(
            lambda t: any(
                r["action"] == "RemoteStopTransaction" and r["type"] == "CALLRESULT"
                for r in t.rows
            ),
            what="the RemoteStop answer row",
        )
        call = next(
            r for r in a.rows if r["action"] == "RemoteStopTransaction" and r["type"] == "CALL"
        )
        answer = next(
            r
            for r in a.rows
            if r["action"] == "RemoteStopTransaction" and r["type"] == "CALLRESULT"
        )
        assert call["dir"] == "out" and answer["dir"] == "in" and answer["call"] == call["n"]
        assert answer["rtt_ms"] >= 0 and answer["errors"] == []

        # a frame that breaks the schema is marked (sent unchecked on purpose)
        def send_unchecked():
            try:
                csms.call("CP1", "Reset", {"type": "Sideways"}, timeout=5, validate_outgoing=False)
            except Exception:
                pass  # the charger's answer does not matter here
        await asyncio.to_thread(send_unchecked)
        await a.until(lambda t: any(r["action"] == "Reset" and r["type"] == "CALL" and r["errors"]
                                    for r in t.rows), what="the invalid Reset marked")

        await a.ws.close()
        await b.ws.close()
        await asyncio.sleep(1.0)
        polls = page.polls
        await asyncio.sleep(2.0)
        assert page.polls == polls, "the page polls the charger with no tab open"
        assert not page.clients
        csms.violations.clear()  # the bench's own invalid Reset
    asyncio.run(go())


def test_power_cut_and_power_on_from_the_page_show_the_reboot(page, csms, charger):
    async def go():
        tab = await Tab.open("ws://127.0.0.1:%d/ws" % page.port)
        await tab.until(lambda t: t.status() == "Available", what="Available")
        boot = tab.states[-1]["state"]["boot"]
        assert (await tab.ask(op="power", cp="CP1", on=False))["ok"]
        await tab.until(lambda t: not t.states[-1]["powered"] and t.states[-1]["state"] is None,
                        what="the charger off")
        await tab.until(lambda t: page.switched == [["CP1", "off"]], what="the switch")
        assert (await tab.ask(op="power", cp="CP1", on=True))["ok"]
        await tab.until(
            lambda t: (
                t.states[-1]["state"]
                and t.states[-1]["state"]["boot"] == boot + 1
                and t.states[-1]["state"]["connection"] == "online"
            ),
            timeout=30,
            what="the charger back online after its reboot",
        )
        texts = [e["text"] for e in tab.events]
        assert "power cut" in texts and "power on" in texts
        assert "rebooted (boot #%d)" % (boot + 1) in texts
        await tab.ws.close()
    asyncio.run(go())


def test_bad_requests_from_a_tab_get_a_clear_answer(csms):
    page = BenchPage(csms, {"CP1": ("127.0.0.1", 1)}).start()  # nothing listens on port 1

    async def go():
        tab = await Tab.open("ws://127.0.0.1:%d/ws" % page.port)
        await tab.ws.send("not JSON")  # ignored, the tab stays connected
        cases = [
            (dict(op="bench", cp="CP9", request={}), "no charger 'CP9'"),
            (dict(op="bench", cp="CP1"), "'request'"),
            (dict(op="call", cp="CP1", action="Reset", payload=[1]), "not of type 'object'"),
            (dict(op="call", cp="CP1", action="Heartbeat", payload={}), "not a CSMS-initiated"),
            (dict(op="call", cp="CP1", action="Reset", payload={"type": "Soft"}), "not connected"),
            (dict(op="power", cp="CP1", on=False), "no power switch"),
            (dict(op="zap", cp="CP1"), "unknown op"),
            (dict(op="bench", cp="CP1", request={"op": "state"}), "no answer on bench port"),
        ]
        for req, why in cases:
            reply = await tab.ask(**req)
            assert not reply["ok"] and why in reply["error"], (req, reply)
        await tab.ws.close()
    try:
        asyncio.run(go())
    finally:
        page.stop()
