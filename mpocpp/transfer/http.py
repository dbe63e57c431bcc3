# Small streaming HTTP/1.1 client for file transfer (firmware download,
# diagnostics upload) over board.net, so the bench's network cut applies.
# - get(): follows a few redirects, Content-Length, chunked or until-close
#   bodies, each piece handed to sink.write() from one caller buffer.
# - post_file(): multipart/form-data with the file streamed from flash.
# Non-2xx answers raise HttpError(status). Every read and write is bounded
# by timeout_ms. See docs/firmware-update.md.
import asyncio
import os
from micropython import const

_MAX_LINE = const(1024)
_MAX_HEADERS = const(48)
_REDIRECTS = const(3)
_UA = b"ocpp-mpy"


class HttpError(Exception):
    def __init__(self, msg, status=None):
        super().__init__(msg)
        self.status = status


def unquote(s):
    # Percent-decoding of URL parts (user, password, FTP path).
    if "%" not in s:
        return s
    b = s.encode()
    out = bytearray()
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c == 37 and i + 2 < n:
            try:
                out.append(int(b[i + 1:i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(c)
        i += 1
    return out.decode()


def split_url(url):
    # "scheme://[user[:password]@]host[:port][/path]" ->
    # (scheme, host, port, path, user, password); raises ValueError.
    if not isinstance(url, str) or not url or " " in url or "\r" in url or "\n" in url:
        raise ValueError("bad url")
    i = url.find("://")
    if i <= 0:
        raise ValueError("bad url")
    scheme = url[:i].lower()
    port = {"http": 80, "https": 443, "ftp": 21}.get(scheme)
    if port is None:
        raise ValueError("unsupported scheme " + scheme[:10])
    rest = url[i + 3:]
    j = rest.find("/")
    auth, path = (rest, "/") if j < 0 else (rest[:j], rest[j:])
    k = path.find("#")
    if k >= 0:
        path = path[:k]
    user = password = None
    k = auth.rfind("@")
    if k >= 0:
        ui, auth = auth[:k], auth[k + 1:]
        m = ui.find(":")
        user, password = (ui, None) if m < 0 else (ui[:m], ui[m + 1:])
        user = unquote(user)
        password = None if password is None else unquote(password)
    if auth.startswith("["):
        m = auth.find("]")
        if m < 0:
            raise ValueError("bad url host")
        host, p = auth[1:m], auth[m + 1:]
        if p and p[0] != ":":
            raise ValueError("bad url host")
        p = p[1:]
    else:
        m = auth.find(":")
        host, p = (auth, "") if m < 0 else (auth[:m], auth[m + 1:])
    if not host:
        raise ValueError("bad url host")
    if p:
        try:
            port = int(p)
        except ValueError:
            raise ValueError("bad url port")
        if not 0 < port < 65536:
            raise ValueError("bad url port")
    return scheme, host, port, path, user, password


def _tls_context(ca):
    # Verified against the provisioned CA (PEM or DER); without one the
    # transfer is encrypted but the server is not checked (as link.py does).
    import tls
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    if ca:
        from mpocpp.security.store import to_der
        ctx.load_verify_locations(to_der(ca))
    else:
        from mpocpp.util import log
        log.warn("http", "https without a CA: server not verified")
        ctx.verify_mode = tls.CERT_NONE
    return ctx


def close(w):
    # asyncio's Stream.close() leaves the socket open: close it for real
    # (the peer of an FTP data connection waits for that EOF).
    try:
        w.close()
        s = getattr(w, "s", None)
        if s is not None:
            s.close()
    except Exception:
        pass


async def open_conn(net, host, port, ca, secure, timeout_ms):
    ssl = _tls_context(ca) if secure else None
    return await asyncio.wait_for_ms(
        net.open_connection(host, port, ssl=ssl, server_hostname=host if secure else None),
        timeout_ms)


async def readline(r, timeout_ms):
    line = await asyncio.wait_for_ms(r.readline(), timeout_ms)
    if len(line) > _MAX_LINE:
        raise HttpError("header line too long")
    return line


async def _write(w, data, timeout_ms):
    w.write(data)
    await asyncio.wait_for_ms(w.drain(), timeout_ms)


def _host_header(host, port, default):
    h = ("[%s]" % host) if ":" in host else host
    return h if port == default else "%s:%d" % (h, port)


async def _head(r, timeout_ms):
    # Status line and the headers this client needs.
    line = await readline(r, timeout_ms)
    if not line:
        raise HttpError("connection closed")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise HttpError("bad status line")
    try:
        status = int(parts[1])
    except ValueError:
        raise HttpError("bad status line")
    length = None
    chunked = False
    location = None
    for _ in range(_MAX_HEADERS):
        line = await readline(r, timeout_ms)
        if line in (b"\r\n", b"\n", b""):
            return status, length, chunked, location
        k = line.find(b":")
        if k < 0:
            continue
        name = line[:k].strip().lower()
        val = line[k + 1:].strip()
        if name == b"content-length":
            try:
                length = int(val)
            except ValueError:
                raise HttpError("bad Content-Length")
        elif name == b"transfer-encoding":
            chunked = b"chunked" in val.lower()
        elif name == b"location":
            location = val.decode()
    raise HttpError("too many headers")


class Guard:
    # One timer per transfer instead of a wait_for task per read (those
    # allocate ~0.5 KiB each): when no byte has moved for timeout_ms the
    # socket is closed under the blocked read or write, which then fails.
    def __init__(self, w, timeout_ms):
        self.w = w
        self.ms = timeout_ms
        self.moved = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self):
        seen = -1
        while self.moved != seen:
            seen = self.moved
            await asyncio.sleep_ms(self.ms)
        close(self.w)

    def stop(self):
        self._task.cancel()


async def copy_body(r, sink, mv, n, guard):
    # n bytes (or until EOF when n is None) from r into sink.write().
    got = 0
    size = len(mv)
    while n is None or got < n:
        want = size if n is None else min(size, n - got)
        k = await r.readinto(mv if want == size else mv[:want])
        if not k:
            if n is None:
                return got
            raise HttpError("body cut after %d of %d bytes" % (got, n))
        sink.write(mv if k == size else mv[:k])
        got += k
        guard.moved = got
    return got


async def send_file(w, f, buf, guard):
    # The open file f to w through buf; -> byte count.
    mv = memoryview(buf)
    size = len(buf)
    n = 0
    while True:
        k = f.readinto(buf)
        if not k:
            return n
        w.write(mv if k == size else mv[:k])
        await w.drain()
        n += k
        guard.moved = n


async def _body(r, sink, mv, length, chunked, guard, timeout_ms):
    if not chunked:
        return await copy_body(r, sink, mv, length, guard)
    total = 0
    while True:
        line = await readline(r, timeout_ms)
        try:
            n = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpError("bad chunk size")
        if n == 0:
            while (await readline(r, timeout_ms)) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return total
        total += await copy_body(r, sink, mv, n, guard)
        await readline(r, timeout_ms)  # CRLF after the chunk


def _redirect(url, location):
    if "://" in location:
        return location
    i = url.find("://")
    j = url.find("/", i + 3)
    base = url if j < 0 else url[:j]
    return base + (location if location.startswith("/") else "/" + location)


async def get(url, sink, net, buf, ca=None, timeout_ms=15000):
    # Download url into sink (an object with write(memoryview)); returns the
    # byte count. Raises HttpError (status set for an HTTP answer), OSError.
    mv = memoryview(buf)
    for _ in range(_REDIRECTS + 1):
        try:
            scheme, host, port, path, _u, _p = split_url(url)
        except ValueError as e:
            raise HttpError(str(e))
        if scheme == "ftp":
            raise HttpError("redirect to ftp")
        secure = scheme == "https"
        r, w = await open_conn(net, host, port, ca, secure, timeout_ms)
        try:
            await _write(
                w,
                b"GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"
                b"Accept-Encoding: identity\r\nConnection: close\r\n\r\n"
                % (path.encode(), _host_header(host, port, 443 if secure else 80).encode(), _UA),
                timeout_ms,
            )
            status, length, chunked, location = await _head(r, timeout_ms)
            if status in (301, 302, 303, 307, 308) and location:
                url = _redirect(url, location)
                continue
            if not 200 <= status < 300:
                raise HttpError("HTTP %d" % status, status)
            guard = Guard(w, timeout_ms)
            try:
                return await _body(r, sink, mv, length, chunked, guard, timeout_ms)
            finally:
                guard.stop()
        finally:
            close(w)
    raise HttpError("too many redirects")


async def post_file(url, fpath, filename, net, buf, ca=None, field="file",
                    content_type="text/plain", timeout_ms=15000):
    # POST fpath as multipart/form-data (one part); returns the status.
    # Raises HttpError for a non-2xx answer.
    try:
        scheme, host, port, path, _u, _p = split_url(url)
    except ValueError as e:
        raise HttpError(str(e))
    if scheme == "ftp":
        raise HttpError("not an http url")
    secure = scheme == "https"
    boundary = b"----ocpp%s" % "".join("%02x" % x for x in os.urandom(8)).encode()
    pre = (b"--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
           b"Content-Type: %s\r\n\r\n") % (boundary, field.encode(), filename.encode(),
                                         content_type.encode())
    post = b"\r\n--%s--\r\n" % boundary
    size = os.stat(fpath)[6]
    r, w = await open_conn(net, host, port, ca, secure, timeout_ms)
    try:
        await _write(
            w,
            b"POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"
            b"Content-Type: multipart/form-data; boundary=%s\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n"
            % (
                path.encode(),
                _host_header(host, port, 443 if secure else 80).encode(),
                _UA,
                boundary,
                len(pre) + size + len(post),
            ),
            timeout_ms,
        )
        await _write(w, pre, timeout_ms)
        guard = Guard(w, timeout_ms)
        try:
            with open(fpath, "rb") as f:
                await send_file(w, f, buf, guard)
        finally:
            guard.stop()
        await _write(w, post, timeout_ms)
        status = (await _head(r, timeout_ms))[0]
        if not 200 <= status < 300:
            raise HttpError("HTTP %d" % status, status)
        return status
    finally:
        close(w)
