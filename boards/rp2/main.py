# Pico W entry point: boards/common/boardmain.py picks the installed firmware
# slot, applies /provisioning.json on first boot and runs the firmware.
from mpocpp_board import boardmain

boardmain.run()
