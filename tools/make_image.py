#!/usr/bin/env python3
"""Build a firmware image for UpdateFirmware (format: mpocpp/transfer/fwimage.py,
docs/firmware-update.md).

    tools/make_image.py --version 1.2.0 [--board unix|esp32|rp2] [--src DIR]
                        [--out FILE] [--no-build]

Packs every .mpy of build/mpy-BOARD (the package trees, with schema.bin)
(compiled first with tools/build_mpy.py unless --no-build) into one file:
header (magic, format, board, version), the entries (name, size, bytes)
and a SHA-256 of everything before it.
Serve the file over HTTP, HTTPS or FTP and send its URL in UpdateFirmware.
"""
import argparse
import hashlib
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAGIC = b"OCFW"
FORMAT = 1
VERSION_MAX = 50
NAME_MAX = 64


def pack(files, version, board):
    """files: list of (name, bytes) -> the image bytes."""
    vb = version.encode()
    bb = board.encode()
    if not vb or len(vb) > VERSION_MAX:
        raise ValueError("version must be 1..%d bytes" % VERSION_MAX)
    if not files or len(files) > 0xFFFF or len(bb) > 255:
        raise ValueError("bad file list or board")
    out = [MAGIC, struct.pack("<BBBBHH", FORMAT, len(bb), len(vb), 0, len(files), 0), bb, vb]
    for name, data in files:
        nb = name.encode()
        parts = name.split("/")
        if not nb or len(nb) > NAME_MAX or any(not p or p.startswith(".") for p in parts):
            raise ValueError("bad file name %r" % name)
        out += [struct.pack("<B", len(nb)), nb, struct.pack("<I", len(data)), data]
    body = b"".join(out)
    return body + hashlib.sha256(body).digest()


def collect(src):
    """-> [(path inside the bundle, bytes)] of every .mpy and data file
    under src (the mpocpp and mpocpp_board package trees of
    tools/build_mpy.py; schema.bin beside its module)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import build_mpy
    files = []
    for rel in build_mpy.bundle_files(src):
        with open(os.path.join(src, rel), "rb") as f:
            files.append((rel.replace(os.sep, "/"), f.read()))
    return sorted(files)


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--version", required=True)
    ap.add_argument("--board", default="unix", choices=("unix", "esp32", "rp2"))
    ap.add_argument("--src", help="directory of .mpy files (default build/mpy-BOARD)")
    ap.add_argument("--out", help="output file (default build/fw-BOARD-VERSION.img)")
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args(argv)
    src = a.src or os.path.join(ROOT, "build", "mpy-" + a.board)
    if not a.src and not a.no_build:
        sys.path.insert(0, os.path.join(ROOT, "tools"))
        import build_mpy
        build_mpy.build(a.board, quiet=False)  # shows its progress on a terminal
    files = collect(src)
    if not files:
        ap.error("no .mpy files in " + src)
    img = pack(files, a.version, a.board)
    out = a.out or os.path.join(ROOT, "build", "fw-%s-%s.img" % (a.board, a.version))
    with open(out, "wb") as f:
        f.write(img)
    print(
        "make_image: %s: %d files, %d bytes, version %s" % (out, len(files), len(img), a.version)
    )
    return out


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import project_env
    project_env.use_venv()
    main()
