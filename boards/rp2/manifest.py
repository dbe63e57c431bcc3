# Freeze the firmware into a MicroPython image for this board, so that its
# bytecode stays in flash instead of the GC heap (see docs/boards.md). First
# assemble the two packages: tools/build_mpy.py --board rp2 --source-tree
# (build/src-rp2), then, in a MicroPython checkout next to this repository
# (named ocpp-firmware):
#   make -C ports/<port> BOARD=<BOARD> FROZEN_MANIFEST=/path/to/this/manifest.py
include("$(PORT_DIR)/boards/manifest.py")
package("mpocpp", base_path="$(MPY_DIR)/../ocpp-firmware/build/src-rp2")
package("mpocpp_board", base_path="$(MPY_DIR)/../ocpp-firmware/build/src-rp2")
