# FirmwareManagement profile: UpdateFirmware and GetDiagnostics, each run as
# one asyncio task after the answer is sent (docs/firmware-update.md).
# UpdateFirmware: wait for retrieveDate -> Downloading -> Downloaded (or
# DownloadFailed after the retries) -> wait for the transactions to end,
# idle connectors Unavailable -> Installing -> unpack into the free slot,
# pointer "pending" -> reboot -> Installed after the first Accepted
# BootNotification (cp.on_accepted -> booted()).
# GetDiagnostics: fileName at once, then Uploading -> Uploaded / UploadFailed.
import asyncio
from micropython import const
from mpocpp.util import log
from mpocpp.util import clock
from mpocpp.util import fsutil
from mpocpp.protocol.rpc import Reply, Offline, CallError, CallTimeout

_TAG = "fw"
_BUF = const(2048)  # one transfer buffer for both jobs (they rarely overlap)
_RETRIES = const(2)  # when the CSMS gives none
_INTERVAL_S = const(30)
_TIMEOUT_MS = const(15000)  # per network read / write
_TX_POLL_MS = const(1000)
_DATE_STEP_S = const(30)  # retrieveDate is re-checked this often (the clock may be set meanwhile)
_PCV = "PropertyConstraintViolation"
_FSN = "FirmwareStatusNotification"
_DSN = "DiagnosticsStatusNotification"
_SECRET = ("caCert", "wifiPassword", "AuthorizationKey")

_update = None  # the running UpdateFirmware task
_diag = None  # the running GetDiagnostics task
_buf = None


def _buffer():
    global _buf
    if _buf is None:
        _buf = bytearray(_BUF)
    return _buf


def _location(url):
    # The URL must be one SupportedFileTransferProtocols lists (FTP, HTTP,
    # HTTPS): anything else is a PropertyConstraintViolation (decision).
    from mpocpp.transfer import http as httpc
    try:
        return httpc.split_url(url)
    except ValueError as e:
        raise Reply(_PCV, "location: %s" % e)


def _date(req, key):
    v = req.get(key)
    if v is None:
        return None
    try:
        return clock.parse(v)
    except ValueError:
        raise Reply(_PCV, key + ": bad date-time")


def _plan(req):
    # retries = retries after the first attempt (errata 3.50).
    n = req.get("retries")
    n = _RETRIES if n is None or n < 0 else n
    s = req.get("retryInterval")
    s = _INTERVAL_S if s is None or s < 0 else s
    return n + 1, s


async def _notify(cp, action, status):
    # At once when registered, else queued for the sender (sent after the
    # reconnect). The CSMS's refusal does not stop the job.
    p = {"status": status}
    try:
        await cp.call(action, p)
    except Offline:
        cp.trigger(action, p)
    except (CallError, CallTimeout):
        pass


async def _fw(cp, status):
    log.info(_TAG, "firmware: " + status)
    busy = status in ("Downloading", "Downloaded", "Installing")
    cp.firmware_status = status if busy else "Idle"
    await _notify(cp, _FSN, status)


# --- transfers ---
async def fetch(cp, url, path):
    # Download url into the flash file path (streamed); -> byte count.
    from mpocpp.transfer import http as httpc
    net = cp.board.net
    fsutil.remove(path)
    with open(path, "wb") as f:
        if url[:4].lower() == "ftp:":
            from mpocpp.transfer import ftp as ftpc
            return await ftpc.retr(url, f, net, _buffer(), _TIMEOUT_MS)
        return await httpc.get(url, f, net, _buffer(), ca=cp.cfg.settings.get("caCert"),
                               timeout_ms=_TIMEOUT_MS)


