"""The live bench page, served by the bench CSMS process (see docs/bench-page.md).

One port on loopback serves the files of tools/benchpage/ as they are and, at
/ws, a WebSocket over which every open tab gets the same live picture: each
charger's bench `state` (polled over its bench port, docs/bench-protocol.md),
the OCPP traffic the CSMS recorded (CALL and answer correlated, schema
problems marked) and the bench's events (reboots, power, violations). A tab
sends bench requests, CSMS-initiated CALLs and power switching through it.
Nothing is polled while no tab is open.

The page runs on its own asyncio loop in its own thread (the CSMS has its
own), so the CSMS knows nothing of it: it reads `csms.calls()` and
`csms.violations` and sends with `csms.call_async()`.
"""
import asyncio
import collections
import json
import mimetypes
import os
import sys
import threading
import time
import urllib.parse

from websockets.asyncio.server import broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

import ocpp
from csms_lib import (CALL, CALLERROR, CALLRESULT, CS_ACTIONS, CallErrorResult,
                      parse_frame, schema_errors)

SCHEMAS = os.path.join(os.path.dirname(ocpp.__file__), "v16", "schemas")
FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchpage")
_POLL_S = 0.5  # bench state of each charger, while a tab is open
_TRAFFIC_S = 0.25
_KEEP_ROWS = 400  # traffic rows a newly opened tab gets
_KEEP_POINTS = 1200  # plot points per connector (halved when full)
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_TYPES = {CALL: "CALL", CALLRESULT: "CALLRESULT", CALLERROR: "CALLERROR"}
_FAULTS = ("weld", "stuck_open", "lock_jam", "diode")


def _load_schema(name):
    with open(os.path.join(SCHEMAS, name + ".json"), encoding="utf-8-sig") as f:
        return json.load(f)


class PowerSwitch:
    """The simulated chargers' mains: `tools/run` reads "CPID on|off" lines
    from the other end of this pipe and starts or kills the charger."""

    def __init__(self, fd):
        self._f = os.fdopen(fd, "w", buffering=1)

    def set(self, cp_id, on):
        self._f.write("%s %s\n" % (cp_id, "on" if on else "off"))
        self._f.flush()


class Charger:
    """A simulated charger as the page shows it, reached over its bench port."""

    def __init__(self, cp_id, host, port):
        self.cp_id = cp_id
        self.host = host
        self.port = port
        self.powered = True
        self.state = None  # the last bench `state` reply, None if unreachable
        self.boot = None  # the boot counter last seen
        self.series = {}  # connector id -> [[t, power W, energy Wh], ...]
        self._tx = {}  # connector id -> the transaction its series belongs to
        self._io = None  # (reader, writer) of the open bench connection
        self._lock = None  # made on the page's loop

    async def request(self, req):
        """One bench request -> its reply; ConnectionError when the charger
        does not answer (off, rebooting, no bench port)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            try:
                if self._io is None:
                    self._io = await asyncio.wait_for(
                        asyncio.open_connection(self.host, self.port), 2)
                reader, writer = self._io
                writer.write(json.dumps(req).encode() + b"\n")
                line = await asyncio.wait_for(reader.readline(), 5)
                if not line:
                    raise ConnectionError("bench connection closed")
                return json.loads(line)
            except (OSError, asyncio.TimeoutError, ValueError) as e:
                self.close()
                raise ConnectionError("%s: no answer on bench port %s:%d (%s)" % (
                    self.cp_id, self.host, self.port, e or type(e).__name__)) from None

    def close(self):
        if self._io is not None:
            self._io[1].close()
            self._io = None

    def record(self, t, state):
        """Keep one plot point per connector for the transaction it runs; the
        last session's plot stays until the next one starts."""
        new = {}
        for c in state.get("connectors", ()):
            tx = c.get("transaction")
            if not tx:
                continue
            cid = c["id"]
            if self._tx.get(cid) != tx.get("id"):
                self._tx[cid] = tx.get("id")
                self.series[cid] = []
            pts = self.series[cid]
            energy = c.get("energy_wh", 0) - (tx.get("meterStart") or 0)
            p = [round(t, 2), c.get("power_w"), round(energy, 1)]
            pts.append(p)
            if len(pts) > _KEEP_POINTS:
                del pts[::2]
            new[cid] = p
        return new


