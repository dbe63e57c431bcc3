"""Tests of the bench CSMS (tools/csms_lib.py, tools/csms) against a CPython
charge point built on the `ocpp` package and a raw `websockets` client."""
import asyncio
import base64
import contextlib
import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.exceptions import NotSupportedError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from csms_lib import (BenchCSMS, CallErrorReply, CallErrorResult, Delay,
                      NoReply, format_msg, schema_errors)
from harness import ROOT

CSMS_CLI = os.path.join(ROOT, "tools", "csms")


class CP(ChargePoint):
    @on(Action.reset)
    async def on_reset(self, type):
        return call_result.Reset(status="Accepted")


@pytest.fixture
def csms():
    with BenchCSMS(log=print) as c:
        yield c


@contextlib.asynccontextmanager
async def charger(url, cp_id="CP1", timeout=2, **kw):
    """An ocpp-package charge point connected to url/cp_id."""
    kw.setdefault("subprotocols", ["ocpp1.6"])
    async with connect("%s/%s" % (url, cp_id), **kw) as ws:
        cp = CP(cp_id, ws, response_timeout=timeout)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()


@contextlib.asynccontextmanager
async def raw_client(url, cp_id="RAW"):
    async with connect("%s/%s" % (url, cp_id),
                       subprotocols=["ocpp1.6"]) as ws:
        yield ws


async def rpc(ws, frame):
    await ws.send(json.dumps(frame))
    return json.loads(await asyncio.wait_for(ws.recv(), 2))


BOOT = call.BootNotification(charge_point_model="M1", charge_point_vendor="V")


def test_boot_heartbeat_and_csms_call(csms):
    csms.boot_interval = 240

    async def run():
        async with charger(csms.url) as cp:
            conf = await cp.call(BOOT)
            assert conf.status == "Accepted" and conf.interval == 240
            now = datetime.datetime.now(datetime.timezone.utc)
            t = datetime.datetime.fromisoformat(
                conf.current_time.replace("Z", "+00:00"))
            assert abs((t - now).total_seconds()) < 5
            assert (await cp.call(call.Heartbeat())).current_time
            mark = csms.mark()
            res = await asyncio.to_thread(
                csms.call, "CP1", "Reset", {"type": "Soft"})
            assert res == {"status": "Accepted"}
            m = csms.wait_for("Reset", after=mark)
            assert (m.type, m.payload) == (3, {"status": "Accepted"})

    asyncio.run(run())
    boot = csms.wait_for("BootNotification")
    assert boot.type == 2 and boot.payload["chargePointModel"] == "M1"
    answer = csms.wait_for("BootNotification", direction="out")
    assert answer.type == 3 and answer.id == boot.id
    assert answer.payload["status"] == "Accepted"
    assert [m.action for m in csms.messages] == [
        "BootNotification", "BootNotification", "Heartbeat", "Heartbeat",
        "Reset", "Reset"]
    assert [m.direction for m in csms.messages] == ["in", "out"] * 2 + [
        "out", "in"]
    assert csms.connections("CP1") == 1
    assert csms.last_headers("CP1")["sec-websocket-protocol"] == "ocpp1.6"
    assert csms.last_headers("CP1")["path"] == "/ocpp/CP1"
    assert csms.violations == []
    csms.wait_disconnected("CP1", timeout=2)
    assert "CP1 -> BootNotification {" in format_msg(boot)
    assert "CP1 <- BootNotification.conf {" in format_msg(answer)


