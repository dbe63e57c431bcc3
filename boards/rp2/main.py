# Pico W entry point: provisioning from /provisioning.json on first boot.
import json


def _provisioning():
    try:
        with open("/provisioning.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


prov = _provisioning()
from board import Board
import app
board = Board((prov or {}).get("settings", {}))
app.run(board, prov)
