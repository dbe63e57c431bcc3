# The handlers of the central system's CALLs (operations/), each built with
# the collaborators it uses from the running charger. Imported by
# Charger.make for the moment of a CALL and released after, as the
# operation's own module is: none of this code stays in the heap.
import gc
from mpocpp.util import log
from mpocpp.util import modules

# A model without state of its own (it is in the connectors and in flash),
# made for the handler; the session code has its own while it is loaded.
_RESERVATIONS = "mpocpp.model.reservations"


def make(ch, name, mod):
    # ch: the charger.Charger; mod: operations module `name` -> its handler
    # object, or None for a module without one.
    cfg = ch.cfg
    cons = ch.connectors
    if name == "core":
        return mod.Core(cfg, cons, ch.sessions, ch.authorization, ch.registration,
                        ch.link, ch.ondemand.use_smart, ch.configured, ch.reset)
    if name == "remotetrigger":
        return mod.RemoteTrigger(cfg, cons, ch.registration, ch.sender, ch.outbox,
                                 ch.ondemand.meter_values, ch.use_jobs,
                                 cfg.supports("FirmwareManagement"), ch.sign_certificate)
    if name == "localauth":
        return mod.LocalAuthListManagement(cfg, ch.authorization)
    if name == "reservation":
        res = modules.load(_RESERVATIONS).Reservations(cons)
        modules.release(_RESERVATIONS)
        return mod.Reservation(cfg, cons, res)
    if name == "smartcharging":
        return mod.SmartCharging(cons, ch.sessions, ch.ondemand.use_smart())
    if name == "firmware":
        return mod.FirmwareManagement(cfg, cons, ch.use_jobs(), ch.board.net, ch.board.name,
                                      ch.restart, ch.security_event, ch.pause)
    if name == "security":
        return mod.Security(cfg, ch.security_changed, ch.pause)
    if name == "certsigning":
        return mod.CertificateSigning(cfg, ch.sender, ch.security_event,
                                      ch.link.try_security_profile, ch.pause)
    if name == "diagnostics":
        return mod.Diagnostics(cfg, ch.use_jobs(), ch.board.net, _StateLines(ch), log.sink.files,
                               ch.security_log)
    return None


class _StateLines:
    # The charger's state for the diagnostics file, read when it is written.
    def __init__(self, ch):
        self._ch = ch

    def __call__(self):
        ch = self._ch
        return ["firmware=%s" % ch.registration.payload().get("firmwareVersion"),
                "boot=%d" % ch.ids.boot_count,
                "heap_free=%d" % gc.mem_free(), "heap_alloc=%d" % gc.mem_alloc(),
                "connection=%s" % ch.link.state,
                "registration=%s" % ch.registration.status,
                "queued=%d" % len(ch.queue)] + \
            ["connector%d=%s %s" % (c.id, c.status, c.error_code) for c in ch.connectors]
