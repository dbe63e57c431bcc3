# FirmwareManagement profile, diagnostics side: GetDiagnostics and
# DiagnosticsStatusNotification (docs/firmware-update.md). The fileName is
# answered at once; then, in one asyncio task: Uploading -> the diagnostics
# file written to flash -> Uploaded / UploadFailed after the retries.
import asyncio
from mpocpp.util import log
from mpocpp.util import clock
from mpocpp.util import fsutil

_TAG = "diag"
_DSN = "DiagnosticsStatusNotification"
_SECRET = ("caCert", "wifiPassword", "AuthorizationKey")


class Diagnostics:
    # state(): "name=value" lines about the running charger;
    # log_files(): the log ring's files, oldest first.
    def __init__(self, cfg, jobs, net, state, log_files):
        self._cfg = cfg
        self._jobs = jobs
        self._net = net
        self._state = state
        self._log_files = log_files

    def GetDiagnostics(self, req):
        from mpocpp.transfer import files
        loc = req["location"]
        files.check_location(loc)
        start = files.date(req, "startTime")
        stop = files.date(req, "stopTime")
        n, interval = files.plan(req)
        name = self.file_name()
        return {"fileName": name}, _Start(self, _Job(loc, name, start, stop, n, interval))

    def file_name(self):
        cid = self._cfg.settings.get("chargeBoxId") or "cp"
        safe = "".join(c if c.isalpha() or c.isdigit() or c in "-_" else "_" for c in cid[:40])
        ts = clock.iso().replace("-", "").replace(":", "")
        return "diag-%s-%s.txt" % (safe, ts)

    def start(self, job):
        # A new request replaces an upload in progress.
        j = self._jobs
        if j.upload is not None and not j.upload.done():
            j.upload.cancel()
        j.upload = asyncio.create_task(self._run(job))

    async def _status(self, status):
        log.info(_TAG, "diagnostics: %s", status)
        self._jobs.diagnostics = "Uploading" if status == "Uploading" else "Idle"
        await self._jobs.notify(_DSN, status)

    async def _run(self, job):
        from mpocpp.transfer import files
        path = self._cfg.dir + "/diag.txt"
        try:
            await self._status("Uploading")
            try:
                self.write(path, job.start, job.stop)
            except Exception as e:  # flash full: nothing to upload
                log.error(_TAG, "diagnostics file: %s %s", type(e).__name__, e)
                await self._status("UploadFailed")
                return
            t = files.Transfer(self._net, self._cfg.settings.get("caCert"))
            ok = await t.attempts("upload", job.n, job.interval, job.url, path, job.name)
            await self._status("Uploaded" if ok else "UploadFailed")
        finally:
            fsutil.remove(path)
            self._jobs.diagnostics = "Idle"
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


class _Job:
    def __init__(self, url, name, start, stop, n, interval):
        self.url = url
        self.name = name
        self.start = start
        self.stop = stop
        self.n = n
        self.interval = interval


class _Start:
    def __init__(self, d, job):
        self.d = d
        self.job = job

    def __call__(self):
        self.d.start(self.job)
