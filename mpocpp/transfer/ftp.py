# Minimal passive-mode FTP client (RFC 959) for file transfer: USER/PASS
# from the URL (anonymous by default), TYPE I, PASV, RETR or STOR, QUIT.
# Both connections go through board.net. The URL path is taken relative to
# the login directory (RFC 1738), percent-decoded.
import asyncio
from micropython import const
from mpocpp.transfer import http as httpc

_MAX_REPLY_LINES = const(32)


class FtpError(Exception):
    def __init__(self, msg, code=None):
        super().__init__(msg)
        self.code = code


async def _reply(r, timeout_ms):
    # One reply, multi-line ("123-..." up to "123 ...") -> (code, last line).
    line = await httpc.readline(r, timeout_ms)
    if len(line) < 3:
        raise FtpError("connection closed" if not line else "bad reply")
    code = line[:3]
    if len(line) > 3 and line[3:4] == b"-":
        for _ in range(_MAX_REPLY_LINES):
            line = await httpc.readline(r, timeout_ms)
            if not line:
                raise FtpError("connection closed")
            if line[:3] == code and line[3:4] == b" ":
                break
        else:
            raise FtpError("reply too long")
    try:
        return int(code), line
    except ValueError:
        raise FtpError("bad reply")


async def _cmd(r, w, text, timeout_ms):
    w.write(text.encode() + b"\r\n")
    await asyncio.wait_for_ms(w.drain(), timeout_ms)
    return await _reply(r, timeout_ms)


def _expect(code, line, ok, what):
    if code not in ok:
        raise FtpError("%s: %s" % (what, line.decode().strip()[:80]), code)


def _pasv(line):
    # "227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)" -> (host, port)
    i = line.find(b"(")
    j = line.find(b")", i)
    if i < 0 or j < 0:
        raise FtpError("bad PASV reply")
    try:
        n = [int(x) for x in line[i + 1:j].split(b",")]
    except ValueError:
        raise FtpError("bad PASV reply")
    if len(n) != 6 or max(n) > 255 or min(n) < 0:
        raise FtpError("bad PASV reply")
    return "%d.%d.%d.%d" % (n[0], n[1], n[2], n[3]), n[4] * 256 + n[5]


class _Session:
    def __init__(self, net, host, port, timeout_ms):
        self.net = net
        self.host = host
        self.port = port
        self.t = timeout_ms
        self.r = self.w = None

    async def login(self, user, password):
        self.r, self.w = await httpc.open_conn(self.net, self.host, self.port, None, False, self.t)
        code, line = await _reply(self.r, self.t)
        _expect(code, line, (220,), "greeting")
        code, line = await self.cmd("USER " + (user or "anonymous"))
        if code == 331 or code == 332:
            code, line = await self.cmd("PASS " + (password if password is not None else
                                                   ("anonymous@" if not user else "")))
        _expect(code, line, (230, 202), "login refused")
        code, line = await self.cmd("TYPE I")
        _expect(code, line, (200,), "TYPE I")

    async def cmd(self, text):
        if "\r" in text or "\n" in text:
            raise FtpError("bad characters in command")
        return await _cmd(self.r, self.w, text, self.t)

    async def data(self, verb, path):
        # PASV, connect, then the transfer command: the data streams.
        code, line = await self.cmd("PASV")
        _expect(code, line, (227,), "PASV")
        host, port = _pasv(line)
        if host == "0.0.0.0":
            host = self.host
        dr, dw = await httpc.open_conn(self.net, host, port, None, False, self.t)
        try:
            code, line = await self.cmd(verb + " " + path)
            _expect(code, line, (125, 150), verb)
        except Exception:
            httpc.close(dw)
            raise
        return dr, dw

    async def done(self):
        code, line = await _reply(self.r, self.t)
        _expect(code, line, (226, 250), "transfer")

    async def quit(self):
        try:
            await asyncio.wait_for_ms(_cmd(self.r, self.w, "QUIT", self.t), 1000)
        except Exception:
            pass

    def close(self):
        if self.w is not None:
            httpc.close(self.w)
            self.w = None


def _path(path):
    p = httpc.unquote(path)
    return p[1:] if p.startswith("/") and len(p) > 1 else p


async def retr(url, sink, net, buf, timeout_ms=15000):
    # Download ftp://url into sink.write(); returns the byte count.
    _s, host, port, path, user, password = httpc.split_url(url)
    s = _Session(net, host, port, timeout_ms)
    try:
        await s.login(user, password)
        dr, dw = await s.data("RETR", _path(path))
        guard = httpc.Guard(dw, timeout_ms)
        try:
            n = await httpc.copy_body(dr, sink, memoryview(buf), None, guard)
        finally:
            guard.stop()
            httpc.close(dw)
        await s.done()
        await s.quit()
        return n
    finally:
        s.close()


async def stor(url, fpath, net, buf, timeout_ms=15000):
    # Upload the file fpath to ftp://url; returns the byte count.
    _s, host, port, path, user, password = httpc.split_url(url)
    s = _Session(net, host, port, timeout_ms)
    try:
        await s.login(user, password)
        dr, dw = await s.data("STOR", _path(path))
        guard = httpc.Guard(dw, timeout_ms)
        try:
            with open(fpath, "rb") as f:
                n = await httpc.send_file(dw, f, buf, guard)
        finally:
            guard.stop()
            httpc.close(dw)  # EOF ends the upload
        await s.done()
        await s.quit()
        return n
    finally:
        s.close()
