# The composition root: builds every object of the firmware with the
# collaborators it uses. Imported by Charger (charger.py) for the boot only
# and released after: none of this code stays in the heap.
#
# Board contract (boards/<name>/board.py, docs/architecture.md): .name,
# .clock (.time() .set(s) .trusted), .flash_dir, .queue_dev (a raw block
# device or None), .net (open_connection), .connector_hw(i) (ConnectorHw or
# None), .led (or None), .tamper (an input whose value() is 1 while the
# enclosure is open, or None), .limits, .reset(hard), .feed().
import asyncio
from mpocpp.util import clock
from mpocpp.util import fsutil
from mpocpp.util import log

_TAG = "app"


class Parts:
    # What wire() built, handed to the Charger.
    pass


def make_queue(board, cfg, on_transaction_id, wake):
    # The persistent message queue: transaction messages in one store, the
    # lower-priority rest in a smaller one, in the board's fixed budget.
    from mpocpp.queue.messages import MessageQueue
    from mpocpp.model.config import Setting
    # Provisioning may give a smaller budget ("queueBytes" setting, e.g. to
    # test a full queue); never more than the board has.
    total = board.limits.get("queueBytes", 65536)
    want = cfg.settings.get("queueBytes")
    if type(want) is int and 0 < want < total:
        total = want
    dev = board.queue_dev
    if dev is not None:
        from mpocpp.queue.ring import RingStore
        blocks = dev.ioctl(4, 0)
        blocks = min(blocks, max(4, total // (dev.ioctl(5, 0) or 4096)))
        other = max(2, blocks // 4)
        stores = (RingStore(dev, 0, blocks - other), RingStore(dev, blocks - other, other))
    else:
        from mpocpp.queue.lfs import LfsStore
        base = cfg.dir + "/queue"
        fsutil.makedirs(base)
        other = total // 4
        stores = (LfsStore(base + "/txn", total - other), LfsStore(base + "/other", other))
    q = MessageQueue(stores, Setting(cfg, "TransactionMessageAttempts"),
                     Setting(cfg, "TransactionMessageRetryInterval"),
                     on_transaction_id=on_transaction_id, wake=wake)
    q.mount()
    log.info(_TAG, "message queue: %d queued", len(q))
    return q


def boot_count(path):
    # This boot's number: the count kept in flash plus one, written back at
    # once (the message ids of rpc.MessageIds stay unique across reboots).
    try:
        n = int(fsutil.read(path, b"0")) + 1
    except ValueError:
        n = 1
    fsutil.write_atomic(path, str(n).encode())
    return n


def _make_meter(board, cfg, hw):
    drivers = {}
    for i in range(1, len(hw)):
        if hw[i] is not None and hw[i].meter is not None:
            drivers[i] = hw[i].meter
    if not drivers:
        return None
    from mpocpp.metering.meter import Meter
    lim = board.limits
    m = Meter(drivers, cfg.dir, phases=lim.get("phases", 3),
              nominal_volts=lim.get("nominalVolts", 230))
    m.load()
    return m


def wire(board, provisioning, overrides, firmware_version, make, on_registered, on_clock_set,
         on_invalid, security_event):
    # The Charger's callbacks: make(name, module), the handlers of the
    # central system's CALLs (for the dispatcher); on_registered(), the
    # first Accepted BootNotification since power-up; on_clock_set(before,
    # after), the central system's time moved the clock; on_invalid(kind, what), a
    # message that is not valid OCPP or a replayed CALL id arrived (security
    # events); security_event(type, tech_info), Charger.security_event.
    from mpocpp.model.config import Config
    from mpocpp.protocol.rpc import Rpc, MessageIds
    from mpocpp.protocol.registration import Registration
    from mpocpp.protocol.link import Link
    from mpocpp.queue.outbox import Outbox
    from mpocpp.queue.sender import Sender
    from mpocpp.model.connector import Connector
    from mpocpp.model.authorization import Authorization
    from mpocpp.model.sessions import Sessions, Assigner
    from mpocpp.operations import Dispatcher
    from mpocpp.ondemand import OnDemand
    p = Parts()
    clock.init(board.clock)
    cfg = p.cfg = Config(board.flash_dir, board.limits)
    cfg.load(provisioning)
    if clock.restore(cfg.dir + "/lasttime"):
        log.warn(_TAG, "no real-time clock: starting from the last known time %s", clock.iso())
    if overrides:
        for k, v in overrides.items():
            if v is not None:
                cfg.settings[k] = v
    if log.sink is None:  # recent lines in flash, for GetDiagnostics
        log.sink = log.FlashRing(cfg.dir + "/syslog", clock.stamp)
    wake = p.wake = asyncio.Event()  # the sender's: something to send
    p.ids = MessageIds(boot_count(cfg.dir + "/bootcount"))
    disp = Dispatcher(make, cfg.supports)
    rpc = p.rpc = Rpc(disp, p.ids, disp.serves, on_invalid,
                      cfg.settings.get("idleReleaseMs", 30000))
    reg = p.registration = Registration(cfg, rpc, board.clock.trusted, firmware_version,
                                        on_clock_set)
    outbox = p.outbox = Outbox(reg, wake)
    n = cfg.get("NumberOfConnectors")
    hw = [board.connector_hw(i) if i else None for i in range(n + 1)]
    meter = p.meter = _make_meter(board, cfg, hw)
    amps = board.limits.get("maxCurrentA", 32)
    cons = p.connectors = [Connector(i, hw[i], cfg, meter, amps, outbox.status_changed)
                           for i in range(n + 1)]
    queue = p.queue = make_queue(board, cfg, Assigner(cons, cfg.dir), wake)
    auth = p.authorization = Authorization(cfg, reg, rpc, cons[0].notify_error)
    od = p.ondemand = OnDemand(cfg, meter, cons, queue, board.limits)
    s = p.sessions = Sessions(cfg, cons, queue, auth, meter, od, board.led)
    sender = p.sender = Sender(cfg, rpc, reg, outbox, queue, wake,
                               on_registered, s.delivered)
    p.link = Link(cfg, board.net, rpc, reg, sender.run, outbox.offline, security_event)
    od.configured("ClockAlignedDataInterval")  # else metering is made on first need
    # Why the previous run ended, when the firmware chose to
    # (Charger.restart_for writes it): logged, and a security event once
    # the Charger is built.
    path = cfg.dir + "/resetreason"
    r = p.reset_reason = fsutil.read(path)
    if r:
        fsutil.remove(path)
        log.warn(_TAG, "restarted after %s", r.decode())
    return p
