# fwimage on the simulated NOR flash (littlefs): image checks, A/B slots,
# the pending pointer with trial boots and rollback, power cuts during an
# install; log.FlashRing bounds.
# heap: 4M
import gc
import os
import hashlib
import struct
from mpocpp_board.norflash import NorFlash, mount_lfs, umount
from mpocpp.transfer import fwimage
from mpocpp.transfer.fwimage import ImageError

D = "/flash"
IMG = D + "/fw.img"


def pack(files, version="1.0", board="unix"):
    vb = version.encode()
    bb = board.encode()
    out = [b"OCFW", struct.pack("<BBBBHH", 1, len(bb), len(vb), 0, len(files), 0), bb, vb]
    for name, data in files:
        nb = name.encode()
        out += [struct.pack("<B", len(nb)), nb, struct.pack("<I", len(data)), data]
    body = b"".join(out)
    return body + hashlib.sha256(body).digest()


FILES = [("app.mpy", b"A" * 5000), ("cp.mpy", bytes(range(256)) * 20), ("x.mpy", b"")]


class Rig:
    def __init__(self, blocks=96):
        self.dev = NorFlash(blocks * 4096)
        mount_lfs(self.dev, D)

    def power(self):
        umount(D)
        self.dev = self.dev.reopen()
        gc.collect()
        mount_lfs(self.dev, D)

    def done(self):
        umount(D)


