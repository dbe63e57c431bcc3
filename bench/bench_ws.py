"""Benchmark of the WebSocket client (mpocpp/protocol/ws.py).

usage: .venv/bin/python bench/bench_ws.py [--quick]

1. Frame codec inside MicroPython (unix port) over in-memory streams: time
   and heap allocation per sent (masked) and received message by size, and
   the RAM a WebSocket(8192) holds.
2. Loopback against a CPython `websockets` echo server on 127.0.0.1: connect
   time (ws and wss with the test CA, ECDSA P-256) and echo round trips.
Prints a Markdown section.
"""
import asyncio
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

import certs  # noqa: E402
from harness import MICROPYTHON, mp_env  # noqa: E402

SIZES = (100, 1024, 8192, 61440)
HEAP = "1M"  # GC passes scale with the heap: keep it small, near the boards

# Runs inside MicroPython; CFG (a dict) is prepended.
MP_CODEC = r"""
import asyncio, gc, time
from mpocpp.util import log
from mpocpp.protocol.ws import WebSocket
log.level = 3


class Sink:
    # Writer that keeps nothing; reader that replays one byte string.
    def __init__(self, data=b""):
        self.data = memoryview(data)
        self.pos = 0
        self.n = 0

    def write(self, b):
        self.n += len(b)

    async def drain(self):
        pass

    async def readinto(self, buf):
        # the one frame over and over
        n = min(len(buf), len(self.data) - self.pos)
        buf[:n] = self.data[self.pos:self.pos + n]
        self.pos = (self.pos + n) % len(self.data)
        return n

    def close(self):
        pass


def frame(n):
    h = bytearray([0x81])
    if n < 126:
        h.append(n)
    elif n < 65536:
        h.append(126)
        h += n.to_bytes(2, "big")
    else:
        h.append(127)
        h += n.to_bytes(8, "big")
    return bytes(h) + b"x" * n


def measure(fn, reps, size):
    # time with the GC on (its cost included); allocation with it off
    gc.collect()
    t0 = time.ticks_us()
    for _ in range(reps):
        fn()
    dt = time.ticks_diff(time.ticks_us(), t0)
    k = max(1, min(10, 300000 // (4 * size + 2000)))  # garbage must fit the heap
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    for _ in range(k):
        fn()
    da = gc.mem_alloc() - a0
    gc.enable()
    gc.collect()
    return dt / reps, da // k


async def main():
    res = {}
    gc.collect()
    a0 = gc.mem_alloc()
    ws = WebSocket(max_message=8192)
    res["object"] = gc.mem_alloc() - a0
    big = WebSocket(max_message=65536)
    for n in CFG["sizes"]:
        reps = CFG["reps"] if n <= 8192 else CFG["reps"] // 10
        text = "x" * n
        s = Sink()
        big.attach(s, s)
        # time and allocation of whole coroutine runs, driven by hand so no
        # event-loop work is counted
        def send():
            c = big.send(text)
            try:
                c.send(None)
            except StopIteration:
                pass
        t_send, a_send = measure(send, reps, n)
        r = Sink(frame(n))
        big.attach(r, r)
        def recv():
            c = big.recv()
            try:
                c.send(None)
            except StopIteration as e:
                assert len(e.value) == n
        t_recv, a_recv = measure(recv, reps, n)
        res[str(n)] = [t_send, a_send, t_recv, a_recv]
    print("@" + json.dumps(res))

import json
asyncio.run(main())
"""

MP_LOOP = r"""
import asyncio, time
from mpocpp.util import log
from mpocpp.protocol.ws import WebSocket
log.level = 3


_late = [0]


async def ticker():
    # A 20 ms periodic task, like the meter's tick: how late does it run
    # while connects (and TLS handshakes) go on in the same loop?
    t = time.ticks_ms()
    while True:
        t = time.ticks_add(t, 20)
        await asyncio.sleep_ms(max(0, time.ticks_diff(t, time.ticks_ms())))
        late = time.ticks_diff(time.ticks_ms(), t)
        if late > _late[0]:
            _late[0] = late
        if late > 20:
            t = time.ticks_ms()


async def main():
    res = {}
    ctx = None
    tick = asyncio.create_task(ticker())
    if CFG.get("ca"):
        import tls
        ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        with open(CFG["ca"], "rb") as f:
            ctx.load_verify_locations(f.read())
    ws = WebSocket(max_message=8192)
    times = []
    for _ in range(CFG["connects"]):
        t0 = time.ticks_us()
        await ws.connect(CFG["url"], ssl=ctx)
        times.append(time.ticks_diff(time.ticks_us(), t0))
        await ws.close()
    times.sort()
    res["connect_us"] = times[len(times) // 2]
    res["loop_late_ms"] = _late[0]
    tick.cancel()
    await ws.connect(CFG["url"], ssl=ctx)
    msg = "m" * 100
    t0 = time.ticks_us()
    for _ in range(CFG["echoes"]):
        await ws.send(msg)
        assert await ws.recv() == msg
    res["echo_us"] = time.ticks_diff(time.ticks_us(), t0) / CFG["echoes"]
    await ws.close()
    print("@" + json.dumps(res))

import json
asyncio.run(main())
"""


