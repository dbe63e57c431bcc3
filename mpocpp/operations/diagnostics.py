# Log uploads: GetDiagnostics and DiagnosticsStatusNotification
# (FirmwareManagement profile, docs/firmware-update.md), and the security
# whitepaper's GetLog and LogStatusNotification (N01: the DiagnosticsLog, the
# same file, or the SecurityLog, the security events' flash ring;
# docs/security.md). The file name is answered at once; then, in one asyncio
# task per kind: Uploading -> the file written to flash -> Uploaded, or a
# failure after the retries.
import asyncio
from mpocpp.util import log
from mpocpp.util import clock
from mpocpp.util import fsutil

_TAG = "diag"
_DSN = "DiagnosticsStatusNotification"
_LSN = "LogStatusNotification"
# Upload errors (HTTP status, FTP reply code) LogStatusNotification can name
# (N01.FR.10: as precise as possible); any other failure is UploadFailure.
_DENIED = (401, 403, 530, 532, 550)
_UNSUPPORTED = (405, 501, 502, 504)
_SECRET = ("caCert", "wifiPassword", "AuthorizationKey")


class Diagnostics:
    # state(): "name=value" lines about the running charger;
    # log_files(), security_files(): the log's and the security log's flash
    # rings, oldest file first.
    def __init__(self, cfg, jobs, net, state, log_files, security_files):
        self._cfg = cfg
        self._jobs = jobs
        self._net = net
        self._state = state
        self._log_files = log_files
        self._security_files = security_files

    def GetDiagnostics(self, req):
        from mpocpp.transfer import files
        loc = req["location"]
        files.check_location(loc)
        start = files.date(req, "startTime")
        stop = files.date(req, "stopTime")
        n, interval = files.plan(req)
        name = self._file_name("diag")
        return {"fileName": name}, _Start(self, _Job(loc, name, start, stop, n, interval))

    def GetLog(self, req):
        # N01: one file, the DiagnosticsLog or the SecurityLog between the
        # oldest and latest timestamps; a GetLog while one uploads cancels
        # it (N01.FR.11).
        from mpocpp.transfer import files
        p = req["log"]
        loc = p["remoteLocation"]
        files.check_location(loc)
        start = files.date(p, "oldestTimestamp")
        stop = files.date(p, "latestTimestamp")
        n, interval = files.plan(req)
        sec = req["logType"] == "SecurityLog"
        name = self._file_name("security" if sec else "diag")
        busy = self._jobs.log is not None and not self._jobs.log.done()
        job = _Job(loc, name, start, stop, n, interval, req["requestId"], sec)
        return {"status": "AcceptedCanceled" if busy else "Accepted", "filename": name}, \
            _Start(self, job)

    def _file_name(self, kind):
        cid = self._cfg.settings.get("chargeBoxId") or "cp"
        safe = "".join(c if c.isalpha() or c.isdigit() or c in "-_" else "_" for c in cid[:40])
        ts = clock.iso().replace("-", "").replace(":", "")
        return "%s-%s-%s.txt" % (kind, safe, ts)

    def start(self, job):
        # A new request replaces an upload of its kind in progress.
        j = self._jobs
        old = j.upload if job.req is None else j.log
        if old is not None and not old.done():
            old.cancel()
        t = asyncio.create_task(self._run(job))
        if job.req is None:
            j.upload = t
        else:
            j.log = t

    async def _status(self, job, status):
        j = self._jobs
        up = status == "Uploading"
        if job.req is None:
            log.info(_TAG, "diagnostics: %s", status)
            j.diagnostics = "Uploading" if up else "Idle"
            await j.notify(_DSN, status)
            return
        log.info(_TAG, "log %d: %s", job.req, status)
        j.log_status = "Uploading" if up else "Idle"
        j.log_request = job.req if up else None
        await j.notify(_LSN, status, {"requestId": job.req})  # N01.FR.07

    async def _run(self, job):
        from mpocpp.transfer import files
        path = self._cfg.dir + ("/diag.txt" if job.req is None else "/log.txt")
        failed = "UploadFailed" if job.req is None else "UploadFailure"
        try:
            await self._status(job, "Uploading")
            err = None
            for i in range(job.n):  # the request's retries serve the file too
                if i:
                    await asyncio.sleep(job.interval)
                try:
                    if job.security:
                        self._write_security(path, job.start, job.stop)
                    else:
                        self.write(path, job.start, job.stop)
                    err = None
                    break
                except MemoryError as e:  # the heap of the moment: tried again
                    err = e
                    log.exc(_TAG, "log file", e)
                except Exception as e:  # flash full: nothing to upload
                    err = e
                    log.error(_TAG, "log file: %s %s", type(e).__name__, e)
                    break
            if err is not None:
                err = None
                await self._status(job, failed)
                return
            t = files.Transfer(self._net, self._cfg.settings.get("caCert"))
            ok = await t.attempts("upload", job.n, job.interval, job.url, path, job.name)
            if not ok and job.req is not None:
                failed = _failure(job.url, t.error)
            t = None
            await self._status(job, "Uploaded" if ok else failed)
        except Exception as e:  # MemoryError in a status: the job ends, logged
            log.exc(_TAG, "upload job", e)
        finally:
            fsutil.remove(path)
            if job.req is None:
                self._jobs.diagnostics = "Idle"
            else:
                self._jobs.log_status = "Idle"
                self._jobs.log_request = None
            self._jobs.ended(asyncio.current_task())

    def write(self, path, start=None, stop=None):
        # A text file: identity and firmware, state, configuration (no
        # secrets), then the recent log lines stamped in [start, stop].
        cfg = self._cfg
        with open(path, "w") as f:
            f.write("# diagnostics %s %s\n" % (cfg.settings.get("chargeBoxId"), clock.iso()))
            f.write("[identity]\n")
            for k, v in cfg.identity.items():
                f.write("%s=%s\n" % (k, v))
            f.write("[state]\n")
            for line in self._state():
                f.write(line + "\n")
            f.write("[configuration]\n")
            for e in cfg.get_configuration(None)[0]:
                if "value" in e and e["key"] not in _SECRET:
                    f.write("%s=%s\n" % (e["key"], e["value"]))
            for k, v in cfg.settings.items():
                if k not in _SECRET and "assword" not in k:
                    f.write("%s=%s\n" % (k, v))
            f.write("[log]\n")
            for p in self._log_files():
                _copy_log(p, f, start, stop)

    def _write_security(self, path, start=None, stop=None):
        # The security log: one event a line, "<ISO time> <type> <techInfo>".
        with open(path, "w") as f:
            f.write("# security log %s %s\n" % (self._cfg.settings.get("chargeBoxId"),
                                                clock.iso()))
            for p in self._security_files():
                _copy_log(p, f, start, stop, True)


def _failure(url, e):
    # LogStatusNotification's status for an upload whose last attempt
    # failed with e.
    from mpocpp.transfer import http
    code = None
    if isinstance(e, http.HttpError):
        code = e.status
    elif url[:4].lower() == "ftp:":
        from mpocpp.transfer import ftp
        if isinstance(e, ftp.FtpError):
            code = e.code
    if code in _DENIED:
        return "PermissionDenied"
    if code in _UNSUPPORTED:
        return "NotSupportedOperation"
    return "UploadFailure"


def _copy_log(p, out, start, stop, stamp=False):
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
                if stamp:
                    out.write(clock.iso(t) + " ")
                out.write(line[i + 1:])


class _Job:
    # req: GetLog's requestId, None for GetDiagnostics; security: the SecurityLog.
    def __init__(self, url, name, start, stop, n, interval, req=None, security=False):
        self.url = url
        self.name = name
        self.start = start
        self.stop = stop
        self.n = n
        self.interval = interval
        self.req = req
        self.security = security


class _Start:
    def __init__(self, d, job):
        self.d = d
        self.job = job

    def __call__(self):
        self.d.start(self.job)