async def send(cp, url, path, name):
    # Upload the flash file path as `name`: FTP STOR (into the URL's
    # directory when it ends with "/"), or HTTP(S) POST multipart/form-data.
    net = cp.board.net
    if url[:4].lower() == "ftp:":
        from mpocpp.transfer import ftp as ftpc
        if url.endswith("/") or url.count("/") < 3:
            url = url.rstrip("/") + "/" + name
        return await ftpc.stor(url, path, net, _buffer(), _TIMEOUT_MS)
    from mpocpp.transfer import http as httpc
    return await httpc.post_file(url, path, name, net, _buffer(),
                                 ca=cp.cfg.settings.get("caCert"), timeout_ms=_TIMEOUT_MS)


async def _attempts(what, fn, cp, url, path, n, interval, name=None):
    for i in range(n):
        if i:
            await asyncio.sleep(interval)
        try:
            r = await (fn(cp, url, path) if name is None else fn(cp, url, path, name))
            log.info(_TAG, "%s: done (%s)" % (what, r))
            return True
        except asyncio.CancelledError:
            raise
        except Exception as e:  # HttpError, FtpError, OSError, TimeoutError, MemoryError
            log.warn(_TAG, "%s attempt %d/%d failed: %s %s" % (what, i + 1, n, type(e).__name__, e))
    return False


# --- UpdateFirmware ---
def UpdateFirmware(cp, req):
    loc = req["location"]
    _location(loc)
    when = _date(req, "retrieveDate")
    n, interval = _plan(req)
    return {}, _Start(cp, _run_update(cp, loc, when, n, interval), True)


class _Start:
    # Follow-up: the job starts once the answer is out; a new request
    # replaces a job still waiting or transferring.
    def __init__(self, cp, coro, update):
        self.cp = cp
        self.coro = coro
        self.update = update

    def __call__(self):
        global _update, _diag
        old = _update if self.update else _diag
        if old is not None and not old.done():
            if self.update and getattr(self.cp, "firmware_status", None) == "Installing":
                log.warn(_TAG, "UpdateFirmware ignored: an install is running")
                self.coro.close()
                return
            old.cancel()
        t = asyncio.create_task(self.coro)
        if self.update:
            _update = t
        else:
            _diag = t


async def _hold(cp):
    # Errata 3.49: wait for the running transactions to end, idle connectors
    # Unavailable meanwhile (not persisted: the reboot brings them back).
    held = []
    while True:
        busy = False
        for c in cp.connectors[1:]:
            if c.tx is not None:
                busy = True
            elif c.operative and c not in held:
                c.operative = False
                c.pending = None
                held.append(c)
                c.update()
        if not busy:
            return held
        await asyncio.sleep_ms(_TX_POLL_MS)


def _release(held):
    for c in held:
        c.operative = True
        c.update()


async def _run_update(cp, loc, when, n, interval):
    img = cp.cfg.dir + "/fw.img"
    held = None
    try:
        if when is not None:
            while clock.now() < when:
                await asyncio.sleep(min(when - clock.now(), _DATE_STEP_S))
        await _fw(cp, "Downloading")
        try:
            from mpocpp.transfer import fwimage
            fwimage.free_slot(cp.cfg.dir)
        except OSError as e:
            log.warn(_TAG, "old slot not freed: %r" % e)
        if not await _attempts("download", fetch, cp, loc, img, n, interval):
            await _fw(cp, "DownloadFailed")
            return
        await _fw(cp, "Downloaded")
        held = await _hold(cp)
        await _fw(cp, "Installing")
        try:
            from mpocpp.transfer import fwimage
            v = fwimage.install(img, cp.cfg.dir, getattr(cp.board, "name", None), _buffer())
        except Exception as e:  # ImageError, OSError (flash full), MemoryError
            log.error(_TAG, "installation failed: %s %s" % (type(e).__name__, e))
            await _fw(cp, "InstallationFailed")
            return
        log.info(_TAG, "firmware %s installed: rebooting" % v)
        fsutil.remove(img)
        held = None  # stay Unavailable until the reboot
        cp.sessions.reset(False)
    finally:
        fsutil.remove(img)
        if held:
            _release(held)


