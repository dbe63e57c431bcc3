# Small file helpers for the flash filesystem (littlefs on boards, the
# simulated NOR flash on the unix board).
import os


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def read(path, default=None):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return default


def write_atomic(path, data):
    # Write a whole file so that a power cut leaves the old or the new
    # content, never a mix: write a temporary file, then rename over the
    # target (atomic on littlefs and POSIX).
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def makedirs(path):
    p = ""
    for part in path.split("/"):
        if not part:
            p = "/" if not p else p
            continue
        p = p + part if p.endswith("/") else p + "/" + part
        try:
            os.mkdir(p)
        except OSError:
            pass


def remove(path):
    try:
        os.remove(path)
        return True
    except OSError:
        return False
