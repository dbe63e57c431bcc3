# The file-transfer jobs (UpdateFirmware and SignedUpdateFirmware,
# GetDiagnostics, GetLog), kept while their operation modules come and go: the
# status TriggerMessage reports, the running tasks, and how a job tells the
# central system about its progress.
from mpocpp.util import log
from mpocpp.util import modules

_TAG = "jobs"
# The code of a transfer, loaded by a job and released when the last ends.
_TRANSFER = ("mpocpp.transfer.files", "mpocpp.transfer.http", "mpocpp.transfer.ftp",
             "mpocpp.transfer.fwimage")


class Jobs:
    def __init__(self, sender, outbox):
        self._sender = sender
        self._outbox = outbox
        self.firmware = "Idle"  # FirmwareStatusNotification status for a trigger
        self.diagnostics = "Idle"  # DiagnosticsStatusNotification status for a trigger
        # The last SignedFirmwareStatusNotification payload sent (status,
        # requestId), None before the first: what a triggered one reports
        # (operations/signedfirmware.py triggered()).
        self.signed = None
        self.update = None  # the UpdateFirmware task
        self.upload = None  # the GetDiagnostics task
        self.log = None  # the GetLog task
        # LogStatusNotification for an ExtendedTriggerMessage: Uploading with
        # the GetLog's requestId while one runs, else Idle without (N01.FR.12).
        self.log_status = "Idle"
        self.log_request = None

    def ended(self, task):
        # A job's task ends (called from its own finally): it is forgotten,
        # since a finished coroutine keeps its locals (the transfer and its
        # buffer, the operation's module); the transfer code goes too unless
        # the other job still runs.
        if self.update is task:
            self.update = None
        if self.upload is task:
            self.upload = None
        if self.log is task:
            self.log = None
        for t in (self.update, self.upload, self.log):
            if t is not None and not t.done():
                return
        for name in _TRANSFER:
            modules.release(name)

    async def notify(self, action, status, p=None):
        # At once when registered, else queued for the sender (sent after
        # the reconnect). The CSMS's refusal does not stop the job. p: the
        # payload when it has more than the status (a requestId).
        from mpocpp.protocol.rpc import Offline, CallError, CallTimeout
        if p is None:
            p = {}
        p["status"] = status
        try:
            await self._sender.call_now(action, p)
        except Offline:
            self._outbox.trigger(action, p)
        except (CallError, CallTimeout):
            pass
        except Exception as e:  # never let a notification end the job
            log.exc(_TAG, action, e)