def booted(cp):
    # First Accepted BootNotification after an update (cp.on_accepted).
    from mpocpp.transfer import fwimage
    st = fwimage.confirm(cp.cfg.dir)
    cp.board.fw_state = None
    if st:
        log.info(_TAG, "firmware: " + st)
        cp.trigger(_FSN, {"status": st})


# --- GetDiagnostics ---
def GetDiagnostics(cp, req):
    loc = req["location"]
    _location(loc)
    start = _date(req, "startTime")
    stop = _date(req, "stopTime")
    n, interval = _plan(req)
    name = file_name(cp)
    return {"fileName": name}, _Start(cp, _run_diag(cp, loc, name, start, stop, n, interval), False)


def file_name(cp):
    cid = cp.cfg.settings.get("chargeBoxId") or "cp"
    safe = "".join(c if c.isalpha() or c.isdigit() or c in "-_" else "_" for c in cid[:40])
    ts = clock.iso().replace("-", "").replace(":", "")
    return "diag-%s-%s.txt" % (safe, ts)


async def _diag_status(cp, status):
    log.info(_TAG, "diagnostics: " + status)
    cp.diagnostics_status = "Uploading" if status == "Uploading" else "Idle"
    await _notify(cp, _DSN, status)


async def _run_diag(cp, loc, name, start, stop, n, interval):
    path = cp.cfg.dir + "/diag.txt"
    try:
        await _diag_status(cp, "Uploading")
        try:
            write_diagnostics(cp, path, start, stop)
        except Exception as e:  # flash full: nothing to upload
            log.error(_TAG, "diagnostics file: %s %s" % (type(e).__name__, e))
            await _diag_status(cp, "UploadFailed")
            return
        ok = await _attempts("upload", send, cp, loc, path, n, interval, name)
        await _diag_status(cp, "Uploaded" if ok else "UploadFailed")
    finally:
        fsutil.remove(path)
        cp.diagnostics_status = "Idle"


def write_diagnostics(cp, path, start=None, stop=None):
    # A text file: identity and firmware, state, configuration (no secrets),
    # then the recent log lines stamped in [start, stop].
    import gc
    cfg = cp.cfg
    b = cp.board
    with open(path, "w") as f:
        f.write("# diagnostics %s %s\n" % (cfg.settings.get("chargeBoxId"), clock.iso()))
        f.write("[identity]\n")
        for k, v in cfg.identity.items():
            f.write("%s=%s\n" % (k, v))
        f.write("running=%s\nboot=%d\n" % (getattr(b, "fw_version", None) or
                                          cfg.identity.get("firmwareVersion"), cp.boot_count))
        f.write("[state]\nheap_free=%d\nheap_alloc=%d\n" % (gc.mem_free(), gc.mem_alloc()))
        f.write("connection=%s\nregistration=%s\n" % (cp.link.state, cp.link.registration))
        if cp.queue is not None:
            f.write("queued=%d\n" % len(cp.queue))
        for c in cp.connectors:
            f.write("connector%d=%s %s\n" % (c.id, c.status, c.error_code))
        f.write("[configuration]\n")
        for e in cfg.get_configuration(None)[0]:
            if "value" in e and e["key"] not in _SECRET:
                f.write("%s=%s\n" % (e["key"], e["value"]))
        for k, v in cfg.settings.items():
            if k not in _SECRET and "assword" not in k:
                f.write("%s=%s\n" % (k, v))
        f.write("[log]\n")
        sink = log.sink
        if hasattr(sink, "files"):
            for p in sink.files():
                _copy_log(p, f, start, stop)


def _copy_log(p, out, start, stop):
    try:
        f = open(p)
    except OSError:
        return
    with f:
        while True:
            line = f.readline()
            if not line:
                return
            i = line.find(" ")
            try:
                t = int(line[:i])
            except ValueError:
                continue
            if (start is None or t >= start) and (stop is None or t <= stop):
                out.write(line[i + 1:])