def test_default_answers(csms):
    csms.authorize = lambda tag: "Blocked" if tag == "BAD" else "Accepted"
    csms.next_transaction_id = 7

    async def run():
        async with charger(csms.url, "CP%201") as cp:
            a = await cp.call(call.Authorize(id_tag="BAD"))
            assert a.id_tag_info == {"status": "Blocked"}
            ts = "2026-01-01T00:00:00Z"
            s1 = await cp.call(call.StartTransaction(
                connector_id=1, id_tag="T1", meter_start=0, timestamp=ts))
            s2 = await cp.call(call.StartTransaction(
                connector_id=1, id_tag="T1", meter_start=0, timestamp=ts))
            assert (s1.transaction_id, s2.transaction_id) == (7, 8)
            assert s1.id_tag_info == {"status": "Accepted"}
            st = await cp.call(call.StopTransaction(
                meter_stop=5, timestamp=ts, transaction_id=7, id_tag="T1"))
            assert st.id_tag_info == {"status": "Accepted"}
            st = await cp.call(call.StopTransaction(
                meter_stop=5, timestamp=ts, transaction_id=8))
            assert st.id_tag_info is None
            await cp.call(call.StatusNotification(
                connector_id=1, error_code="NoError", status="Available"))
            dt = await cp.call(call.DataTransfer(vendor_id="x"))
            assert dt.status == "UnknownVendorId"

    asyncio.run(run())
    assert csms.connections("CP 1") == 1  # percent-decoded charge box id
    assert csms.violations == []


def test_handlers_callerror_noreply_delay(csms):
    csms.set_handler("Authorize",
                     lambda cp_id, p: CallErrorReply("NotSupported", "no"))
    csms.set_handler("StatusNotification", lambda cp_id, p: NoReply())
    csms.set_handler("Heartbeat", lambda cp_id, p: Delay(
        0.4, csms.default_reply("Heartbeat", cp_id, p)))

    async def run():
        async with charger(csms.url, timeout=1) as cp:
            with pytest.raises(NotSupportedError):
                await cp.call(call.Authorize(id_tag="T"), suppress=False)
            with pytest.raises(asyncio.TimeoutError):
                await cp.call(call.StatusNotification(
                    connector_id=1, error_code="NoError", status="Available"))
            t0 = time.monotonic()
            hb = await cp.call(call.Heartbeat())
            assert hb.current_time and time.monotonic() - t0 >= 0.35
            csms.clear_handler("Authorize")
            a = await cp.call(call.Authorize(id_tag="T"))
            assert a.id_tag_info == {"status": "Accepted"}

    asyncio.run(run())
    err = csms.wait_for("Authorize", direction="out")
    assert err.type == 4 and err.payload["errorCode"] == "NotSupported"
    assert csms.calls("StatusNotification", direction="out") == []
    assert csms.violations == []


def test_garbage_and_violations_keep_the_connection(csms):
    async def run():
        async with raw_client(csms.url) as ws:
            bad = [2, "s1", "StatusNotification",
                   {"connectorId": 1, "errorCode": "NoError", "status": "Foo"}]
            assert await rpc(ws, bad) == [3, "s1", {}]
            err = await rpc(ws, [2, "f1", "FooBar", {}])
            assert err[:3] == [4, "f1", "NotImplemented"] and err[4] == {}
            await ws.send("[2, \"x\"")
            await ws.send(b"\x00\x01")
            await ws.send(json.dumps([9, "a"]))
            err = await rpc(ws, [2, "n1", "Heartbeat", None])
            assert err[:3] == [4, "n1", "FormationViolation"]
            hb = await rpc(ws, [2, "h1", "Heartbeat", {}])
            assert hb[:2] == [3, "h1"]
            # answers to our CALLs: an invalid CALLRESULT, a 1.6-invalid code
            fut = csms.call_async("RAW", "GetLocalListVersion", {})
            req = json.loads(await ws.recv())
            await ws.send(json.dumps([3, req[1], {"listVersion": "1"}]))
            assert (await asyncio.wrap_future(fut)) == {"listVersion": "1"}
            fut = csms.call_async("RAW", "ClearCache", {})
            req = json.loads(await ws.recv())
            await ws.send(json.dumps([4, req[1], "FormatViolation", "", {}]))
            with pytest.raises(CallErrorResult) as e:
                await asyncio.wrap_future(fut)
            assert e.value.code == "FormatViolation"
            await ws.send(json.dumps([3, "nobody-asked", {}]))
            await asyncio.sleep(0.1)

    asyncio.run(run())
    v = "\n".join(csms.violations)
    assert len(csms.violations) == 9, v
    for text in ("StatusNotification CALL: status: 'Foo'", "unknown action",
                 "not JSON", "binary frame", "unknown MessageTypeId 9",
                 "wrong element types", "GetLocalListVersion CALLRESULT",
                 "unknown error code 'FormatViolation'", "unknown message id"):
        assert text in v
    assert csms.connections("RAW") == 1
    binary = [m for m in csms.messages if isinstance(m.raw, bytes)]
    assert binary[0].type is None and binary[0].direction == "in"


