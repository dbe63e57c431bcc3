# The simulated charger's flash in a file (boards/unix/fileflash.py): NOR
# semantics, and no allocation in its block device calls, as a board's flash
# driver: littlefs calls them from a file's finaliser during a collection,
# with the heap locked.
import os
import micropython
import vfs
from mpocpp_board.fileflash import FileNorFlash


def _path(name):
    return "/tmp/mpt_%s.bin" % name  # one per test: xdist runs a test once


def _flash(name, blocks):
    p = _path(name)
    try:
        os.remove(p)
    except OSError:
        pass
    return p, FileNorFlash(p, blocks * 4096)


def test_nor_semantics_and_counters():
    p, d = _flash("fileflash_nor", 4)
    try:
        assert d.ioctl(4, 0) == 4 and d.ioctl(5, 0) == 4096
        buf = bytearray(8)
        d.readblocks(1, buf, 100)
        assert buf == b"\xff" * 8
        d.writeblocks(1, b"\xf0\x0f\xaa", 100)
        d.writeblocks(1, b"\x3c\xff\xff", 100)  # AND: bits only cleared
        d.readblocks(1, buf, 100)
        assert bytes(buf[:4]) == b"\x30\x0f\xaa\xff"  # the bytes after: untouched
        assert d.programmed_bytes == 6
        d.writeblocks(2, b"\x55" * 4096)  # whole blocks: erased first
        big = bytearray(4096)
        d.readblocks(2, big)
        assert big == b"\x55" * 4096 and d.erases == 1
        d.writeblocks(3, b"\x00" * 5, 4096 - 5)  # the last bytes of the flash
        d.readblocks(3, buf, 4096 - 8)
        assert bytes(buf) == b"\xff\xff\xff\x00\x00\x00\x00\x00"
        assert os.stat(p)[6] == 4 * 4096  # nothing written past the end
    finally:
        os.remove(p)


def test_block_calls_allocate_nothing():
    p, d = _flash("fileflash_alloc", 4)
    try:
        data = bytearray(b"\x12" * 512)
        buf = bytearray(512)
        block = bytearray(4096)
        micropython.heap_lock()
        try:
            d.writeblocks(1, data, 256)
            d.readblocks(1, buf, 256)
            d.writeblocks(2, block)
            d.ioctl(6, 2)
        finally:
            micropython.heap_unlock()
        assert buf == data
    finally:
        os.remove(p)


def test_littlefs_file_closed_with_the_heap_locked():
    # What a file's finaliser does during a collection: the close writes.
    p, d = _flash("fileflash_lfs", 16)
    try:
        vfs.VfsLfs2.mkfs(d)
        fs = vfs.VfsLfs2(d)
        vfs.mount(fs, "/ffl")
        try:
            f = open("/ffl/a", "wb")
            f.write(b"x" * 300)
            micropython.heap_lock()
            try:
                f.close()
            finally:
                micropython.heap_unlock()
            with open("/ffl/a", "rb") as f:
                assert f.read() == b"x" * 300
        finally:
            vfs.umount("/ffl")
    finally:
        os.remove(p)
