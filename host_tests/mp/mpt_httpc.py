# httpc and ftpc inside MicroPython against small asyncio servers on
# loopback: URL parsing, Content-Length / chunked / until-close bodies,
# redirects, error statuses, cut bodies, multipart POST, FTP RETR / STOR and
# a refused login.
import asyncio
import os
import random
from mpocpp.transfer import http as httpc
from mpocpp.transfer import ftp as ftpc
from mpocpp.transfer.http import HttpError
from mpocpp.transfer.ftp import FtpError

TMP = "/tmp/mpt_httpc_%d" % random.getrandbits(24)


class Net:
    # board.net for tests: plain asyncio connections, counted.
    def __init__(self):
        self.opened = []

    async def open_connection(self, host, port, ssl=None, server_hostname=None):
        self.opened.append((host, port))
        return await asyncio.open_connection(host, port)


class Sink:
    def __init__(self):
        self.data = bytearray()

    def write(self, mv):
        self.data.extend(mv)


class Server:
    # Reads one request (headers, then Content-Length bytes), records it and
    # answers with the next canned response.
    def __init__(self, responses):
        self.responses = list(responses)
        self.requests = []
        self.port = None
        self.srv = None

    async def start(self):
        for _ in range(20):
            self.port = 30000 + random.getrandbits(14)
            try:
                self.srv = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
                return self
            except OSError:
                pass
        raise OSError("no free port")

    async def _handle(self, r, w):
        head = b""
        while True:
            line = await r.readline()
            head += line
            if line in (b"\r\n", b""):
                break
        n = 0
        for l in head.split(b"\r\n"):
            if l.lower().startswith(b"content-length:"):
                n = int(l[15:])
        body = b""
        while len(body) < n:
            b = await r.read(n - len(body))
            if not b:
                break
            body += b
        self.requests.append((head, body))
        resp = self.responses.pop(0)
        stall = 0
        if isinstance(resp, tuple):  # (bytes, ms to stall before closing)
            resp, stall = resp
        w.write(resp)
        await w.drain()
        await asyncio.sleep_ms(stall)
        w.close()
        await w.wait_closed()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        self.srv.close()


def ok(body, extra=b""):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def test_split_url():
    s = httpc.split_url
    assert s("http://h/x") == ("http", "h", 80, "/x", None, None)
    assert s("HTTPS://h:8443") == ("https", "h", 8443, "/", None, None)
    assert s("ftp://u:p%40ss@10.0.0.1:2121/a/b.img") == (
        "ftp",
        "10.0.0.1",
        2121,
        "/a/b.img",
        "u",
        "p@ss",
    )
    assert s("ftp://anon@h/") == ("ftp", "h", 21, "/", "anon", None)
    assert s("http://[::1]:81/p#frag") == ("http", "::1", 81, "/p", None, None)
    for bad in ("sftp://h/x", "h/x", "http://", "http://h:0/", "http://h:x/", "http://h /", 5, "ftps://h/"):
        try:
            s(bad)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % (bad,))


async def test_get_bodies_and_redirect():
    data = bytes(range(256)) * 40  # 10 KiB: several buffer fills
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + \
        b"".join(b"%x;ext=1\r\n%s\r\n" % (len(data[i:i + 3000]), data[i:i + 3000])
                 for i in range(0, len(data), 3000)) + b"0\r\nX-Trailer: 1\r\n\r\n"
    srv = await Server([
        b"HTTP/1.1 302 Found\r\nLocation: /real\r\nContent-Length: 0\r\n\r\n", ok(data),
        chunked,
        b"HTTP/1.0 200 OK\r\n\r\n" + data,  # until close
    ]).start()
    try:
        net = Net()
        buf = bytearray(1024)
        for _ in range(3):
            sink = Sink()
            n = await httpc.get(srv.url("/fw"), sink, net, buf, timeout_ms=3000)
            assert n == len(data) and bytes(sink.data) == data
        assert srv.requests[0][0].startswith(
            b"GET /fw HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % srv.port
        )
        assert srv.requests[1][0].startswith(b"GET /real ")
    finally:
        srv.close()


async def test_get_errors():
    srv = await Server([
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 50,
        b"garbage\r\n\r\n",
    ] + [b"HTTP/1.1 301 Moved\r\nLocation: /again\r\n\r\n"] * 4).start()
    try:
        net = Net()
        buf = bytearray(256)
        for want in ("HTTP 404", "body cut", "bad status line", "too many redirects"):
            try:
                await httpc.get(srv.url("/x"), Sink(), net, buf, timeout_ms=3000)
            except HttpError as e:
                assert want in str(e), str(e)
                if want == "HTTP 404":
                    assert e.status == 404
                continue
            raise AssertionError("no error for " + want)
        try:  # nobody listening
            await httpc.get("http://127.0.0.1:1/x", Sink(), net, buf, timeout_ms=3000)
            raise AssertionError("connected to port 1")
        except OSError:
            pass
    finally:
        srv.close()


