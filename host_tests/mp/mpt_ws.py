# Unit tests of mpocpp/protocol/ws.py inside MicroPython: the frame codec and the
# handshake, driven through in-memory streams (ws_fake.Pipe).
# heap: 4M
import asyncio

from mpocpp.util import log
from mpocpp.protocol.ws import WebSocket, WsError
from mpocpp.protocol.handshake import parse_url
from fakes import fragmented_heap
from ws_fake import Pipe, accept, close_frame, frame, parse, request_headers, server

log.level = 3  # keep the test output to errors


def attached(data=b"", max_message=8192, **kw):
    ws = WebSocket(max_message=max_message)
    p = Pipe(data, **kw)
    ws.attach(p, p)
    return ws, p


def text(n):
    # n bytes of ASCII with some structure (catches shifted masks)
    s = "0123456789abcdefghijklmnopqrstuvwxyz"
    return (s * (n // len(s) + 1))[:n]


async def test_send_header_forms_and_masking():
    ws, p = attached()
    sizes = (0, 1, 3, 4, 5, 125, 126, 1023, 1024, 1025, 2051, 65535, 65536, 70001)
    for n in sizes:
        await ws.send(text(n))
    await ws.send("é€" * 50)  # UTF-8: 250 bytes
    frames = parse(p.out)
    assert len(frames) == len(sizes) + 1
    keys = set()
    for (fin, op, payload, hl, key), n in zip(frames, sizes):
        assert fin and op == 1
        assert payload == text(n).encode(), n
        assert hl == (6 if n < 126 else 8 if n < 65536 else 14), (n, hl)
        keys.add(key)
    assert frames[-1][2] == ("é€" * 50).encode()
    assert len(keys) >= len(sizes) - 1  # a fresh key per frame


async def test_recv_lengths_partial_reads():
    sizes = (0, 1, 125, 126, 127, 65535, 65536, 69999)
    data = b"".join(frame(1, text(n)) for n in sizes)
    ws, p = attached(data, max_message=70000, step=777)
    for n in sizes:
        assert await ws.recv() == text(n), n
    assert await ws.recv() is None  # EOF
    assert not ws.open


async def test_fragments_with_control_frames_between():
    data = (frame(1, "ab", fin=False) + frame(9, "p1") + frame(0, "cd", fin=False)
            + frame(10, "x") + frame(0, "", fin=False) + frame(0, "ef")
            + frame(1, "next"))
    ws, p = attached(data, step=3)
    ws.last_pong_ms -= 5000
    before = ws.last_pong_ms
    assert await ws.recv() == "abcdef"
    assert ws.last_pong_ms != before
    assert await ws.recv() == "next"
    f = parse(p.out)
    assert [(x[1], x[2]) for x in f] == [(10, b"p1")]  # PONG with the PING payload


async def test_ping_answered_and_our_ping():
    ws, p = attached(frame(9, "") + frame(9, b"\x00\xff" * 60) + frame(1, "m"))
    assert await ws.recv() == "m"
    await ws.ping(b"hb")
    f = parse(p.out)
    assert [(x[1], x[2]) for x in f] == [(10, b""), (10, b"\x00\xff" * 60), (9, b"hb")]
    try:
        await ws.ping(b"x" * 126)
        assert False
    except WsError:
        pass


async def test_message_too_long_closes_1009():
    # single frame, then a fragmented message that grows over the limit
    for data in (frame(1, text(300)),
                 frame(1, text(150), fin=False) + frame(0, text(100))):
        ws, p = attached(data + frame(1, "ignored") + close_frame(1009), max_message=200)
        assert await ws.recv() is None
        assert ws.close_code == 1009 and not ws.open
        f = parse(p.out)
        assert [(x[1], x[2]) for x in f] == [(8, b"\x03\xf1")]
        assert p.pos == len(p.data)  # read on up to the server's CLOSE
        assert p.closed
        assert await ws.recv() is None


async def test_1009_without_answer_gives_up():
    # 1009 with no CLOSE from the server: bounded wait (EOF here), then drop.
    ws, p = attached(frame(1, text(1000)), max_message=200)
    assert await ws.recv() is None
    assert ws.close_code == 1009 and p.closed


async def test_binary_skipped():
    data = (frame(2, b"\x01" * 500) + frame(2, b"a", fin=False) + frame(9, "p")
            + frame(0, b"b" * 300) + frame(1, "after"))
    ws, p = attached(data, max_message=200)
    assert await ws.recv() == "after"
    assert ws.open


async def test_invalid_utf8_skipped():
    data = (
        frame(1, b"\xff\xfe") + frame(1, b"ok \xc3", fin=False) + frame(0, b"(") + frame(1, "good")
    )
    ws, p = attached(data)
    assert await ws.recv() == "good"
    assert ws.open
    assert p.out == b""  # no close


async def test_protocol_errors_close_1002():
    cases = (
        frame(1, "x", mask=b"\x01\x02\x03\x04"),  # masked server frame
        frame(1, "x", rsv=0x40),  # RSV1 without an extension
        frame(3, "x"),  # reserved data opcode
        frame(11, "x"),  # reserved control opcode
        frame(0, "x"),  # continuation without a start
        frame(9, "x", fin=False),  # fragmented control frame
        frame(9, b"x" * 126),  # control frame too long
        frame(1, "a", fin=False) + frame(1, "b"),  # new message inside one
    )
    for data in cases:
        ws, p = attached(data + frame(1, "never"))
        assert await ws.recv() is None, data
        assert ws.close_code == 1002 and not ws.open and p.closed
        f = parse(p.out)
        assert [(x[1], x[2]) for x in f] == [(8, b"\x03\xea")], data


async def test_peer_close_echoed():
    ws, p = attached(frame(1, "a") + close_frame(1001, b"going away") + frame(1, "late"))
    assert await ws.recv() == "a"
    assert await ws.recv() is None
    assert ws.close_code == 1001 and not ws.open and p.closed
    assert [(x[1], x[2]) for x in parse(p.out)] == [(8, b"\x03\xe9")]
    assert await ws.recv() is None
    try:
        await ws.send("x")
        assert False
    except WsError:
        pass
    # a CLOSE without a code: 1005, answered with an empty CLOSE
    ws, p = attached(frame(8))
    assert await ws.recv() is None
    assert ws.close_code == 1005
    assert [(x[1], x[2]) for x in parse(p.out)] == [(8, b"")]


async def test_eof_and_abort():
    ws, p = attached(frame(1, "abc")[:3])  # EOF in the middle of a frame
    assert await ws.recv() is None and not ws.open
    # abort() wakes a recv() blocked in another task
    ws, p = attached(eof=False)
    t = asyncio.create_task(ws.recv())
    await asyncio.sleep_ms(5)
    ws.abort()
    assert await asyncio.wait_for_ms(t, 500) is None
    assert p.closed and not ws.open


async def test_close_handshake():
    ws, p = attached(frame(1, "pending") + close_frame(1000), eof=False)
    await ws.close()
    assert ws.close_code == 1000 and not ws.open and p.closed
    assert [(x[1], x[2]) for x in parse(p.out)] == [(8, b"\x03\xe8")]
    # no answer: gives up after timeout_ms
    ws, p = attached(eof=False)
    await ws.close(4000, timeout_ms=50)
    assert ws.close_code == 4000 and p.closed
    await ws.close()  # closing twice is harmless


async def test_close_while_recv_running():
    ws, p = attached(eof=False)
    t = asyncio.create_task(ws.recv())
    await asyncio.sleep_ms(5)
    c = asyncio.create_task(ws.close(timeout_ms=1000))
    await asyncio.sleep_ms(5)
    assert [(x[1], x[2]) for x in parse(p.out)] == [(8, b"\x03\xe8")]
    p.feed(close_frame(1000))
    assert await asyncio.wait_for_ms(t, 500) is None
    await asyncio.wait_for_ms(c, 500)
    assert not ws.open and ws.close_code == 1000
    assert len(parse(p.out)) == 1  # the server's CLOSE is not answered again


async def test_concurrent_sends_do_not_interleave():
    ws, p = attached()
    a, b = text(5000), "X" * 4000
    await asyncio.gather(ws.send(a), ws.send(b), ws.ping(b"p"))
    f = parse(p.out)
    assert sorted(x[2] for x in f) == sorted([a.encode(), b.encode(), b"p"])
    assert p.drains > 3  # the chunked send really yielded in between


async def test_cancelled_recv_between_frames_keeps_connection():
    ws, p = attached(eof=False)
    try:
        await asyncio.wait_for_ms(ws.recv(), 20)
        assert False
    except asyncio.TimeoutError:
        pass
    assert ws.open
    p.feed(frame(1, "later"))
    assert await ws.recv() == "later"


def opener_for(pipe, seen=None):
    async def opener(host, port, ssl=None, server_hostname=None):
        if seen is not None:
            seen.append((host, port, ssl, server_hostname))
        return pipe, pipe
    return opener


async def test_handshake_request_and_success():
    p = Pipe(eof=False)
    p.on_write = server(after=frame(1, "first"))
    seen = []
    ws = WebSocket()
    await ws.connect("ws://csms.example:9000/ocpp/CP%201", auth=("CP 1", b"s3cr\x00t"),
                     opener=opener_for(p, seen))
    assert ws.open and ws.close_code is None
    assert seen == [("csms.example", 9000, None, None)]
    line, h = request_headers(p.out)
    assert line == "GET /ocpp/CP%201 HTTP/1.1"
    assert h["host"] == "csms.example:9000"
    assert h["upgrade"] == "websocket" and h["connection"] == "Upgrade"
    assert h["sec-websocket-version"] == "13"
    assert h["sec-websocket-protocol"] == "ocpp1.6"
    assert h["authorization"] == "Basic Q1AgMTpzM2NyAHQ="  # base64(b"CP 1:s3cr\0t")
    # a frame sent right behind the 101 answer is not lost
    assert await ws.recv() == "first"


async def test_handshake_tls_args():
    p = Pipe(eof=False)
    p.on_write = server()
    seen = []
    ctx = object()
    ws = WebSocket()
    await ws.connect("wss://Host.example/x", ssl=ctx, opener=opener_for(p, seen))
    assert seen == [("Host.example", 443, ctx, "Host.example")]
    assert request_headers(p.out)[1]["host"] == "Host.example"


async def expect_error(status=None, url="ws://h/cp", **kw):
    ws = WebSocket()
    try:
        await ws.connect(url, **kw)
    except WsError as e:
        assert e.status == status, (e, e.status)
        assert not ws.open
        return str(e)
    raise AssertionError("no WsError")


async def test_handshake_failures():
    for status in (401, 404, 500, 200):
        p = Pipe(eof=False, on_write=server(status=status))
        await expect_error(status, opener=opener_for(p))
        assert p.closed
    bad = (server(accept_fn=lambda k: accept(k + b"x")),  # wrong accept
           server(protocol=None),  # subprotocol not agreed
           server(protocol="ocpp2.0.1"),  # another subprotocol
           server(extra=b"X: " + b"y" * 3000 + b"\r\n"),  # header line too long
           server(extra=b"X: y\r\n" * 100),  # too many headers
           server(extra=b"garbage\r\n"))
    for hook in bad:
        p = Pipe(eof=False, on_write=hook)
        await expect_error(opener=opener_for(p))
        assert p.closed
    # garbage status line, EOF during handshake
    p = Pipe(b"SSH-2.0-OpenSSH\r\n\r\n")
    await expect_error(opener=opener_for(p))
    await expect_error(opener=opener_for(Pipe()))


async def test_connect_errors():
    async def down(host, port, ssl=None, server_hostname=None):
        raise OSError(113)
    assert "OSError" in await expect_error(opener=down)
    # server that never answers: timeout
    p = Pipe(eof=False)
    assert "timeout" in await expect_error(opener=opener_for(p), timeout_ms=50)
    assert p.closed
    await expect_error(url="wss://h/cp", opener=opener_for(Pipe()))  # no ssl context
    for url in ("http://h/", "ws://", "ws://h:x/", "ws://h:70000/", "ws://u@h/",
                "ws://h/a b", "ws://h/\r\nX: y", None):
        await expect_error(url=url, opener=opener_for(Pipe()))


def test_parse_url():
    assert parse_url("ws://h") == (False, "h", 80, "h", "/")
    assert parse_url("WSS://h.example/a/b?c") == (True, "h.example", 443, "h.example", "/a/b?c")
    assert parse_url("ws://10.0.0.1:8180/steve/websocket/CentralSystemService/CP1") == (
        False, "10.0.0.1", 8180, "10.0.0.1:8180", "/steve/websocket/CentralSystemService/CP1")
    assert parse_url("ws://[::1]:9000/x") == (False, "::1", 9000, "[::1]:9000", "/x")
    assert parse_url("wss://[fe80::1]/") == (True, "fe80::1", 443, "[fe80::1]", "/")


async def test_bad_send_argument_keeps_connection():
    ws, p = attached()
    try:
        await ws.send(123)
        assert False
    except WsError:
        pass
    assert ws.open and p.out == b""
    await ws.send(b"bytes ok")
    assert parse(p.out)[0][2] == b"bytes ok"


async def test_cancelled_recv_mid_frame_drops_connection():
    ws, p = attached(frame(1, "abcdef")[:4], eof=False)  # header and half a payload
    try:
        await asyncio.wait_for_ms(ws.recv(), 20)
        assert False
    except asyncio.TimeoutError:
        pass
    assert not ws.open and p.closed  # the framing is lost: no way to resume


async def test_large_message_spilled_to_flash_in_pieces():
    # Over the buffer: the message goes to the spill file as it arrives
    # (fragments and a PING in between), and comes back as a Spilled; one
    # that fits stays a str; over max_message: 1009.
    import os
    from mpocpp.protocol.ws import Spilled
    path = "/tmp/mpt_ws_spill_%d" % int.from_bytes(os.urandom(3), "big")
    body = text(10000)
    data = (frame(1, body[:3000], fin=False) + frame(9, "p")
            + frame(0, body[3000:7001], fin=False) + frame(0, body[7001:]) + frame(1, "small"))
    ws = WebSocket(max_message=12000, buffer=1024, spill=path)
    p = Pipe(data, step=333)
    ws.attach(p, p)
    m = await ws.recv()
    assert isinstance(m, Spilled) and m.path == path and m.size == 10000
    with open(path) as f:
        assert f.read() == body
    assert await ws.recv() == "small"
    os.remove(path)
    ws = WebSocket(max_message=12000, buffer=1024, spill=path)
    p = Pipe(frame(1, text(13000)) + close_frame(1009))
    ws.attach(p, p)
    assert await ws.recv() is None and ws.close_code == 1009


async def test_no_block_for_the_text_spills_it():
    # A fragmented heap with no block for the message's text: the message
    # goes to the spill file instead of the connection being lost.
    import gc
    import os
    from mpocpp.protocol.ws import Spilled
    path = "/tmp/mpt_ws_nomem_%d" % int.from_bytes(os.urandom(3), "big")
    body = text(3000)
    ws = WebSocket(max_message=12000, buffer=4096, spill=path)
    p = Pipe(frame(1, body) + frame(1, "after"), step=200)  # (the fake copies that much)
    ws.attach(p, p)
    gc.collect()
    hog = []
    try:
        while True:  # the heap in 256-byte pieces, every other one freed
            hog.append(bytearray(240))
    except MemoryError:
        pass
    for i in range(0, len(hog), 2):
        hog[i] = None
    gc.collect()
    try:
        m = await ws.recv()
    finally:
        hog = None
        gc.collect()
    assert isinstance(m, Spilled) and m.size == 3000, m
    with open(path) as f:
        assert f.read() == body
    os.remove(path)
    assert ws.open and await ws.recv() == "after"


async def test_buffer_without_spill_closes_1009():
    ws = WebSocket(max_message=65536, buffer=1024)
    p = Pipe(frame(1, text(2000)) + close_frame(1009))
    ws.attach(p, p)
    assert await ws.recv() is None and ws.close_code == 1009


class _Sink:
    # A writer into a buffer allocated up front: a write allocates nothing.
    def __init__(self, n):
        self.buf = bytearray(n)
        self.n = 0

    def write(self, b):
        k = len(b)
        self.buf[self.n:self.n + k] = b
        self.n += k

    async def drain(self):
        pass


async def test_send_in_a_fragmented_heap_masks_in_small_pieces():
    # Every free block smaller than a masking chunk's big ints (1 KiB each):
    # the frame still goes out whole and right, masked 64 bytes at a time.
    import gc
    ws = WebSocket()
    sink = _Sink(8192)
    ws.attach(Pipe(eof=False), sink)
    msg = text(3001)
    kept = fragmented_heap(200)
    try:
        await ws.send(msg)
    finally:
        del kept  # the heap given back
        gc.collect()
    frames = parse(sink.buf[:sink.n])
    assert len(frames) == 1 and frames[0][2] == msg.encode()
    for n in (0, 1, 63, 64, 65, 130):  # 64-byte masking alone, every tail length
        key = bytes((1, 2, 3, n & 255))
        src = text(n).encode()
        dst = bytearray(n)
        pat = int.from_bytes(key * 16, "big")
        WebSocket._mask(memoryview(src), pat, 64, memoryview(dst))
        assert bytes(dst) == bytes(b ^ key[i & 3] for i, b in enumerate(src)), n
