# Start-up shared by the real boards (their main.py calls run()): pick the
# installed firmware slot, read the provisioning file, build the board and
# run the firmware; a freshly installed firmware that cannot start rolls
# back to the previous one (docs/firmware-update.md).
import json
import sys


def _provisioning(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _firmware(flash):
    # The installed firmware's slot goes first on sys.path, so the board and
    # the firmware are imported from it.
    from mpocpp.transfer import fwimage
    d, v, st = fwimage.select(flash)
    for name in list(sys.modules):  # the slot's own package is imported later
        if (name == "mpocpp" or name.startswith("mpocpp.")) and name != "mpocpp.util.log":
            del sys.modules[name]  # (the log stays: the board's drivers share it)
    if d:
        sys.path.insert(0, d)
    return fwimage, v, st


def run(flash="/data", provisioning="/provisioning.json"):
    fwi, fw_version, fw_state = _firmware(flash)
    prov = _provisioning(provisioning)
    try:
        import asyncio
        from mpocpp_board.board import Board
        from mpocpp.charger import Charger
        board = Board((prov or {}).get("settings", {}), flash_dir=flash)
        ch = Charger(board, prov, firmware_version=fw_version, firmware_state=fw_state)
        asyncio.run(ch.run())
    except Exception as e:
        if fw_state == "pending" and fwi.rollback(flash):
            sys.print_exception(e)
            import machine
            machine.reset()
        raise