def test_outgoing_validation_and_send_raw(csms):
    async def run():
        async with raw_client(csms.url) as ws:
            with pytest.raises(ValueError):
                csms.call("RAW", "Reset", {"type": "Medium"})
            with pytest.raises(ValueError):
                csms.call("RAW", "FooBar", {})
            fut = csms.call_async("RAW", "Reset", {"type": "Medium"},
                                  validate_outgoing=False, timeout=0.3)
            assert json.loads(await ws.recv())[3] == {"type": "Medium"}
            with pytest.raises(TimeoutError):
                await asyncio.wrap_future(fut)
            await asyncio.to_thread(csms.send_raw, "RAW",
                                    '[2,"r1","Reset",{"type":"X"}]')
            assert await ws.recv() == '[2,"r1","Reset",{"type":"X"}]'
            await ws.send('[4,"r1","PropertyConstraintViolation","",{}]')
            m = await asyncio.to_thread(
                csms.wait_for, "Reset", pred=lambda m: m.type == 4)
            assert m.payload["errorCode"] == "PropertyConstraintViolation"
            await asyncio.to_thread(csms.send_raw, "RAW", b"\xff")
            assert await ws.recv() == b"\xff"

    asyncio.run(run())
    with pytest.raises(ConnectionError):
        csms.call("RAW", "ClearCache", {})
    assert csms.violations == []


def test_disconnect_and_reconnect(csms):
    async def run():
        async with charger(csms.url) as cp:
            await cp.call(BOOT)
            await asyncio.to_thread(csms.disconnect, "CP1")
            await asyncio.wait_for(cp._connection.wait_closed(), 2)
            assert cp._connection.close_code == 1000
        await asyncio.to_thread(csms.wait_disconnected, "CP1")
        async with charger(csms.url):
            await asyncio.to_thread(csms.wait_connected, "CP1", 5, 2)
            assert csms.chargers() == ["CP1"]
            # a second connection of the same id replaces the first
            async with charger(csms.url):
                await asyncio.to_thread(csms.wait_connected, "CP1", 5, 3)
            await asyncio.to_thread(csms.wait_disconnected, "CP1")

    asyncio.run(run())
    assert csms.connections("CP1") == 3
    assert [s for _, s in csms.attempts("CP1")] == [101, 101, 101]


def test_basic_auth_and_http_status(csms):
    csms.passwords = {"CP1": "s3cret"}

    def basic(user, pwd):
        tok = base64.b64encode(("%s:%s" % (user, pwd)).encode()).decode()
        return {"Authorization": "Basic " + tok}

    async def run():
        for headers in ({}, basic("CP1", "wrong")):
            with pytest.raises(InvalidStatus) as e:
                async with charger(csms.url, additional_headers=headers):
                    pass
            assert e.value.response.status_code == 401
        async with charger(csms.url, additional_headers=basic("CP1", "s3cret")):
            pass
        async with charger(csms.url, "OTHER"):  # no password configured
            pass
        with pytest.raises(InvalidStatus) as e:
            async with connect(csms.url.rsplit("/", 1)[0] + "/wrong/CP1"):
                pass
        assert e.value.response.status_code == 404
        csms.http_status = 404
        with pytest.raises(InvalidStatus) as e:
            async with charger(csms.url, "OTHER"):
                pass
        assert e.value.response.status_code == 404

    asyncio.run(run())
    assert [s for _, s in csms.attempts("CP1")] == [401, 401, 101]
    assert [s for _, s in csms.attempts("OTHER")] == [101, 404]
    assert csms.last_headers("CP1")["Authorization"].startswith("Basic ")
    assert csms.connections("CP1") == 1


