"""mpocpp/protocol/ws.py end to end: the MicroPython client (ws_client_script.py as
a subprocess) against a CPython `websockets` server on 127.0.0.1, plain and
TLS (test CA from certs.py)."""
import asyncio
import base64
import hashlib
import json
import os
import ssl
import subprocess
import threading
import time

import pytest
from websockets.asyncio.server import serve

import certs
from harness import MICROPYTHON, ROOT, mp_env

SCRIPT = os.path.join(ROOT, "host_tests", "mp", "ws_client_script.py")


def pattern(n):
    s = "0123456789abcdefghijklmnopqrstuvwxyz"
    return (s * (n // len(s) + 1))[:n]


class Server:
    """websockets servers (ws and wss) in a background thread. The path picks
    the behaviour; /<behaviour>/<tag> records what happened under tag."""

    def __init__(self):
        self.records = {}
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self):
        self.loop.run_until_complete(self._main())

    async def _main(self):
        pki = certs.pki()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.server_cert, pki.server_key)
        kw = dict(process_request=self._process_request,
                  select_subprotocol=self._select, ping_interval=None)
        self.stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0, **kw) as plain, \
                serve(self._handler, "127.0.0.1", 0, ssl=ctx, **kw) as tls:
            self.port = plain.sockets[0].getsockname()[1]
            self.tls_port = tls.sockets[0].getsockname()[1]
            self.ready.set()
            await self.stop.wait()

    def close(self):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(5)

    def rec(self, path):
        parts = path.strip("/").split("/")
        return self.records.setdefault(parts[1] if len(parts) > 1 else "", {})

    def record(self, tag, timeout=3.0):
        # The handler finishes a little after the client process exits.
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r = self.records.get(tag, {})
            if "done" in r:
                return r
            time.sleep(0.01)
        return self.records.get(tag, {})

    def _process_request(self, conn, request):
        r = self.rec(request.path)
        r["authorization"] = request.headers.get("Authorization")
        r["protocol_offered"] = request.headers.get("Sec-WebSocket-Protocol")
        if request.path.startswith("/missing"):
            return conn.respond(404, "no such charge point\n")
        if request.path.startswith("/auth"):
            good = "Basic " + base64.b64encode(b"CP_1:s3cret").decode()
            if r["authorization"] != good:
                return conn.respond(401, "unauthorized\n")
        return None

    def _select(self, conn, offered):
        if conn.request.path.startswith("/noproto"):
            return None
        if conn.request.path.startswith("/otherproto"):
            return offered[0] if "ocpp2.0.1" in offered else "ocpp2.0.1"
        return "ocpp1.6" if "ocpp1.6" in offered else None

    async def _handler(self, ws):
        r = self.rec(ws.request.path)
        r["received"] = []
        try:
            async for msg in ws:
                r["received"].append(msg)
                await self._on_message(ws, r, msg)
        except Exception as e:  # noqa: BLE001 - recorded for the assertions
            r["error"] = repr(e)
        finally:
            await ws.wait_closed()
            rcvd, sent = ws.protocol.close_rcvd, ws.protocol.close_sent
            r["close_rcvd"] = rcvd.code if rcvd else None
            r["close_sent"] = sent.code if sent else None
            r["done"] = True

    async def _on_message(self, ws, r, msg):
        if msg == "ping-me":
            waiter = await ws.ping(b"srv-ping")
            await asyncio.wait_for(waiter, 2)
            r["pong"] = True
            await ws.send("pong-ok")
        elif msg.startswith("frag:"):
            body = msg[5:]
            waiters = []

            async def fragments():
                third = len(body) // 3
                yield body[:third]
                waiters.append(await ws.ping(b"between"))
                yield body[third:2 * third]
                yield ""
                yield body[2 * third:]
            await ws.send(fragments())
            await asyncio.wait_for(waiters[0], 2)
            r["pong"] = True
        elif msg == "close-me":
            await ws.close(4001, "bye")
        elif msg.startswith("big:"):
            await ws.send("y" * int(msg[4:]))
        elif msg == "binary":
            await ws.send(b"\x00\x01")
            await ws.send("after-binary")
        else:
            await ws.send(msg)


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.close()


