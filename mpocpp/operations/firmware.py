# FirmwareManagement profile, firmware side: UpdateFirmware and
# FirmwareStatusNotification (docs/firmware-update.md). The job runs as one
# asyncio task after the answer: wait for retrieveDate -> Downloading ->
# Downloaded (or DownloadFailed after the retries) -> wait for the
# transactions to end, idle connectors Unavailable -> Installing -> unpack
# into the free slot (transfer/fwimage.py), pointer "pending" -> reboot ->
# Installed after the first Accepted BootNotification (booted()).
import asyncio
from micropython import const
from mpocpp.util import log
from mpocpp.util import clock
from mpocpp.util import fsutil

_TAG = "fw"
_TX_POLL_MS = const(1000)
_DATE_STEP_S = const(30)  # retrieveDate is re-checked this often (the clock may be set meanwhile)
_FSN = "FirmwareStatusNotification"


class FirmwareManagement:
    # restart(): the soft reset that boots the installed firmware.
    def __init__(self, cfg, connectors, jobs, net, board_name, restart):
        self._cfg = cfg
        self._cons = connectors
        self._jobs = jobs
        self._net = net
        self._board = board_name
        self._restart = restart

    def UpdateFirmware(self, req):
        from mpocpp.transfer import files
        loc = req["location"]
        files.check_location(loc)
        when = files.date(req, "retrieveDate")
        n, interval = files.plan(req)
        return {}, _Start(self, loc, when, n, interval)

    def start(self, job):
        # A new request replaces a job still waiting or transferring.
        j = self._jobs
        old = j.update
        if old is not None and not old.done():
            if j.firmware == "Installing":
                log.warn(_TAG, "UpdateFirmware ignored: an install is running")
                return
            old.cancel()
        j.update = asyncio.create_task(self._run(job))

    async def _status(self, status):
        log.info(_TAG, "firmware: %s", status)
        busy = status in ("Downloading", "Downloaded", "Installing")
        self._jobs.firmware = status if busy else "Idle"
        await self._jobs.notify(_FSN, status)

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
            if job.when is not None:
                while clock.now() < job.when:
                    await asyncio.sleep(min(job.when - clock.now(), _DATE_STEP_S))
            await self._status("Downloading")
            try:
                fwimage.free_slot(d)
            except OSError as e:
                log.warn(_TAG, "old slot not freed: %r", e)
            t = files.Transfer(self._net, self._cfg.settings.get("caCert"))
            if not await t.attempts("download", job.n, job.interval, job.url, img):
                await self._status("DownloadFailed")
                return
            await self._status("Downloaded")
            held = await self._hold()
            await self._status("Installing")
            try:
                v = fwimage.install(img, d, self._board, t.buf)
            except Exception as e:  # ImageError, OSError (flash full), MemoryError
                log.error(_TAG, "installation failed: %s %s", type(e).__name__, e)
                await self._status("InstallationFailed")
                return
            log.info(_TAG, "firmware %s installed: rebooting", v)
            fsutil.remove(img)
            held = None  # stay Unavailable until the reboot
            self._restart()
        finally:
            fsutil.remove(img)
            if held:
                for c in held:
                    c.operative = True
                    c.update()
            self._jobs.ended(self._jobs.upload)


class _Job:
    def __init__(self, url, when, n, interval):
        self.url = url
        self.when = when
        self.n = n
        self.interval = interval


class _Start:
    # Follow-up: the job starts once the answer is out.
    def __init__(self, fm, url, when, n, interval):
        self.fm = fm
        self.job = _Job(url, when, n, interval)

    def __call__(self):
        self.fm.start(self.job)


def booted(flash_dir, outbox):
    # First Accepted BootNotification after an update: Installed, or
    # InstallationFailed when the new firmware was rolled back. -> the status
    # (None: nothing to report).
    from mpocpp.transfer import fwimage
    st = fwimage.confirm(flash_dir)
    if st:
        log.info(_TAG, "firmware: %s", st)
        outbox.trigger(_FSN, {"status": st})
    return st
