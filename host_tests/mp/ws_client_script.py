# Drives mpocpp/protocol/ws.py against a real server for host_tests/test_ws.py.
# usage: echo '<json config>' | micropython ws_client_script.py
# (stdin: this unix port dies on an argv element of 256 characters or more)
# config: {"url", "max", "protocol", "auth": [user, password], "ca": der path,
#          "connect_to": address the opener dials instead of the URL host,
#          "timeout": ms, "steps": [[action, args...], ...]}
# Each result is one line "@<json>" on stdout.
import asyncio
import binascii
import hashlib
import json
import sys

from mpocpp.util import log
from mpocpp.protocol.ws import WebSocket, WsError

log.level = int(sys.argv[1]) if len(sys.argv) > 1 else 2


def out(**kw):
    print("@" + json.dumps(kw))


def pattern(n):
    s = "0123456789abcdefghijklmnopqrstuvwxyz"
    return (s * (n // len(s) + 1))[:n]


def digest(m):
    return binascii.hexlify(hashlib.sha1(m.encode()).digest()).decode()


async def main(cfg):
    ws = WebSocket(max_message=cfg.get("max", 8192))
    ssl = None
    if "ca" in cfg:
        import tls
        ssl = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        with open(cfg["ca"], "rb") as f:
            ssl.load_verify_locations(f.read())
    opener = None
    if "connect_to" in cfg:
        addr = cfg["connect_to"]

        async def opener(host, port, ssl=None, server_hostname=None):
            return await asyncio.open_connection(addr, port, ssl=ssl,
                                                 server_hostname=server_hostname)
    auth = cfg.get("auth")
    if auth:
        auth = (auth[0], auth[1].encode())
    try:
        await ws.connect(cfg["url"], protocol=cfg.get("protocol", "ocpp1.6"), auth=auth,
                         ssl=ssl, opener=opener, timeout_ms=cfg.get("timeout", 5000))
    except WsError as e:
        out(error=str(e), status=e.status)
        return
    out(open=ws.open)
    for step in cfg.get("steps", ()):
        a = step[0]
        if a == "send":
            await ws.send(step[1])
        elif a == "send_n":
            await ws.send(pattern(step[1]))
        elif a == "recv":
            out(recv=await ws.recv())
        elif a == "recv_digest":  # large messages: length and sha1
            m = await ws.recv()
            out(len=None if m is None else len(m), sha1=None if m is None else digest(m))
        elif a == "ping":
            ws.last_pong_ms = None  # ticks_ms may not move on a fast loopback
            await ws.ping(step[1].encode())
            try:  # the PONG is read by recv(); no message is expected
                m = await asyncio.wait_for_ms(ws.recv(), step[2])
            except asyncio.TimeoutError:
                m = None
            out(pong=ws.last_pong_ms is not None, recv=m, open=ws.open)
        elif a == "close":
            await ws.close(step[1])
        if a in ("close", "state"):
            out(step=a, open=ws.open, close_code=ws.close_code)


asyncio.run(main(json.loads(sys.stdin.read())))
