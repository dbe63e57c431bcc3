# The simulated NOR flash: NOR semantics, counters, power cuts, backing file.
import os
from mpocpp_board.norflash import NorFlash, PowerCut, mount_lfs, umount


def test_erase_and_program_semantics():
    d = NorFlash(4 * 4096)
    assert d.ioctl(4, 0) == 4 and d.ioctl(5, 0) == 4096
    buf = bytearray(8)
    d.readblocks(1, buf, 100)
    assert buf == b"\xff" * 8
    d.writeblocks(1, b"\xf0\x0f\xaa", 100)
    d.writeblocks(1, b"\x3c\xff\xff", 100)  # AND: bits only cleared
    d.readblocks(1, buf, 100)
    assert bytes(buf[:3]) == b"\x30\x0f\xaa"
    assert d.violations == 1  # 0x3c tried to set bits of 0xf0
    assert d.programmed_bytes == 6
    assert d.ioctl(6, 1) == 0
    d.readblocks(1, buf, 100)
    assert buf == b"\xff" * 8
    assert d.erases == 1 and d.wear == [0, 1, 0, 0]


def test_simple_interface_erases_first():
    d = NorFlash(2 * 4096)
    d.writeblocks(0, b"\x00" * 4096, 0)
    d.writeblocks(0, b"\x55" * 4096)  # no offset: whole blocks, erase first
    buf = bytearray(4096)
    d.readblocks(0, buf)
    assert buf == b"\x55" * 4096 and d.erases == 1 and d.violations == 0


def test_cut_after_bytes_leaves_torn_prefix_then_refuses_io():
    d = NorFlash(2 * 4096)
    d.cut_after_bytes = 5
    d.writeblocks(0, b"\x01\x02", 0)
    try:
        d.writeblocks(0, b"\x11\x12\x13\x14\x15", 2)
        assert False, "no cut"
    except PowerCut as e:
        assert isinstance(e, OSError) and e.args[0] == 5
    assert not d.alive
    buf = bytearray(8)
    assert d.readblocks(0, buf) == -5
    assert d.writeblocks(0, b"\x00", 0) == -5
    assert d.ioctl(6, 0) == -5
    d2 = d.reopen()
    d2.readblocks(0, buf)
    assert bytes(buf) == b"\x01\x02\x11\x12\x13\xff\xff\xff"
    assert d2.programmed_bytes == 5 and d2.alive and not d.alive


def test_cut_at_op_and_torn_erase():
    d = NorFlash(2 * 4096)
    d.writeblocks(1, b"\x00" * 4096, 0)
    d.cut_at_op = d.ops  # the next operation: an erase that only gets 100 bytes
    d.cut_keep = 100
    try:
        d.ioctl(6, 1)
        assert False
    except OSError:
        pass
    d = d.reopen()
    buf = bytearray(4096)
    d.readblocks(1, buf)
    assert buf[:100] == b"\xff" * 100 and buf[100:] == b"\x00" * 3996
    assert d.erases == 0


def test_on_op_callback():
    d = NorFlash(2 * 4096)
    seen = []

    def cb(kind, block, off, n):
        seen.append((kind, block, off, n))
        return 1 if len(seen) == 3 else None

    d.on_op = cb
    d.writeblocks(0, b"ab", 10)
    d.ioctl(6, 1)
    try:
        d.writeblocks(1, b"\x00\x00", 7)
        assert False
    except OSError:
        pass
    assert seen == [("w", 0, 10, 2), ("e", 1, 0, 4096), ("w", 1, 7, 2)]
    buf = bytearray(3)
    d.reopen().readblocks(1, buf, 7)
    assert bytes(buf) == b"\x00\xff\xff"


def test_backing_file_keeps_writes():
    path = (
        "/tmp/norflash_test_%d.bin" % os.getpid()
        if hasattr(os, "getpid")
        else "/tmp/norflash_test.bin"
    )
    try:
        os.remove(path)
    except OSError:
        pass
    d = NorFlash(3 * 4096, path=path)
    assert os.stat(path)[6] == 3 * 4096
    d.writeblocks(2, b"hello", 50)
    d.ioctl(6, 0)
    # another process (or a killed one) sees the bytes at once
    with open(path, "rb") as f:
        f.seek(2 * 4096 + 50)
        assert f.read(5) == b"hello"
    d.close()
    d2 = NorFlash(3 * 4096, path=path)
    buf = bytearray(5)
    d2.readblocks(2, buf, 50)
    assert buf == b"hello"
    d2.close()
    os.remove(path)


def test_mount_lfs_formats_once_and_survives_reopen():
    import gc
    d = NorFlash(16 * 4096)
    mount_lfs(d, "/flash")
    with open("/flash/a", "wb") as f:
        f.write(b"kept")
    umount("/flash")
    d = d.reopen()
    gc.collect()
    mount_lfs(d, "/flash")  # must not format again
    with open("/flash/a", "rb") as f:
        assert f.read() == b"kept"
    umount("/flash")
