# The simulated charger's flash in a file (boards/unix/fileflash.py): NOR
# semantics, and no allocation in its block device calls, as a board's flash
# driver: littlefs calls them from a file's finaliser during a collection,
# with the heap locked.
import os
import micropython
import vfs
from mpocpp_board.fileflash import FileNorFlash
from fakes import rmtree, tmpdir


def _flash(blocks):
    # -> (its directory, the flash in a fresh file there)
    tmp = tmpdir("mpt_fileflash")
    return tmp, FileNorFlash(tmp + "/flash.bin", blocks * 4096)


def test_nor_semantics_across_pages():
    # A program only clears bits, page by page: a write of 600 bytes from
    # offset 200 spans three 256-byte pages and leaves the bytes around it.
    tmp, d = _flash(4)
    try:
        first = bytearray(0xF0 if i % 2 else 0x0F for i in range(600))
        again = bytearray(0x3C for i in range(600))
        d.writeblocks(1, first, 200)
        d.writeblocks(1, again, 200)
        got = bytearray(604)
        d.readblocks(1, got, 198)
        assert got[:2] == b"\xff\xff" and got[602:] == b"\xff\xff"
        assert all(got[2 + i] == first[i] & 0x3C for i in range(600))
        assert d.programmed_bytes == 1200 and d.erases == 0
        d.writeblocks(2, b"\x55" * 4096)  # whole blocks: erased first
        big = bytearray(4096)
        d.readblocks(2, big)
        assert big == b"\x55" * 4096 and d.erases == 1
        buf = bytearray(8)
        d.writeblocks(3, b"\x00" * 5, 4096 - 5)  # the last bytes of the flash
        d.readblocks(3, buf, 4096 - 8)
        assert bytes(buf) == b"\xff\xff\xff\x00\x00\x00\x00\x00"
        assert os.stat(tmp + "/flash.bin")[6] == 4 * 4096  # nothing written past the end
    finally:
        rmtree(tmp)


def test_block_calls_allocate_nothing():
    tmp, d = _flash(4)
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
        rmtree(tmp)


def test_littlefs_file_closed_with_the_heap_locked():
    # What a file's finaliser does during a collection: the close writes.
    tmp, d = _flash(16)
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
        rmtree(tmp)