async def test_post_multipart():
    path = TMP + ".txt"
    content = b"line\r\n--not-a-boundary\r\n" * 300
    with open(path, "wb") as f:
        f.write(content)
    srv = await Server([ok(b"thanks"), b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"]).start()
    try:
        net = Net()
        buf = bytearray(512)
        assert (
            await httpc.post_file(srv.url("/up"), path, "diag.txt", net, buf, timeout_ms=3000)
            == 200
        )
        head, body = srv.requests[0]
        assert head.startswith(b"POST /up HTTP/1.1\r\n")
        i = head.find(b"boundary=")
        boundary = head[i + 9:head.find(b"\r\n", i)]
        assert body.startswith(b"--" + boundary + b"\r\n")
        assert b'name="file"; filename="diag.txt"' in body
        start = body.find(b"\r\n\r\n") + 4
        assert body[start:start + len(content)] == content
        assert body[start + len(content):] == b"\r\n--" + boundary + b"--\r\n"
        try:
            await httpc.post_file(srv.url("/up"), path, "diag.txt", net, buf, timeout_ms=3000)
            raise AssertionError("500 accepted")
        except HttpError as e:
            assert e.status == 500
    finally:
        srv.close()
        os.remove(path)


class FtpFake:
    # Control connection on one port, the passive data connection on the next.
    def __init__(self, password="pw"):
        self.password = password
        self.files = {"dir/fw.img": bytes(range(200)) * 30}
        self.log = []

    async def start(self):
        for _ in range(20):
            self.port = 30000 + random.getrandbits(14)
            try:
                self.srv = await asyncio.start_server(self._ctl, "127.0.0.1", self.port)
                self.dsrv = await asyncio.start_server(self._data, "127.0.0.1", self.port + 1)
                self.data_ev = asyncio.Event()
                return self
            except OSError:
                pass
        raise OSError("no free port")

    async def _data(self, r, w):
        self.data_rw = (r, w)
        self.data_ev.set()

    async def _ctl(self, r, w):
        async def say(t):
            w.write(t + b"\r\n")
            await w.drain()
        await say(b"220-hello\r\n220 ready")
        while True:
            line = (await r.readline()).strip()
            if not line:
                break
            self.log.append(line)
            verb, _, arg = line.partition(b" ")
            if verb == b"USER":
                await say(b"331 pass")
            elif verb == b"PASS":
                await say(b"230 in" if arg.decode() == self.password else b"530 no")
            elif verb == b"TYPE":
                await say(b"200 ok")
            elif verb == b"PASV":
                p = self.port + 1
                await say(b"227 Entering Passive Mode (127,0,0,1,%d,%d)" % (p >> 8, p & 255))
            elif verb in (b"RETR", b"STOR"):
                await say(b"150 go")
                await self.data_ev.wait()
                self.data_ev.clear()
                dr, dw = self.data_rw
                if verb == b"RETR":
                    dw.write(self.files[arg.decode()])
                    await dw.drain()
                else:
                    got = b""
                    while True:
                        b = await dr.read(4096)
                        if not b:
                            break
                        got += b
                    self.files[arg.decode()] = got
                dw.close()
                await dw.wait_closed()
                await say(b"226 done")
            elif verb == b"QUIT":
                await say(b"221 bye")
                break
            else:
                await say(b"502 no")
        w.close()
        await w.wait_closed()

    def close(self):
        self.srv.close()
        self.dsrv.close()


async def test_ftp_retr_stor_and_refused_login():
    srv = await FtpFake().start()
    try:
        net = Net()
        buf = bytearray(512)
        base = "ftp://me:pw@127.0.0.1:%d/" % srv.port
        sink = Sink()
        n = await ftpc.retr(base + "dir/fw.img", sink, net, buf, 3000)
        assert n == 6000 and bytes(sink.data) == srv.files["dir/fw.img"]
        assert srv.log[:3] == [b"USER me", b"PASS pw", b"TYPE I"]
        path = TMP + ".up"
        with open(path, "wb") as f:
            f.write(b"diagnostics " * 500)
        assert await ftpc.stor(base + "up/d%20x.txt", path, net, buf, 3000) == 6000
        assert srv.files["up/d x.txt"] == b"diagnostics " * 500
        os.remove(path)
        try:
            await ftpc.retr(
                "ftp://me:bad@127.0.0.1:%d/dir/fw.img" % srv.port, Sink(), net, buf, 3000
            )
            raise AssertionError("login accepted")
        except FtpError as e:
            assert e.code == 530 and "login refused" in str(e)
        srv.log = []
        sink = Sink()
        srv.password = "anonymous@"
        await ftpc.retr("ftp://127.0.0.1:%d/dir/fw.img" % srv.port, sink, net, buf, 3000)
        assert srv.log[:2] == [b"USER anonymous", b"PASS anonymous@"]
    finally:
        srv.close()


async def test_stalled_body_times_out():
    # The server stops sending mid-body without closing: the transfer's
    # guard closes the socket after timeout_ms of no progress.
    import time

    srv = await Server(
        [(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000, 3000)]
    ).start()
    try:
        t0 = time.ticks_ms()
        try:
            await httpc.get(srv.url("/slow"), Sink(), Net(), bytearray(1024), timeout_ms=300)
            raise AssertionError("stall not detected")
        except (OSError, HttpError):
            pass
        assert time.ticks_diff(time.ticks_ms(), t0) < 2500
    finally:
        srv.close()
