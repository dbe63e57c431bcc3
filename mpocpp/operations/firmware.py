# FirmwareManagement profile, firmware side: UpdateFirmware and
# FirmwareStatusNotification, and the security whitepaper's
# SignedUpdateFirmware and SignedFirmwareStatusNotification (L01; the
# certificate and signature checks in signedfirmware.py, loaded for them)
# (docs/firmware-update.md). The job runs as one asyncio task after the
# answer: wait for retrieveDate -> Downloading -> Downloaded (or
# DownloadFailed after the retries) -> [signed: SignatureVerified or
# InvalidSignature, InstallScheduled until installDateTime] -> wait for the
# transactions to end, idle connectors Unavailable -> Installing -> unpack
# into the free slot (transfer/fwimage.py), pointer "pending" -> [signed:
# InstallRebooting] -> reboot -> Installed after the first Accepted
# BootNotification (booted()).
import asyncio
from micropython import const
from mpocpp.util import log
from mpocpp.util import clock
from mpocpp.util import fsutil
from mpocpp.util import modules

_TAG = "fw"
_TX_POLL_MS = const(1000)
_DATE_STEP_S = const(30)  # retrieveDate is re-checked this often (the clock may be set meanwhile)
_FSN = "FirmwareStatusNotification"
_SFSN = "SignedFirmwareStatusNotification"
_SIGNED = "mpocpp.operations.signedfirmware"
# FirmwareStatusNotification's statuses of a job under way (any other: Idle)
_BUSY = ("Downloading", "Downloaded", "Installing")
_VERIFIED = ("SignatureVerified", "InstallScheduled")  # Downloaded, in OCPP 1.6's words