def run_client(cfg, timeout=15):
    p = subprocess.run([MICROPYTHON, SCRIPT], input=json.dumps(cfg), env=mp_env(),
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout + p.stderr
    return [json.loads(ln[1:]) for ln in p.stdout.splitlines() if ln.startswith("@")]


def url(server, path, tls=False, host="127.0.0.1"):
    if tls:
        return "wss://%s:%d%s" % (host, server.tls_port, path)
    return "ws://%s:%d%s" % (host, server.port, path)


def test_echo_small_and_large(server):
    steps = [["send", "hello"], ["recv"], ["send", "[2,\"1\",\"Heartbeat\",{}]"], ["recv"]]
    for n in (100, 5 * 1024, 60 * 1024):
        steps += [["send_n", n], ["recv_digest"]]
    steps.append(["close", 1000])
    res = run_client({"url": url(server, "/echo/e1"), "max": 65536, "steps": steps})
    assert res[0] == {"open": True}
    assert res[1]["recv"] == "hello"
    assert res[2]["recv"] == '[2,"1","Heartbeat",{}]'
    digests = [r for r in res if "sha1" in r]
    for r, n in zip(digests, (100, 5 * 1024, 60 * 1024)):
        assert r == {"len": n, "sha1": hashlib.sha1(pattern(n).encode()).hexdigest()}
    assert res[-1] == {"step": "close", "open": False, "close_code": 1000}
    rec = server.record("e1")
    assert rec["received"][2:] == [pattern(n) for n in (100, 5 * 1024, 60 * 1024)]
    assert rec["close_rcvd"] == 1000 and rec["close_sent"] == 1000
    assert rec["authorization"] is None and rec["protocol_offered"] == "ocpp1.6"


def test_server_ping_answered_and_client_ping(server):
    steps = [["send", "ping-me"], ["recv"], ["ping", "hb", 300], ["close", 1000]]
    res = run_client({"url": url(server, "/echo/p1"), "steps": steps})
    assert res[1]["recv"] == "pong-ok"
    assert server.record("p1").get("pong") is True
    ping = [r for r in res if "pong" in r][0]
    assert ping == {"pong": True, "recv": None, "open": True}


def test_fragmented_message_with_ping_between(server):
    body = pattern(3000)
    res = run_client({"url": url(server, "/echo/f1"),
                      "steps": [["send", "frag:" + body], ["recv"], ["close", 1000]]})
    assert res[1]["recv"] == body
    assert server.record("f1").get("pong") is True


def test_binary_skipped(server):
    res = run_client({"url": url(server, "/echo/b1"),
                      "steps": [["send", "binary"], ["recv"], ["close", 1000]]})
    assert res[1]["recv"] == "after-binary"


def test_server_closes(server):
    res = run_client({"url": url(server, "/echo/c1"),
                      "steps": [["send", "close-me"], ["recv"], ["state"], ["recv"]]})
    assert res[1] == {"recv": None}
    assert res[2] == {"step": "state", "open": False, "close_code": 4001}
    assert res[3] == {"recv": None}
    rec = server.record("c1")
    assert rec["close_sent"] == 4001 and rec["close_rcvd"] == 4001  # echoed


def test_oversize_message_closes_1009(server):
    res = run_client({"url": url(server, "/echo/o1"), "max": 1024,
                      "steps": [["send", "big:5000"], ["recv"], ["state"]]})
    assert res[1] == {"recv": None}
    assert res[2] == {"step": "state", "open": False, "close_code": 1009}
    rec = server.record("o1")
    assert rec["close_rcvd"] == 1009


def test_subprotocol_not_agreed(server):
    for path in ("/noproto/n1", "/otherproto/n2"):
        res = run_client({"url": url(server, path)})
        assert "subprotocol" in res[0]["error"] and res[0]["status"] is None


def test_http_errors_carry_status(server):
    res = run_client({"url": url(server, "/missing/CP_1")})
    assert res[0] == {"error": "HTTP 404", "status": 404}
    res = run_client({"url": url(server, "/auth/a0"), "auth": ["CP_1", "wrong"]})
    assert res[0] == {"error": "HTTP 401", "status": 401}


def test_basic_auth(server):
    res = run_client({"url": url(server, "/auth/a1"), "auth": ["CP_1", "s3cret"],
                      "steps": [["send", "x"], ["recv"], ["close", 1000]]})
    assert res[1]["recv"] == "x"
    expect = "Basic " + base64.b64encode(b"CP_1:s3cret").decode()
    assert server.record("a1")["authorization"] == expect


def test_connection_refused():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    res = run_client({"url": "ws://127.0.0.1:%d/x" % port})
    assert "error" in res[0] and res[0]["status"] is None


def test_wss_with_test_ca(server):
    pki = certs.pki()
    steps = [["send_n", 20000], ["recv_digest"], ["close", 1000]]
    res = run_client({"url": url(server, "/echo/t1", tls=True), "ca": pki.ca_der_path,
                      "max": 32768, "steps": steps})
    assert res[0] == {"open": True}, res
    assert res[1] == {"len": 20000, "sha1": hashlib.sha1(pattern(20000).encode()).hexdigest()}
    assert res[-1]["close_code"] == 1000
    # by DNS name (the opener dials 127.0.0.1)
    res = run_client({"url": url(server, "/echo/t2", tls=True, host="localhost"),
                      "ca": pki.ca_der_path, "connect_to": "127.0.0.1",
                      "steps": [["send", "hi"], ["recv"], ["close", 1000]]})
    assert res[1] == {"recv": "hi"}


def test_wss_refused_wrong_ca_or_host(server):
    pki = certs.pki()
    res = run_client({"url": url(server, "/echo/t3", tls=True), "ca": pki.other_ca_der_path})
    assert "certificate" in res[0]["error"] and res[0]["status"] is None, res
    res = run_client({"url": url(server, "/echo/t4", tls=True, host="wrong.example"),
                      "ca": pki.ca_der_path, "connect_to": "127.0.0.1"})
    assert "certificate" in res[0]["error"] and res[0]["status"] is None, res
    assert "t3" not in server.records and "t4" not in server.records  # refused in TLS
    res = run_client({"url": url(server, "/echo/t5", tls=True)})  # no ssl context
    assert "ssl" in res[0]["error"]
