# Pico W entry point: provisioning from /provisioning.json on first boot.
import json
import sys

_FLASH = "/data"  # the board's flash_dir


def _provisioning():
    try:
        with open("/provisioning.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _firmware():
    # The installed firmware (docs/firmware-update.md): its slot goes first
    # on sys.path, so the board and the firmware are imported from it.
    import fwimage
    d, v, st = fwimage.select(_FLASH)
    del sys.modules["fwimage"]  # the new firmware's own copy is imported later
    if d:
        sys.path.insert(0, d)
    return fwimage, v, st


fwi, fw_version, fw_state = _firmware()
prov = _provisioning()
try:
    from board import Board
    import app
    board = Board((prov or {}).get("settings", {}), flash_dir=_FLASH)
    board.fw_version = fw_version
    board.fw_state = fw_state
    app.run(board, prov)
except Exception as e:
    # A freshly installed firmware that cannot start: back to the old one.
    if fw_state == "pending" and fwi.rollback(_FLASH):
        sys.print_exception(e)
        import machine
        machine.reset()
    raise