def test_subprotocol_not_agreed(csms):
    csms.agree_subprotocol = False

    async def run():
        async with raw_client(csms.url) as ws:
            assert ws.subprotocol is None
        csms.agree_subprotocol = True
        async with raw_client(csms.url) as ws:
            assert ws.subprotocol == "ocpp1.6"

    asyncio.run(run())


def test_pings_withheld_then_answered(csms):
    csms.answer_pings = False

    async def run():
        async with raw_client(csms.url) as ws:
            await asyncio.to_thread(csms.wait_connected, "RAW")
            pong = await ws.ping()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(pong), 2)
            csms.answer_pings = True
            await asyncio.wait_for(await ws.ping(), 2)
            assert await asyncio.to_thread(csms.ping, "RAW") < 2

    asyncio.run(run())
    assert csms.pings("RAW") == 2


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def test_tls(tmp_path):
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=cert)

    async def run(url):
        async with charger(url, ssl=client_ctx) as cp:
            assert (await cp.call(BOOT)).status == "Accepted"

    with BenchCSMS(ssl_context=server_ctx, log=print) as c:
        assert c.url.startswith("wss://127.0.0.1:")
        asyncio.run(run(c.url))
        assert c.violations == []


def test_schema_errors_helper():
    assert schema_errors("Heartbeat", False, {}) == []
    assert schema_errors("FooBar", False, {}) is None
    ok = {"connectorId": 1, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z",
                                             "sampledValue": [{"value": "1"}]}]}
    assert schema_errors("MeterValues", False, ok) == []
    ok["meterValue"][0]["timestamp"] = "2026-01-01 00:00"
    assert "timestamp" in schema_errors("MeterValues", False, ok)[0]
    profile = {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative", "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 21.4}]}}}
    assert schema_errors("SetChargingProfile", False, profile) == []


def _http(port, path, body=None):
    req = urllib.request.Request(
        "http://127.0.0.1:%d%s" % (port, path),
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_cli_serve_http_endpoint_and_call():
    proc = subprocess.Popen(
        [sys.executable, CSMS_CLI, "--port", "0", "--http-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ws_url = http_port = None
        while ws_url is None or http_port is None:
            line = proc.stdout.readline()
            assert line, "csms exited"
            if "OCPP endpoint " in line:
                ws_url = line.split("OCPP endpoint ")[1].split()[0]
            if "control endpoint " in line:
                http_port = int(line.rsplit(":", 1)[1])

        async def run():
            async with charger(ws_url) as cp:
                await cp.call(BOOT)
                st, ids = await asyncio.to_thread(_http, http_port, "/chargers")
                assert (st, ids) == (200, ["CP1"])
                st, res = await asyncio.to_thread(
                    _http, http_port, "/call/CP1",
                    {"action": "Reset", "payload": {"type": "Hard"}})
                assert (st, res) == (200, {"result": {"status": "Accepted"}})
                p = await asyncio.to_thread(subprocess.run, [
                    sys.executable, CSMS_CLI, "call", "--http-port",
                    str(http_port), "CP1", "Reset", '{"type": "Soft"}'],
                    capture_output=True, text=True, timeout=20)
                assert p.returncode == 0, p.stderr
                assert json.loads(p.stdout) == {"status": "Accepted"}
                st, res = await asyncio.to_thread(
                    _http, http_port, "/call/NOPE", {"action": "ClearCache"})
                assert st == 404 and "not connected" in res["error"]
                st, res = await asyncio.to_thread(
                    _http, http_port, "/call/CP1", {"action": "Reset",
                                                    "payload": {"type": "M"}})
                assert st == 400

        asyncio.run(run())
        st, msgs = _http(http_port, "/messages?after=2")
        assert st == 200
        assert [(m["action"], m["direction"]) for m in msgs] == [
            ("Reset", "out"), ("Reset", "in")] * 2
        out = proc.stdout.readline()
        while "BootNotification" not in out:
            out = proc.stdout.readline()
        assert "CP1 -> BootNotification {" in out
    finally:
        proc.terminate()
        proc.wait(10)
