# Simulated NOR flash block device for the unix board and the host tests.
#
# NorFlash(size, block_size=4096, path=None) speaks the MicroPython block
# device protocol (readblocks / writeblocks / ioctl, ioctl 6 = erase one
# block), so VfsLfs2 and the raw ring store run on it unchanged.
#   - erase sets a block to 0xFF; programming can only clear bits
#     (new = old AND data); `violations` counts programs that tried to set one.
#   - counters: programmed_bytes, erases, wear[block] (erases per block), ops.
#   - path: the bytes live in that file too (created 0xFF-filled if absent);
#     every program / erase goes through to the file at once, so killing the
#     process keeps what was written.
#   - power cut: cut_after_bytes=N (program budget), cut_at_op=K with
#     cut_keep=J (the K-th program/erase keeps only its first J bytes), or
#     on_op=callable(kind, block, off, n) -> None or bytes to keep (kind "w"
#     or "e"). The torn prefix is written, PowerCut (OSError EIO) is raised,
#     and from then on every I/O returns -5 without allocating (old VfsLfs2
#     and file finalizers may still call in). reopen() gives a fresh, live
#     device over the same bytes and counters: the next power epoch.
from micropython import const

_EIO = const(5)
_IOCTL_INIT = const(1)
_IOCTL_DEINIT = const(2)
_IOCTL_SYNC = const(3)
_IOCTL_COUNT = const(4)
_IOCTL_SIZE = const(5)
_IOCTL_ERASE = const(6)


class PowerCut(OSError):
    pass


class NorFlash:
    def __init__(self, size, block_size=4096, path=None, _mem=None):
        if size <= 0 or size % block_size:
            raise ValueError("size must be a positive multiple of block_size")
        self.block_size = block_size
        self.blocks = size // block_size
        self.path = path
        self.alive = True
        self.programmed_bytes = 0
        self.erases = 0
        self.violations = 0
        self.ops = 0
        self.wear = [0] * self.blocks
        self.cut_after_bytes = None
        self.cut_at_op = None
        self.cut_keep = 0
        self.on_op = None
        self._file = None
        if _mem is not None:
            self.mem = _mem
        else:
            self.mem = bytearray(b"\xff" * size)
            if path:
                self._load(size)
        self._mv = memoryview(self.mem)

    def _load(self, size):
        try:
            with open(self.path, "rb") as f:
                n = f.readinto(self.mem)
            if n != size:
                print("norflash: %s holds %d bytes, expected %d" % (self.path, n, size))
        except OSError:
            with open(self.path, "wb") as f:
                f.write(self.mem)
        self._file = open(self.path, "r+b")

    def reopen(self):
        # A new power epoch over the same bytes: this object stays dead.
        self.alive = False
        d = NorFlash(len(self.mem), self.block_size, None, self.mem)
        d.path = self.path
        d._file = self._file
        d.programmed_bytes = self.programmed_bytes
        d.erases = self.erases
        d.violations = self.violations
        d.ops = self.ops
        d.wear = self.wear
        return d

    def close(self):
        self.alive = False
        if self._file:
            self._file.close()
            self._file = None

    # --- block device protocol

    def readblocks(self, n, buf, off=0):
        if not self.alive:
            return -5
        a = n * self.block_size + off
        buf[:] = self._mv[a:a + len(buf)]

    def writeblocks(self, n, buf, off=None):
        if not self.alive:
            return -5
        bs = self.block_size
        if off is None:  # simple interface: whole blocks, erase first
            for i in range(len(buf) // bs):
                self._erase(n + i)
            off = 0
        self._program(n * bs + off, buf)

    def ioctl(self, op, arg):
        if op == _IOCTL_COUNT:
            return self.blocks
        if op == _IOCTL_SIZE:
            return self.block_size
        if not self.alive:
            return -5
        if op == _IOCTL_ERASE:
            self._erase(arg)
            return 0
        if op in (_IOCTL_INIT, _IOCTL_DEINIT, _IOCTL_SYNC):
            return 0
        return -22

    # --- NOR semantics and power cuts

    def _cut(self, kind, block, off, n):
        # -> bytes of this operation that reach the flash before the cut, or -1
        keep = -1
        if self.cut_at_op is not None and self.ops == self.cut_at_op:
            keep = min(self.cut_keep, n)
        elif self.on_op is not None:
            k = self.on_op(kind, block, off, n)
            if k is not None:
                keep = min(k, n)
        if kind == "w" and self.cut_after_bytes is not None:
            b = self.cut_after_bytes
            if b < n and (keep < 0 or b < keep):
                keep = b
            self.cut_after_bytes -= n
        self.ops += 1
        return keep

    def _die(self):
        self.alive = False
        raise PowerCut(_EIO)

    def _program(self, a, buf):
        n = len(buf)
        if a < 0 or a + n > len(self.mem):
            raise ValueError("program outside the device")
        bs = self.block_size
        keep = self._cut("w", a // bs, a % bs, n)
        k = n if keep < 0 else keep
        if k:
            old = int.from_bytes(self._mv[a:a + k], "big")
            data = int.from_bytes(buf[:k], "big")
            if old & data != data:
                self.violations += 1
            self.mem[a:a + k] = (old & data).to_bytes(k, "big")
            self.programmed_bytes += k
            self._sync(a, k)
        if keep >= 0:
            self._die()

    def _erase(self, block):
        if not 0 <= block < self.blocks:
            raise ValueError("erase outside the device")
        bs = self.block_size
        keep = self._cut("e", block, 0, bs)
        k = bs if keep < 0 else keep
        a = block * bs
        if k:
            # a cut erase is modelled as an erased prefix, the rest untouched
            self.mem[a:a + k] = b"\xff" * k
            self._sync(a, k)
        if keep < 0:
            self.erases += 1
            self.wear[block] += 1
        else:
            self._die()

    def _sync(self, a, n):
        f = self._file
        if f:
            f.seek(a)
            f.write(self._mv[a:a + n])
            f.flush()


def mount_lfs(dev, mountpoint):
    # Mount the littlefs on dev at mountpoint; format it first when it holds
    # none (a new flash). Returns the VfsLfs2 object.
    import vfs
    try:
        fs = vfs.VfsLfs2(dev)
    except OSError as e:
        print("norflash: no littlefs on the device (%r): formatting" % (e,))
        vfs.VfsLfs2.mkfs(dev)
        fs = vfs.VfsLfs2(dev)
    vfs.mount(fs, mountpoint)
    return fs


def umount(mountpoint):
    # Unmount, ignoring the errors of a dead power epoch.
    import vfs
    try:
        vfs.umount(mountpoint)
    except OSError:
        pass

