# The simulated charger's flash: NOR semantics (erase sets 0xFF, programming
# only clears bits) kept in a file under --data, with no copy in the GC heap,
# so that the firmware's heap figures on the host are those of a board.
# (norflash.NorFlash keeps its bytes in RAM for the fault-injection tests.)
# Programs go to the file a 256-byte page at a time, as a NOR chip's page
# programs do: a power cut (the process killed) tears a write at a page.
from micropython import const

_PAGE = const(256)

_IOCTL_COUNT = const(4)
_IOCTL_SIZE = const(5)
_IOCTL_ERASE = const(6)


class FileNorFlash:
    def __init__(self, path, size, block_size=4096):
        self.block_size = block_size
        self.blocks = size // block_size
        self._end = self.blocks * block_size
        self.programmed_bytes = 0
        self.erases = 0
        # A page of scratch for read-modify-program and a page of erased
        # bytes: a block's worth of each would be 8 KiB of heap that a
        # board's flash driver does not take.
        self._buf = bytearray(_PAGE)
        self._ff = b"\xff" * _PAGE
        try:
            f = open(path, "r+b")
        except OSError:
            with open(path, "wb") as f:
                for _ in range(self.blocks * block_size // _PAGE):
                    f.write(self._ff)
            f = open(path, "r+b")
        self._f = f

    # Neither readblocks nor writeblocks allocates, as a board's flash
    # driver: littlefs calls them from inside its own code and from an open
    # file's finaliser during a collection (the heap locked), where a
    # MemoryError would leave the filesystem half-written.
    def readblocks(self, n, buf, off=0):
        f = self._f
        f.seek(n * self.block_size + off)
        f.readinto(buf)

    def writeblocks(self, n, buf, off=None):
        bs = self.block_size
        if off is None:  # whole blocks: erase first
            for i in range(len(buf) // bs):
                self._erase(n + i)
            off = 0
        f = self._f
        pos = n * bs + off
        page = self._buf
        done = 0
        total = len(buf)
        while done < total:
            k = min(_PAGE, total - done)
            at = pos + done
            f.seek(at)
            f.readinto(page)
            # NOR: a program can only clear bits.
            for i in range(k):
                page[i] &= buf[done + i]
            f.seek(at)
            if at + _PAGE <= self._end:
                f.write(page)  # past k, the bytes just read: unchanged
            else:  # the flash's last page, written in part (allocates)
                f.write(memoryview(page)[:k])
            done += k
        f.flush()
        self.programmed_bytes += total

    def _erase(self, n):
        f = self._f
        f.seek(n * self.block_size)
        for _ in range(self.block_size // _PAGE):
            f.write(self._ff)
        f.flush()
        self.erases += 1

    def ioctl(self, op, arg):
        if op == _IOCTL_COUNT:
            return self.blocks
        if op == _IOCTL_SIZE:
            return self.block_size
        if op == _IOCTL_ERASE:
            self._erase(arg)
            return 0
        return 0