def put(data, path=IMG):
    with open(path, "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


BUF = bytearray(512)


def test_verify_and_unpack():
    r = Rig()
    try:
        put(pack(FILES, "1.2.3"))
        assert fwimage.verify(IMG, BUF) == ("unix", "1.2.3", 3)
        v = fwimage.install(IMG, D, "unix", BUF)
        assert v == "1.2.3"
        for name, data in FILES:
            assert read(D + "/fw/a/" + name) == data
        p = fwimage.read_pointer(D)
        assert (
            p["slot"] == "a" and p["state"] == "pending" and p["prev"] == {"slot": None, "v": None}
        )
    finally:
        r.done()


def _refused(data, board="unix", why=None):
    put(data)
    try:
        fwimage.install(IMG, D, board, BUF)
    except ImageError as e:
        if why is not None:
            assert why in str(e), str(e)
        assert fwimage.read_pointer(D) is None  # the old firmware stays
        return
    raise AssertionError("accepted a bad image")


def test_bad_images_refused():
    r = Rig()
    try:
        good = pack(FILES)
        flip = bytearray(good)
        flip[100] ^= 1
        _refused(bytes(flip), why="SHA-256")
        _refused(b"XXXX" + good[4:], why="not a firmware image")
        _refused(good[:-40], why="truncated")
        body = good[:-32] + b"extra"
        _refused(body + hashlib.sha256(body).digest(), why="trailing")
        _refused(pack([("../evil.mpy", b"x")]), why="bad file name")
        _refused(pack([("/abs.mpy", b"x")]), why="bad file name")
        _refused(pack([("a//b.mpy", b"x")]), why="bad file name")
        _refused(pack([("mpocpp/../../b.mpy", b"x")]), why="bad file name")
        _refused(pack([("a/.b.mpy", b"x")]), why="bad file name")
        _refused(pack(FILES, "v" * 51), why="bad header")
        _refused(good, board="esp32", why="image for board")
        _refused(b"", why="too short")
        _refused(b"<html>404</html>" * 4, why="not a firmware image")
    finally:
        r.done()


def test_select_confirm_and_second_update():
    r = Rig()
    try:
        assert fwimage.select(D) == (None, None, None)  # never updated: the flashed firmware
        put(pack(FILES, "2.0"))
        fwimage.install(IMG, D, "unix", BUF)
        assert fwimage.select(D) == (D + "/fw/a", "2.0", "pending")
        assert fwimage.confirm(D) == "Installed"
        assert fwimage.confirm(D) is None
        assert fwimage.select(D) == (D + "/fw/a", "2.0", None)
        put(pack(FILES[:1], "3.0"))
        fwimage.free_slot(D)  # nothing in b yet: harmless
        fwimage.install(IMG, D, "unix", BUF)
        p = fwimage.read_pointer(D)
        assert p["slot"] == "b" and p["prev"] == {"slot": "a", "v": "2.0"}
        assert sorted(os.listdir(D + "/fw/b")) == ["app.mpy"]
        assert fwimage.select(D) == (D + "/fw/b", "3.0", "pending")
        fwimage.free_slot(D)  # pending: a is the way back, kept
        assert len(os.listdir(D + "/fw/a")) == 3
        # 3.0 crashes while starting: main.py rolls back to 2.0.
        assert fwimage.rollback(D)
        assert fwimage.select(D) == (D + "/fw/a", "2.0", "failed")
        assert fwimage.confirm(D) == "InstallationFailed"
        assert fwimage.select(D) == (D + "/fw/a", "2.0", None)
        assert not fwimage.rollback(D)  # nothing pending
        fwimage.free_slot(D)  # the failed 3.0 in b goes; the running a stays
        assert os.listdir(D + "/fw/b") == [] and len(os.listdir(D + "/fw/a")) == 3
    finally:
        r.done()


def test_trial_boots_then_rollback():
    r = Rig()
    try:
        put(pack(FILES, "2.0"))
        fwimage.install(IMG, D, "unix", BUF)
        for _ in range(fwimage.TRIAL_BOOTS):
            assert fwimage.select(D)[2] == "pending"
        # Never reached an Accepted BootNotification: the flashed firmware again.
        assert fwimage.select(D) == (None, None, "failed")
        assert fwimage.read_pointer(D)["failed"] == "2.0"
        assert fwimage.confirm(D) == "InstallationFailed"
    finally:
        r.done()


def test_signed_request_id_kept_through_rollback():
    # SignedUpdateFirmware's requestId: in the pending pointer, and in the
    # failed one after a rollback (for the SignedFirmwareStatusNotification).
    r = Rig()
    try:
        put(pack(FILES, "2.0"))
        fwimage.install(IMG, D, "unix", BUF, 42)
        assert fwimage.read_pointer(D)["req"] == 42
        assert fwimage.rollback(D)
        assert fwimage.read_pointer(D)["req"] == 42
        assert fwimage.confirm(D) == "InstallationFailed"
        put(pack(FILES, "2.1"))
        fwimage.install(IMG, D, "unix", BUF)  # an UpdateFirmware: no requestId
        assert "req" not in fwimage.read_pointer(D)
    finally:
        r.done()


def test_missing_slot_or_bad_pointer_runs_flashed_firmware():
    r = Rig()
    try:
        fwimage.write_pointer(D, {"slot": "a", "v": "9", "state": "ok"})
        assert fwimage.select(D) == (None, None, None)
        put(b"{not json", D + "/fw/active")
        assert fwimage.select(D) == (None, None, None)
    finally:
        r.done()


def test_power_cut_during_install():
    # Whatever operation the power goes at, the next boot runs the old
    # firmware or the complete new one (pending), never a partial slot.
    r = Rig()
    try:
        put(pack(FILES, "2.0"))
        r.power()
        start = r.dev.ops
        fwimage.install(IMG, D, "unix", BUF)
        total = r.dev.ops - start
        assert total > 10
        seen = set()
        step = max(1, total // 25)
        for cut in list(range(0, total, step)) + list(range(max(0, total - 6), total + 1)):
            r.done()
            r = Rig()
            put(pack(FILES, "2.0"))
            r.power()
            r.dev.cut_at_op = r.dev.ops + cut
            try:
                fwimage.install(IMG, D, "unix", BUF)
            except OSError:
                pass
            r.power()
            d, v, st = fwimage.select(D)
            if d is None:
                assert v is None and st is None
                seen.add("old")
            else:
                assert (v, st) == ("2.0", "pending")
                for name, data in FILES:
                    assert read(d + "/" + name) == data
                seen.add("new")
        assert seen == {"old", "new"}, seen
    finally:
        r.done()


def _now():
    return 1795289360


def test_flash_ring_bounded():
    from mpocpp.util import log
    r = Rig()
    try:
        ring = log.FlashRing(D + "/syslog", _now, size=2048, ram=256)
        for i in range(400):
            ring("%d I t: line number %d" % (i, i))
        old, cur = ring.files()
        a = read(old)
        b = read(cur)
        assert len(a) < 2048 + 256 and len(b) < 2048 + 256
        assert b.rstrip().endswith(b"line number 399")
        first = int((a + b).split(b"\n")[0].split(b" ")[1])
        assert 0 < first < 399  # old lines rotated out, the newest kept in order
    finally:
        r.done()


def test_package_tree_unpacked_and_emptied():
    # Images carry the package trees (mpocpp/..., mpocpp_board/...): the
    # directories are made on install and emptied with the slot.
    r = Rig()
    try:
        tree = [("mpocpp/__init__.mpy", b""), ("mpocpp/protocol/ws.mpy", b"W" * 3000),
                ("mpocpp/protocol/rpc.mpy", b"R" * 100), ("mpocpp_board/board.mpy", b"B")]
        put(pack(tree, "4.0"))
        fwimage.install(IMG, D, "unix", BUF)
        a = D + "/fw/a"
        assert sorted(os.listdir(a)) == ["mpocpp", "mpocpp_board"]
        assert sorted(os.listdir(a + "/mpocpp/protocol")) == ["rpc.mpy", "ws.mpy"]
        with open(a + "/mpocpp/protocol/ws.mpy", "rb") as f:
            assert f.read() == b"W" * 3000
        assert fwimage.confirm(D) == "Installed"
        put(pack(FILES, "5.0"))
        fwimage.install(IMG, D, "unix", BUF)  # into b
        fwimage.confirm(D)
        fwimage.free_slot(D)  # a (4.0) goes, trees included
        assert os.listdir(a) == []
    finally:
        r.done()