class BenchPage:
    """Serve the bench page for `csms` and the chargers {cp_id: (host, port)}."""

    def __init__(self, csms, chargers, host="127.0.0.1", port=0, power=None):
        self.csms = csms
        self.host = host
        self.chargers = {cp: Charger(cp, h, p) for cp, (h, p) in chargers.items()}
        self.power = power  # PowerSwitch or None
        self.clients = set()
        self.events = collections.deque(maxlen=100)
        self.rows = collections.deque(maxlen=_KEEP_ROWS)
        self.id_tags = []  # recent idTags, newest first
        self.polls = 0  # bench state requests sent (a closed tab costs nothing)
        self._port = port
        self._done = 0  # csms messages turned into rows
        self._open = {}  # (cp_id, message id) -> (row number, time) of a CALL
        self._violations = 0
        self._schemas = None
        self._loop = self._thread = self._server = None
        self._watched = None
        self._stopping = False

    @property
    def port(self):
        return self._port

    @property
    def url(self):
        return "http://%s:%d/" % (self.host, self._port)

    # ---- lifecycle (same pattern as BenchCSMS)

    def start(self):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name="bench-page", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._open_server(), self._loop).result(30)
        except BaseException:
            self._shutdown()
            raise
        return self

    def stop(self):
        if self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(30)
        finally:
            self._shutdown()

    def _shutdown(self):
        loop, self._loop = self._loop, None
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        loop.close()

    async def _open_server(self):
        self._watched = asyncio.Event()
        self._server = await serve(self._client, self.host, self._port,
                                   process_request=self._http, compression=None,
                                   ping_interval=20, close_timeout=2, open_timeout=5,
                                   max_size=2 ** 20)
        self._port = self._server.sockets[0].getsockname()[1]
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _close(self):
        # Python 3.11's wait_for can swallow a cancel that lands as its inner
        # read completes (the poller then sleeps on _watched for ever), so the
        # poller also stops on a flag, woken by _watched.
        self._stopping = True
        self._watched.set()
        self._poller.cancel()
        try:
            await self._poller  # ended here, not destroyed pending with the loop
        except asyncio.CancelledError:
            pass
        self._server.close()
        try:
            # A connection still in its opening handshake holds wait_closed
            # up to open_timeout; the loop's end drops it anyway.
            await asyncio.wait_for(self._server.wait_closed(), 5)
        except asyncio.TimeoutError:
            pass
        for ch in self.chargers.values():
            ch.close()

    # ---- HTTP: the page's files, as they are

    def _http(self, ws, request):
        path = urllib.parse.urlsplit(request.path).path
        if path == "/ws":
            origin = request.headers.get("Origin")
            if origin and urllib.parse.urlsplit(origin).hostname not in (
                "127.0.0.1",
                "localhost",
                "::1",
            ):
                return ws.respond(403, "The bench page only talks to pages on this machine.\n")
            return None  # the WebSocket handshake goes on
        name = "index.html" if path == "/" else path.lstrip("/")
        if "/" in name or name.startswith(".") or not os.path.isfile(os.path.join(FILES, name)):
            return ws.respond(404, "No such file: %s\n" % path)
        with open(os.path.join(FILES, name), "rb") as f:
            body = f.read()
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        headers = Headers([("Content-Type", ctype), ("Content-Length", str(len(body))),
                           ("Cache-Control", "no-cache"), ("Connection", "close")])
        return Response(200, "OK", headers, body)

    # ---- WebSocket: one per tab

    async def _client(self, ws):
        try:
            self._pump_traffic()  # to the other tabs; this one gets it in hello
            await ws.send(json.dumps(self._hello()))
            self.clients.add(ws)
            self._watched.set()
            async for data in ws:
                try:
                    req = json.loads(data)
                except ValueError:
                    continue
                if isinstance(req, dict):
                    asyncio.get_running_loop().create_task(self._answer(ws, req))
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(ws)
            if not self.clients:
                self._watched.clear()

    def _hello(self):
        if self._schemas is None:
            self._schemas = {a: _load_schema(a) for a in sorted(CS_ACTIONS)
                             if os.path.exists(os.path.join(SCHEMAS, a + ".json"))}
        status = _load_schema("StatusNotification")["properties"]
        return {"type": "hello", "chargers": [self._snapshot(ch, full=True)
                                              for ch in self.chargers.values()],
                "actions": self._schemas, "errorCodes": status["errorCode"]["enum"],
                "faults": _FAULTS, "traffic": list(self.rows), "events": list(self.events),
                "idTags": self.id_tags, "power": self.power is not None}

    def _snapshot(self, ch, full=False, points=None):
        msg = {"type": "state", "cp": ch.cp_id, "t": time.time(), "state": ch.state,
               "powered": ch.powered, "online": self.csms.connected(ch.cp_id),
               "idTags": self.id_tags}
        if full:
            msg["series"] = ch.series
        else:
            msg["points"] = points or {}
        return msg

    async def _answer(self, ws, req):
        reply = {"type": "reply", "req": req.get("req")}
        try:
            reply["result"] = await self._do(req)
            reply["ok"] = True
        except CallErrorResult as e:
            reply.update(ok=True, callError={"code": e.code, "description": e.description,
                                             "details": e.details})
        except KeyError as e:
            reply.update(ok=False, error="missing or unknown %s" % e)
        except (ValueError, TypeError, ConnectionError, TimeoutError) as e:
            reply.update(ok=False, error=str(e) or type(e).__name__)
        except Exception as e:  # a bad request must still get its answer
            reply.update(ok=False, error="cannot do that: %r" % e)
        try:
            await ws.send(json.dumps(reply))
        except ConnectionClosed:
            pass  # the tab went away: nothing to answer

    async def _do(self, req):
        ch = self.chargers.get(req.get("cp"))
        op = req.get("op")
        if op == "call":
            cp = req.get("cp")
            payload = req.get("payload", {})
            fut = self.csms.call_async(cp, req["action"], payload, timeout=30)
            self._note_tag(payload.get("idTag"))  # a valid payload is an object
            return await asyncio.wrap_future(fut)
        if ch is None:
            raise ValueError("no charger %r on this page" % req.get("cp"))
        if op == "bench":
            bench = req["request"]
            reply = await ch.request(bench)
            if not reply.get("ok"):
                raise ValueError(reply.get("error", "refused"))
            if bench.get("op") == "swipe":
                self._note_tag(bench.get("idTag"))
            await self._refresh(ch)
            return reply
        if op == "power":
            if self.power is None:
                raise ValueError("no power switch: start the bench with `make run` (tools/run)")
            on = bool(req.get("on"))
            if on != ch.powered:
                if not on:
                    ch.close()
                self.power.set(ch.cp_id, on)
                ch.powered = on
                self._event(ch.cp_id, "power on" if on else "power cut")
                await self._refresh(ch)
            return {"powered": on}
        raise ValueError("unknown op %r" % op)

    def _note_tag(self, tag):
        if isinstance(tag, str) and tag:
            if tag in self.id_tags:
                self.id_tags.remove(tag)
            self.id_tags.insert(0, tag)
            del self.id_tags[10:]

    def _event(self, cp_id, text, level="info"):
        ev = {"t": time.time(), "cp": cp_id, "text": text, "level": level}
        self.events.append(ev)
        broadcast(self.clients, json.dumps({"type": "event", "event": ev}))

    # ---- polling, only while a tab is open

    async def _poll(self):
        last_state = 0.0
        while not self._stopping:
            await self._watched.wait()
            if self._stopping:
                break
            try:
                self._pump_traffic()
                if time.monotonic() - last_state >= _POLL_S:
                    last_state = time.monotonic()
                    for ch in self.chargers.values():
                        await self._refresh(ch)
            except Exception as e:  # a bug here must not freeze every tab
                print("bench page: %r" % e, file=sys.stderr, flush=True)
            await asyncio.sleep(_TRAFFIC_S)
            if not self.clients:
                for ch in self.chargers.values():
                    ch.close()

    async def _refresh(self, ch):
        old = ch.state
        try:
            self.polls += 1
            st = await ch.request({"op": "state"}) if ch.powered else None
        except ConnectionError:
            st = None
        t = time.time()
        if old is not None and st is None and ch.powered:
            self._event(ch.cp_id, "bench port not answering (charger restarting?)", "warn")
        if st is not None:
            if ch.boot is not None and st.get("boot") != ch.boot:
                self._event(ch.cp_id, "rebooted (boot #%s)" % st.get("boot"))
            elif old is not None and old.get("connection") != st.get("connection"):
                self._event(ch.cp_id, "connection %s" % st.get("connection"),
                            "info" if st.get("connection") == "online" else "warn")
            ch.boot = st.get("boot")
        ch.state = st
        points = ch.record(t, st) if st is not None else {}
        broadcast(self.clients, json.dumps(self._snapshot(ch, points=points)))

    # ---- OCPP traffic as table rows

    def _pump_traffic(self):
        msgs = self.csms.calls(None, None, None, after=self._done)
        rows = [self._row(self._done + i, m) for i, m in enumerate(msgs)]
        self._done += len(msgs)
        if rows:
            self.rows.extend(rows)
            broadcast(self.clients, json.dumps({"type": "traffic", "rows": rows}))
        violations = self.csms.violations[self._violations:]
        self._violations += len(violations)
        for v in violations:
            self._event(v.split(" ", 1)[0], "VIOLATION " + v, "error")

    def _row(self, n, m):
        row = {"n": n, "t": m.t, "cp": m.cp_id, "dir": m.direction,
               "type": _TYPES.get(m.type, "raw"), "id": m.id, "action": m.action,
               "payload": m.payload, "errors": []}
        if m.type is None or isinstance(m.raw, bytes):
            row["payload"] = m.raw if isinstance(m.raw, str) else "(binary, %d bytes)" % len(m.raw)
            problem = parse_frame(m.raw)[4] if isinstance(m.raw, str) else "binary frame"
            row["errors"] = [problem or "not an OCPP-J frame"]
            return row
        if m.type == CALL:
            self._open[(m.cp_id, m.id)] = (n, m.t)
            if len(self._open) > 1000:  # CALLs never answered
                del self._open[next(iter(self._open))]
            if m.direction == "in" and isinstance(m.payload, dict):
                self._note_tag(m.payload.get("idTag"))
        else:
            call = self._open.pop((m.cp_id, m.id), None)
            if call is not None:
                row["call"] = call[0]
                row["rtt_ms"] = round((m.t - call[1]) * 1000, 1)
        if m.type != CALLERROR and m.action and isinstance(m.payload, dict):
            row["errors"] = schema_errors(m.action, m.type == CALLRESULT, m.payload) or []
        return row
