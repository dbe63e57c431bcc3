# Entry point of the simulated charger (run by tools/sim inside `micropython`):
#   main.py --csms URL --id ID --data DIR [--bench HOST:PORT] [--connectors N]
#           [--config FILE] [--queue lfs|ring] [--log debug|info|warn] [--bridge HOST:PORT]
#           [--romfs IMAGE]
import sys
import json
import asyncio


def parse_args(argv):
    opts = {"csms": None, "id": None, "data": None, "bench": None, "connectors": None,
            "config": None, "queue": "lfs", "log": "info", "bridge": None, "romfs": None}
    i = 1
    while i < len(argv):
        a = argv[i]
        if not a.startswith("--") or a[2:] not in opts or i + 1 >= len(argv):
            raise SystemExit("bad argument: " + a)
        opts[a[2:]] = argv[i + 1]
        i += 2
    if not opts["data"]:
        raise SystemExit("--data DIR is required")
    return opts


def main():
    opts = parse_args(sys.argv)
    rom = mount_romfs(opts["romfs"]) if opts["romfs"] else mount_lib()
    from mpocpp.util import log
    log.level = {"debug": 0, "info": 1, "warn": 2, "error": 3}.get(opts["log"], 1)
    prov = None
    if opts["config"]:
        with open(opts["config"]) as f:
            prov = json.load(f)
    n = int(opts["connectors"]) if opts["connectors"] else None
    if n is None and prov:
        n = (prov.get("keys") or {}).get("NumberOfConnectors")
    n = int(n or 1)
    if n < 1 or n > 2:
        raise SystemExit("--connectors must be 1 or 2")
    try:
        import os
        os.mkdir(opts["data"])
    except OSError:
        pass
    from mpocpp_board.board import Board
    board = Board(opts["data"], connectors=n, queue=opts["queue"], bridge=opts["bridge"],
                  rom_bytes=rom)
    fwi, fw_version, fw_state = select_firmware(board)
    try:
        from mpocpp.charger import Charger
        overrides = {"csmsUrl": opts["csms"], "chargeBoxId": opts["id"]}
        ch = Charger(board, prov, overrides, fw_version, fw_state)
        tasks = []
        if opts["bench"]:
            from mpocpp_board import bench
            host, port = opts["bench"].rsplit(":", 1)
            tasks.append(bench.serve(ch, board, host, int(port)))
        asyncio.run(ch.run(tasks))
    except Exception as e:
        # A freshly installed firmware that cannot start: back to the old one.
        if fw_state == "pending" and fwi.rollback(board.flash_dir):
            sys.print_exception(e)
            board.reset(True)
        raise


def mount_lib():
    # The build directory (MICROPYPATH's, from tools/sim) at /lib, where
    # tools/deploy puts it on a board: each module's __file__ is a name
    # interned for good, so a long host path would cost heap no board pays
    # (about 1.2 KiB of the 32-bit port's idle figure).
    import vfs
    d = sys.path[-1]  # MICROPYPATH is ".frozen:<build>"
    if d.startswith("/") and d != "/lib":
        vfs.mount(vfs.VfsPosix(d), "/lib")
        sys.path[-1] = "/lib"
    return 0


def mount_romfs(path):
    # The firmware run in place from a ROMFS image (`mpremote romfs build`),
    # as on a board with a ROMFS partition: bytecode stays in the image, the
    # heap holds data only. The unix port has no memory-mapped flash, so the
    # image is read into one block of the GC heap before anything else; the
    # bench's heap figures leave it out (tools/sim adds its size to --heap).
    import vfs
    with open(path, "rb") as f:
        data = f.read()
    vfs.mount(vfs.VfsRom(data), "/rom")
    sys.path.insert(0, "/rom")
    print("board: running the firmware in place from %s (%d bytes, /rom)" % (path, len(data)))
    return len(data)


def select_firmware(board):
    # The installed firmware (docs/firmware-update.md): its slot in the flash
    # goes before the build directory, so every module imported from here on
    # (app and the firmware) comes from it. The board layer, imported above
    # to mount the flash, stays the build's on this simulated board.
    from mpocpp.transfer import fwimage
    d, v, st = fwimage.select(board.flash_dir)
    for name in list(sys.modules):  # the slot's own package is imported later
        if (name == "mpocpp" or name.startswith("mpocpp.")) and name != "mpocpp.util.log":
            del sys.modules[name]  # (the log stays: the board's drivers share it)
    if d:
        sys.path.insert(0, d)
        print("board: running firmware %s from %s%s" % (v, d, " (%s)" % st if st else ""))
    return fwimage, v, st


main()
