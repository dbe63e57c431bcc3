# Freeze the firmware into a MicroPython image for this board, so that its
# bytecode stays in flash instead of the GC heap (see docs/boards.md):
#   make -C ports/<port> BOARD=<BOARD> FROZEN_MANIFEST=/path/to/this/manifest.py
include("$(PORT_DIR)/boards/manifest.py")
freeze("$(MPY_DIR)/../ocpp-firmware/firmware")
freeze("$(MPY_DIR)/../ocpp-firmware/boards/common")
freeze("$(MPY_DIR)/../ocpp-firmware/boards/rp2", "board.py")
