# Firmware entry point: a board calls app.run(board, provisioning).
import asyncio
import gc
from mpocpp.util import log
from mpocpp.util import clock

_TAG = "app"


def build(board, provisioning=None, overrides=None):
    # Wire the firmware onto a board: configuration, charge point, connectors.
    clock.init(board.clock)
    from mpocpp.model.config import Config
    cfg = Config(board.flash_dir, board.limits)
    cfg.load(provisioning)
    if clock.restore(cfg.dir + "/lasttime"):
        log.warn(_TAG, "no real-time clock: starting from the last known time %s" % clock.iso())
    if overrides:
        for k, v in overrides.items():
            if v is not None:
                cfg.settings[k] = v
    if log.sink is None:  # recent lines in flash, for GetDiagnostics
        log.sink = log.FlashRing(cfg.dir + "/syslog")
    from mpocpp.chargepoint import ChargePoint
    cp = ChargePoint(board, cfg)
    cp.queue = make_queue(board, cfg)
    cp.queue.on_transaction_id = cp.on_transaction_id
    from mpocpp.model.connector import Connector
    n = cfg.get("NumberOfConnectors")
    cp.connectors = [Connector(cp, i, board.connector_hw(i) if i else None) for i in range(n + 1)]
    drivers = {}
    for c in cp.connectors[1:]:
        if c.hw is not None and getattr(c.hw, "meter", None) is not None:
            drivers[c.id] = c.hw.meter
    if drivers:
        from mpocpp.metering.meter import Meter
        lim = board.limits
        cp.meter = Meter(drivers, cfg.dir, phases=lim.get("phases", 3),
                         nominal_volts=lim.get("nominalVolts", 230))
        cp.meter.load()
        cp.check_clock_aligned()  # else metering is imported on first need
    gc.collect()
    return cp


class _Cfg:
    # Bound getters for the queue (no closures).
    def __init__(self, cfg, name):
        self.cfg = cfg
        self.name = name

    def __call__(self):
        return self.cfg.get(self.name)


def make_queue(board, cfg):
    # The persistent message queue: transaction messages in one store, the
    # lower-priority rest in a smaller one, in the board's fixed budget.
    from mpocpp.queue.messages import MessageQueue
    # Provisioning may give a smaller budget ("queueBytes" setting, e.g. to
    # test a full queue); never more than the board has.
    total = board.limits.get("queueBytes", 65536)
    want = cfg.settings.get("queueBytes")
    if type(want) is int and 0 < want < total:
        total = want
    dev = getattr(board, "queue_dev", None)
    if dev is not None:
        from mpocpp.queue.ring import RingStore
        blocks = dev.ioctl(4, 0)
        blocks = min(blocks, max(4, total // (dev.ioctl(5, 0) or 4096)))
        other = max(2, blocks // 4)
        stores = (RingStore(dev, 0, blocks - other), RingStore(dev, blocks - other, other))
    else:
        from mpocpp.queue.lfs import LfsStore
        from mpocpp.util import fsutil
        base = cfg.dir + "/queue"
        fsutil.makedirs(base)
        other = total // 4
        stores = (LfsStore(base + "/txn", total - other), LfsStore(base + "/other", other))
    q = MessageQueue(stores, _Cfg(cfg, "TransactionMessageAttempts"),
                     _Cfg(cfg, "TransactionMessageRetryInterval"))
    q.mount()
    log.info(_TAG, "message queue: %d queued" % len(q))
    return q


async def main(cp, extra_tasks=()):
    for t in extra_tasks:
        asyncio.create_task(t)
    log.info(_TAG, "charge point %s starting (boot %d, heap free %d)" % (
        cp.cfg.settings.get("chargeBoxId"), cp.boot_count, gc.mem_free()))
    await cp.run()


def run(board, provisioning=None, overrides=None):
    cp = build(board, provisioning, overrides)
    asyncio.run(main(cp))
