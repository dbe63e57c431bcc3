# Security events (security whitepaper A04, "Security Events" table): every
# event goes to the security log, a bounded ring in flash (A04.FR.04,
# written at once: events are rare and must survive a reset that follows
# them); the critical ones are also sent to the central system as
# SecurityEventNotification (A04.FR.01) through the persistent queue's
# transaction stream: ordered, kept across outages and reboots, and retried
# as transaction messages are (A04.FR.02). The types are the whitepaper's
# names, passed by the callers. Events are rare: the charger loads this
# module and makes the ring for each one, and releases them after it
# (Charger.security_event).
from micropython import const
from mpocpp.util import clock
from mpocpp.util import log

_TAG = "security"
_ACTION = "SecurityEventNotification"
_TECH_MAX = const(255)  # SecurityEventNotification.techInfo: CiString255
_LOG = "/seclog"

# Critical (sent) per the whitepaper's table; any other type is logged only.
_CRITICAL = ("FirmwareUpdated", "SettingSystemTime", "StartupOfTheDevice", "ResetOrReboot",
             "SecurityLogWasCleared", "MemoryExhaustion", "TamperDetectionActivated")


def ring(flash_dir):
    # The security log: a small ring of its own in the flash directory. Each
    # event is written at once, so its RAM buffer holds nothing between two.
    return log.FlashRing(flash_dir + _LOG, clock.stamp, 4096, 256)


class SecurityEvents:
    def __init__(self, queue, ring):
        # queue: messages.MessageQueue; ring: a log.FlashRing (callable(line),
        # flush()) of its own, the security log.
        self._queue = queue
        self._ring = ring

    def emit(self, kind, tech_info=None, send=False):
        # kind: the whitepaper's event name; tech_info: free text (no
        # secrets: it is logged and sent); send: sent although not critical,
        # where a use case requires it (L01.FR.02/03: the signed firmware's
        # InvalidFirmwareSigningCertificate and InvalidFirmwareSignature).
        ts = clock.iso()
        if tech_info is not None and len(tech_info) > _TECH_MAX:
            tech_info = tech_info[:_TECH_MAX]
        log.info(_TAG, "%s%s%s", kind, ": " if tech_info else "", tech_info or "")
        cleared = False
        try:
            self._ring("%s %s" % (kind, tech_info or ""))
            cleared = self._ring.flush()
        except (OSError, MemoryError):
            pass  # the security log is best effort; the notification is not
        self._queue_event(kind, ts, tech_info, send)
        if cleared:  # the ring's oldest file gave way to this entry
            self.emit("SecurityLogWasCleared", "oldest entries rotated out")

    def _queue_event(self, kind, ts, tech_info, send):
        if not send and kind not in _CRITICAL:
            return
        p = {"type": kind, "timestamp": ts}
        if tech_info:
            p["techInfo"] = tech_info
        if self._queue.push(_ACTION, p, True) is None:
            log.error(_TAG, "%s not queued", kind)

    def files(self):
        # The security log, oldest first (for GetLog SecurityLog, later).
        return self._ring.files()
