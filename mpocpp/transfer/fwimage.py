# Firmware images and the active-firmware pointer (docs/firmware-update.md).
#
# Image (little-endian), produced by tools/make_image.py:
#   "OCFW" | u8 format=1 | u8 len(board) | u8 len(version) | u8 0 | u16 count | u16 0
#   | board | version | count x (u8 len(name) | name | u32 size | bytes) | SHA-256
# The SHA-256 covers every byte before it.
#
# Flash layout under <flash_dir>/fw: slots "a" and "b" (one module directory
# each) and "active", a small JSON pointer written atomically:
#   {"slot": "a"|"b"|null, "v": version|null, "state": "ok"|"pending"|"failed",
#    "boots": n, "prev": {"slot": .., "v": ..}, "req": requestId}
# slot null = the firmware the board was flashed with (no slot); "req" only
# for a SignedUpdateFirmware (its requestId, for the status after the reboot).
#
# The boot part (select, rollback) is imported by the board's main.py before
# the firmware directory is chosen, so it imports nothing but built-ins.
import os
import json
from micropython import const

MAGIC = b"OCFW"
FORMAT = const(1)
_HEAD = const(12)
_SHA = const(32)
TRIAL_BOOTS = const(3)  # boots a pending firmware gets to reach an Accepted BootNotification
_NAME_MAX = const(64)
_VERSION_MAX = const(50)  # BootNotification.firmwareVersion is CiString50
_NAME_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"


class ImageError(Exception):
    pass


# --- pointer (boot time: built-ins only) ---
def _root(flash_dir):
    return flash_dir.rstrip("/") + "/fw"


def read_pointer(flash_dir):
    try:
        with open(_root(flash_dir) + "/active") as f:
            p = json.loads(f.read())
        return p if isinstance(p, dict) else None
    except (OSError, ValueError):
        return None


def write_pointer(flash_dir, p):
    # Old or new pointer after a power cut, never a mix (rename is atomic).
    root = _root(flash_dir)
    try:
        os.mkdir(root)
    except OSError:
        pass
    path = root + "/active"
    with open(path + ".tmp", "w") as f:
        f.write(json.dumps(p))
    os.rename(path + ".tmp", path)


def _isdir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def _rolled_back(flash_dir, p):
    prev = p.get("prev") or {}
    q = {"slot": prev.get("slot"), "v": prev.get("v"), "state": "failed", "failed": p.get("v"),
         "req": p.get("req")}
    write_pointer(flash_dir, q)
    return q


def select(flash_dir):
    # Boot: which firmware runs -> (module dir or None, version or None,
    # state "pending" / "failed" / None). A pending firmware that has used
    # its trial boots without an Accepted BootNotification is rolled back.
    p = read_pointer(flash_dir)
    if p is None:
        return None, None, None
    st = p.get("state")
    if st == "pending":
        n = p.get("boots", 0)
        if not isinstance(n, int) or n >= TRIAL_BOOTS:
            print("fwimage: firmware %s never reached the CSMS: rolling back" % p.get("v"))
            p = _rolled_back(flash_dir, p)
            st = "failed"
        else:
            p["boots"] = n + 1
            write_pointer(flash_dir, p)
    slot = p.get("slot")
    if slot is None:
        return None, p.get("v"), st if st != "ok" else None
    d = _root(flash_dir) + "/" + slot
    if slot not in ("a", "b") or not _isdir(d):
        print("fwimage: slot %r missing: running the flashed firmware" % slot)
        return None, None, None
    return d, p.get("v"), st if st != "ok" else None


def rollback(flash_dir):
    # The pending firmware crashed while starting: back to the previous one.
    p = read_pointer(flash_dir)
    if p is not None and p.get("state") == "pending":
        print("fwimage: firmware %s failed to start: rolling back" % p.get("v"))
        _rolled_back(flash_dir, p)
        return True
    return False


def confirm(flash_dir):
    # First Accepted BootNotification: "Installed" for a pending firmware,
    # "InstallationFailed" after a rollback, else None. The pointer is then ok.
    p = read_pointer(flash_dir)
    if p is None:
        return None
    st = p.get("state")
    if st not in ("pending", "failed"):
        return None
    write_pointer(flash_dir, {"slot": p.get("slot"), "v": p.get("v"), "state": "ok"})
    return "Installed" if st == "pending" else "InstallationFailed"


# --- image ---
class _Reader:
    # Sequential reads over the image file, hashing what passes (optional).
    def __init__(self, f, sha, limit):
        self.f = f
        self.sha = sha
        self.left = limit

    def small(self, n):
        if n > self.left:
            raise ImageError("truncated")
        b = self.f.read(n)
        if len(b) != n:
            raise ImageError("truncated")
        self.left -= n
        if self.sha is not None:
            self.sha.update(b)
        return b

    def stream(self, n, buf, out):
        # n bytes through buf, to out.write() if given.
        if n > self.left:
            raise ImageError("truncated")
        mv = memoryview(buf)
        size = len(buf)
        while n:
            k = self.f.readinto(mv[:min(size, n)])
            if not k:
                raise ImageError("truncated")
            if self.sha is not None:
                self.sha.update(mv[:k])
            if out is not None:
                out.write(mv[:k])
            n -= k
            self.left -= k


