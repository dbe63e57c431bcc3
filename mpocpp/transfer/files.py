# What UpdateFirmware, GetDiagnostics and GetLog share: the location check, the
# retries, the transfer of a flash file by HTTP(S) or FTP through board.net
# (so the bench's network cut applies), one transfer buffer.
import asyncio
from micropython import const
from mpocpp.util import fsutil
from mpocpp.util import log

_TAG = "files"
_BUF = const(2048)
_RETRIES = const(2)  # when the CSMS gives none
_INTERVAL_S = const(30)
_TIMEOUT_MS = const(15000)  # per network read / write
_PCV = "PropertyConstraintViolation"


def check_location(url):
    # The URL must be one SupportedFileTransferProtocols lists (FTP, HTTP,
    # HTTPS): anything else is a PropertyConstraintViolation (decision).
    from mpocpp.transfer import http
    from mpocpp.protocol.rpc import Reply
    try:
        return http.split_url(url)
    except ValueError as e:
        raise Reply(_PCV, "location: %s" % e)


def date(req, key):
    from mpocpp.protocol.rpc import Reply
    from mpocpp.util import timeparse
    try:
        return timeparse.optional(req, key)
    except ValueError as e:
        raise Reply(_PCV, str(e))


def plan(req):
    # -> (attempts, interval s); retries = retries after the first (errata 3.50).
    n = req.get("retries")
    n = _RETRIES if n is None or n < 0 else n
    s = req.get("retryInterval")
    s = _INTERVAL_S if s is None or s < 0 else s
    return n + 1, s


class Transfer:
    # One transfer at a time per job; buf is allocated by the first attempt
    # (no block for it is a failed attempt, retried as the others are).
    def __init__(self, net, ca):
        self._net = net
        self._ca = ca  # CA certificate for https (PEM or DER), or ""
        self.buf = None
        self.error = None  # the last failed attempt's exception

    async def _fetch(self, url, path):
        # Download url into the flash file path (streamed); -> byte count.
        fsutil.remove(path)
        with open(path, "wb") as f:
            if url[:4].lower() == "ftp:":
                from mpocpp.transfer import ftp
                return await ftp.retr(url, f, self._net, self.buf, _TIMEOUT_MS)
            from mpocpp.transfer import http
            return await http.get(url, f, self._net, self.buf, ca=self._ca,
                                  timeout_ms=_TIMEOUT_MS)

    async def upload(self, url, path, name):
        # Upload the flash file path as `name`: FTP STOR (into the URL's
        # directory when it ends with "/"), or HTTP(S) POST multipart/form-data.
        if url[:4].lower() == "ftp:":
            from mpocpp.transfer import ftp
            if url.endswith("/") or url.count("/") < 3:
                url = url.rstrip("/") + "/" + name
            return await ftp.stor(url, path, self._net, self.buf, _TIMEOUT_MS)
        from mpocpp.transfer import http
        return await http.post_file(url, path, name, self._net, self.buf, ca=self._ca,
                                    timeout_ms=_TIMEOUT_MS)

    async def attempts(self, what, n, interval, url, path, name=None):
        # n tries, interval s apart -> True when one succeeded.
        for i in range(n):
            if i:
                await asyncio.sleep(interval)
            try:
                if self.buf is None:
                    self.buf = bytearray(_BUF)
                if name is None:
                    r = await self._fetch(url, path)
                else:
                    r = await self.upload(url, path, name)
                log.info(_TAG, "%s: done (%s)", what, r)
                return True
            except asyncio.CancelledError:
                raise
            except Exception as e:  # HttpError, FtpError, OSError, TimeoutError, MemoryError
                self.error = e
                log.warn(_TAG, "%s attempt %d/%d failed: %s %s", what, i + 1, n,
                         type(e).__name__, e)
        return False
