# Firmware entry point: a board calls app.run(board, provisioning).
import asyncio
import gc
import log
import clock

_TAG = "app"


def build(board, provisioning=None, overrides=None):
    # Wire the firmware onto a board: configuration, charge point, connectors.
    clock.init(board.clock)
    from config import Config
    cfg = Config(board.flash_dir, board.limits)
    cfg.load(provisioning)
    if overrides:
        for k, v in overrides.items():
            if v is not None:
                cfg.settings[k] = v
    from cp import ChargePoint
    cp = ChargePoint(board, cfg)
    from connector import Connector
    n = cfg.get("NumberOfConnectors")
    cp.connectors = [Connector(cp, i, board.connector_hw(i) if i else None) for i in range(n + 1)]
    gc.collect()
    return cp


async def main(cp, extra_tasks=()):
    for t in extra_tasks:
        asyncio.create_task(t)
    log.info(_TAG, "charge point %s starting (boot %d, heap free %d)" % (
        cp.cfg.settings.get("chargeBoxId"), cp.boot_count, gc.mem_free()))
    await cp.run()


def run(board, provisioning=None, overrides=None):
    cp = build(board, provisioning, overrides)
    asyncio.run(main(cp))