def _u16(b, i):
    return b[i] | b[i + 1] << 8


def _name(b):
    # A relative path of "/"-separated parts (the package tree), each part
    # non-empty, not starting with "." (so never ".."), of safe characters.
    try:
        s = b.decode()
    except UnicodeError:
        raise ImageError("bad file name")
    if not s or len(s) > _NAME_MAX:
        raise ImageError("bad file name")
    for part in s.split("/"):
        if not part or part[0] == ".":
            raise ImageError("bad file name")
        for c in part:
            if c not in _NAME_OK:
                raise ImageError("bad file name")
    return s


def _parent(dest, name):
    # Make the directories of name under dest.
    i = name.rfind("/")
    if i > 0:
        p = dest
        for part in name[:i].split("/"):
            p += "/" + part
            if not _isdir(p):
                os.mkdir(p)


def _walk(path, buf, sha, dest):
    # One pass over the image: header, entries (written under dest if given),
    # checks that the entries end exactly at the SHA-256. -> (board, version, count)
    try:
        size = os.stat(path)[6]
    except OSError:
        raise ImageError("no image")
    if size < _HEAD + _SHA:
        raise ImageError("too short")
    with open(path, "rb") as f:
        r = _Reader(f, sha, size - _SHA)
        h = r.small(_HEAD)
        if h[:4] != MAGIC:
            raise ImageError("not a firmware image")
        if h[4] != FORMAT:
            raise ImageError("image format %d not supported" % h[4])
        nb, nv, count = h[5], h[6], _u16(h, 8)
        try:
            board = r.small(nb).decode()
            version = r.small(nv).decode()
        except UnicodeError:
            raise ImageError("bad header")
        if not version or len(version) > _VERSION_MAX or count == 0:
            raise ImageError("bad header")
        for _ in range(count):
            name = _name(r.small(r.small(1)[0]))
            s = r.small(4)
            n = s[0] | s[1] << 8 | s[2] << 16 | s[3] << 24
            if dest is None:
                r.stream(n, buf, None)
            else:
                _parent(dest, name)
                with open(dest + "/" + name, "wb") as out:
                    r.stream(n, buf, out)
        if r.left:
            raise ImageError("trailing bytes")
        if sha is not None and f.read(_SHA) != sha.digest():
            raise ImageError("SHA-256 mismatch")
    return board, version, count


def verify(path, buf):
    # Magic, structure, length and SHA-256 -> (board, version, count).
    import hashlib
    return _walk(path, buf, hashlib.sha256(), None)


def _empty(d):
    # Remove everything under directory d (the slots hold package trees).
    for e in list(os.ilistdir(d)):
        p = d + "/" + e[0]
        if e[1] & 0x4000:
            _empty(p)
            os.rmdir(p)
        else:
            os.remove(p)


def _clear(d):
    if _isdir(d):
        _empty(d)
    else:
        os.mkdir(d)


def free_slot(flash_dir):
    # Before a download: empty the slot the next install will use (an old
    # firmware nobody returns to), so the image fits beside the running one.
    # Not while the running firmware is still pending: that slot is its way back.
    p = read_pointer(flash_dir) or {}
    if p.get("state") == "pending":
        return
    d = _root(flash_dir) + "/" + ("b" if p.get("slot") == "a" else "a")
    if _isdir(d):
        _empty(d)


def install(path, flash_dir, board_name, buf, req=None):
    # Verify the image, unpack it into the slot that is not running and point
    # the pointer at it as "pending". -> version. Raises ImageError / OSError;
    # the pointer is untouched then, so the old firmware keeps running.
    # req: the SignedUpdateFirmware's requestId, kept in the pointer.
    board, version, _ = verify(path, buf)
    if board_name and board != board_name:
        raise ImageError("image for board %s, not %s" % (board, board_name))
    p = read_pointer(flash_dir) or {}
    cur = p.get("slot")  # the running one, whatever its state
    slot = "b" if cur == "a" else "a"
    root = _root(flash_dir)
    try:
        os.mkdir(root)
    except OSError:
        pass
    d = root + "/" + slot
    _clear(d)
    try:
        _walk(path, buf, None, d)
    except Exception:
        _clear(d)
        raise
    q = {"slot": slot, "v": version, "state": "pending", "boots": 0,
         "prev": {"slot": cur, "v": p.get("v")}}
    if req is not None:
        q["req"] = req
    write_pointer(flash_dir, q)
    return version