class FirmwareManagement:
    # restart(): the soft reset that boots the installed firmware;
    # security_event(kind, tech_info, send): securityevents.SecurityEvents.emit;
    # pause(): the charger's safety work, called from inside the crypto.
    def __init__(self, cfg, connectors, jobs, net, board_name, restart, security_event, pause):
        self._cfg = cfg
        self._cons = connectors
        self._jobs = jobs
        self._net = net
        self._board = board_name
        self._restart = restart
        self._security_event = security_event
        self._pause = pause

    def UpdateFirmware(self, req):
        # L01.FR.20: a charger given a ManufacturerRootCertificate takes
        # signed firmware only; without one, OCPP 1.6's update as before.
        from mpocpp.security import store
        if store.names(self._cfg.dir, store.MFR):
            from mpocpp.protocol.rpc import Reply
            raise Reply("NotSupported", "signed firmware only: use SignedUpdateFirmware")
        from mpocpp.transfer import files
        loc = req["location"]
        files.check_location(loc)
        when = files.date(req, "retrieveDate")
        n, interval = files.plan(req)
        return {}, _Start(self, _Job(loc, when, n, interval))

    def SignedUpdateFirmware(self, req):
        # The signing certificate is checked first (signedfirmware.py,
        # released after the answer; the job keeps what it needs). A new
        # request cancels a job not yet installing (L01.FR.26/27).
        from mpocpp.transfer import files
        fw = req["firmware"]
        loc = fw["location"]
        files.check_location(loc)
        when = files.date(fw, "retrieveDateTime")
        at = files.date(fw, "installDateTime")
        n, interval = files.plan(req)
        try:
            st, sig = modules.load(_SIGNED).prepare(fw, self._cfg.dir, self._security_event,
                                                    self._pause)
        finally:
            modules.release(_SIGNED)
        if sig is None:
            return {"status": st}
        r = self._running()
        if r == "Installing":
            log.warn(_TAG, "SignedUpdateFirmware rejected: an install is running")
            return {"status": "Rejected"}
        job = _Job(loc, when, n, interval, req["requestId"], at, sig.check)
        return {"status": "Accepted" if r is None else "AcceptedCanceled"}, _Start(self, job)

    def _running(self):
        # -> None: no job; "Installing": a job past the point of no return;
        # else the status of the job a new request cancels.
        j = self._jobs
        if j.update is None or j.update.done():
            return None
        return j.firmware

    def start(self, job):
        # A new request replaces a job still waiting or transferring.
        j = self._jobs
        old = j.update
        if old is not None and not old.done():
            if j.firmware == "Installing":
                log.warn(_TAG, "firmware update ignored: an install is running")
                return
            old.cancel()
        j.update = asyncio.create_task(self._run(job))

    async def _status(self, job, status):
        log.info(_TAG, "firmware: %s", status)
        j = self._jobs
        # the status a TriggerMessage's FirmwareStatusNotification reports:
        # OCPP 1.6's values only, Installing until the reboot
        if status in _BUSY:
            j.firmware = status
        elif status in _VERIFIED:
            j.firmware = "Downloaded"
        elif status != "InstallRebooting":
            j.firmware = "Idle"
        if job.req is None:
            await j.notify(_FSN, status)
        else:  # L01.FR.10: every status with the request's requestId
            p = {"requestId": job.req}
            j.signed = p
            await j.notify(_SFSN, status, p)

    async def _hold(self):
        # Errata 3.49: wait for the running transactions to end, idle
        # connectors Unavailable meanwhile (not persisted: the reboot brings
        # them back).
        held = []
        while True:
            busy = False
            for c in self._cons[1:]:
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

    async def _run(self, job):
        from mpocpp.transfer import files
        from mpocpp.transfer import fwimage
        d = self._cfg.dir
        img = d + "/fw.img"
        held = None
        try:
            if job.when is not None and clock.now() < job.when:
                if job.req is not None:
                    await self._status(job, "DownloadScheduled")  # L01.FR.13
                await _until(job.when)
            await self._status(job, "Downloading")
            try:
                fwimage.free_slot(d)
            except OSError as e:
                log.warn(_TAG, "old slot not freed: %r", e)
            t = files.Transfer(self._net, self._cfg.settings.get("caCert"))
            if not await t.attempts("download", job.n, job.interval, job.url, img):
                await self._status(job, "DownloadFailed")
                return
            await self._status(job, "Downloaded")
            if job.check is not None:
                # L01.FR.04: the signature over the whole file, before anything
                # of it is installed
                try:
                    ok = await job.check(img, t.buf)
                except Exception as e:  # OSError, MemoryError: not the signature's fault
                    log.exc(_TAG, "signature check", e)
                    await self._status(job, "InstallVerificationFailed")
                    return
                if not ok:
                    await self._status(job, "InvalidSignature")
                    return
                await self._status(job, "SignatureVerified")
                if job.install_at is not None and clock.now() < job.install_at:
                    await self._status(job, "InstallScheduled")  # L01.FR.16
                    await _until(job.install_at)
            held = await self._hold()
            await self._status(job, "Installing")
            try:
                v = fwimage.install(img, d, self._board, t.buf, job.req)
            except Exception as e:  # ImageError, OSError (flash full), MemoryError
                log.error(_TAG, "installation failed: %s %s", type(e).__name__, e)
                # a signed image that does not check out: InstallVerificationFailed
                bad = job.req is not None and isinstance(e, fwimage.ImageError)
                await self._status(job, "InstallVerificationFailed" if bad else
                                   "InstallationFailed")
                return
            log.info(_TAG, "firmware %s installed: rebooting", v)
            fsutil.remove(img)
            held = None  # stay Unavailable until the reboot
            if job.req is not None:
                await self._status(job, "InstallRebooting")  # L01.FR.15
            self._restart()
        except Exception as e:  # MemoryError in a status or a wait: the job ends, logged
            log.exc(_TAG, "firmware job", e)
        finally:
            fsutil.remove(img)
            if held:
                for c in held:
                    c.operative = True
                    c.update()
            self._jobs.ended(asyncio.current_task())


async def _until(t):
    # Sleep until the clock reads t (re-checked: the clock may be set meanwhile).
    while clock.now() < t:
        await asyncio.sleep(min(t - clock.now(), _DATE_STEP_S))


class _Job:
    # url, when (retrieveDate, None: now), n attempts, interval s; for a
    # SignedUpdateFirmware also req (its requestId), install_at
    # (installDateTime or None) and check (async (path, buf) -> bool: the
    # signature over the downloaded file).
    def __init__(self, url, when, n, interval, req=None, install_at=None, check=None):
        self.url = url
        self.when = when
        self.n = n
        self.interval = interval
        self.req = req
        self.install_at = install_at
        self.check = check


class _Start:
    # Follow-up: the job starts once the answer is out.
    def __init__(self, fm, job):
        self.fm = fm
        self.job = job

    def __call__(self):
        self.fm.start(self.job)


def booted(flash_dir, outbox, jobs):
    # First Accepted BootNotification after an update: Installed, or
    # InstallationFailed when the new firmware was rolled back; a
    # FirmwareStatusNotification, or a SignedFirmwareStatusNotification with
    # the requestId the pointer kept. -> the status (None: nothing to report).
    from mpocpp.transfer import fwimage
    p = fwimage.read_pointer(flash_dir)
    req = p.get("req") if p else None
    st = fwimage.confirm(flash_dir)
    if st:
        log.info(_TAG, "firmware: %s", st)
        if req is None:
            outbox.trigger(_FSN, {"status": st})
        else:
            p = {"status": st, "requestId": req}
            jobs.signed = p
            outbox.trigger(_SFSN, p)
    return st