def run_mp(script, cfg):
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write("CFG = %r\n" % cfg + script)
        path = f.name
    try:
        p = subprocess.run([MICROPYTHON, "-X", "heapsize=" + HEAP, path], env=mp_env(),
                           capture_output=True, text=True, timeout=300)
    finally:
        os.unlink(path)
    if p.returncode != 0:
        raise SystemExit(p.stdout + p.stderr)
    return json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("@")][-1][1:])


class EchoServer:
    def __init__(self, pki):
        from websockets.asyncio.server import serve
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()

        async def echo(ws):
            async for m in ws:
                await ws.send(m)

        async def main():
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(pki.server_cert, pki.server_key)
            kw = dict(subprotocols=["ocpp1.6"], ping_interval=None)
            self.stop = asyncio.Event()
            async with serve(echo, "127.0.0.1", 0, **kw) as a, \
                    serve(echo, "127.0.0.1", 0, ssl=ctx, **kw) as b:
                self.port = a.sockets[0].getsockname()[1]
                self.tls_port = b.sockets[0].getsockname()[1]
                self.ready.set()
                await self.stop.wait()

        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(main()),
                                       daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def close(self):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(5)


def main():
    quick = "--quick" in sys.argv
    codec = run_mp(MP_CODEC, {"sizes": SIZES, "reps": 100 if quick else 1000})
    pki = certs.pki()
    srv = EchoServer(pki)
    n = {"connects": 5 if quick else 21, "echoes": 200 if quick else 2000}
    plain = run_mp(MP_LOOP, dict(n, url="ws://127.0.0.1:%d/CP1" % srv.port))
    tls = run_mp(MP_LOOP, dict(n, url="wss://127.0.0.1:%d/CP1" % srv.tls_port,
                               ca=pki.ca_der_path))
    srv.close()

    print("## WebSocket client (mpocpp/protocol/ws.py)\n")
    print(
        "MicroPython unix port, -X heapsize=%s (64-bit: objects take about 1.5-2x the RAM of the "
        "32-bit boards), %s run.\n" % (HEAP, "quick" if quick else "full")
    )
    print("In-memory streams; time per message with the GC running, allocation per "
          "message with it off (includes the coroutine objects of each call).\n")
    print("| message | send (mask + frame) | send alloc | recv (parse + decode) | recv alloc |")
    print("|---:|---:|---:|---:|---:|")
    for size in SIZES:
        ts, as_, tr, ar = codec[str(size)]
        print("| %d B | %.1f us (%.1f us/KiB) | %d B | %.1f us (%.1f us/KiB) | %d B |" % (
            size, ts, ts * 1024 / size, as_, tr, tr * 1024 / size, ar))
    print("\n| figure | value |")
    print("|---|---:|")
    print("| heap held by WebSocket(max_message=8192) | %d B |" % codec["object"])
    print("| connect, ws:// (median, TCP + upgrade) | %.1f ms |" % (plain["connect_us"] / 1000))
    print("| connect, wss:// (median, + TLS handshake, ECDSA P-256 chain verified) | %.1f ms |" % (
        tls["connect_us"] / 1000))
    print(
        "| worst delay of a 20 ms periodic task during the wss:// connects (handshakes in "
        "the loop) | %d ms |"
        % tls["loop_late_ms"]
    )
    print("| echo round trip 100 B, ws:// | %.0f us |" % plain["echo_us"])
    print("| echo round trip 100 B, wss:// | %.0f us |" % tls["echo_us"])


if __name__ == "__main__":
    main()
