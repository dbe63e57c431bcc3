"""Shared paths and helpers for the host tests (CPython side)."""
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BIN = os.path.dirname(sys.executable)
# The interpreter of the whole suite: $MICROPYTHON (the 32-bit unix port in
# ../shared/targets/unix32, say), else the unix port .venv has.
MICROPYTHON = os.environ.get("MICROPYTHON") or (
    os.path.join(_BIN, "micropython") if os.path.exists(os.path.join(_BIN, "micropython"))
    else shutil.which("micropython"))
# The firmware package and the unix board package as sources
# (tools/build_mpy.py --source-tree), then the MicroPython test modules.
SRC_TREE = os.path.join(ROOT, "build", "src-unix")
MPY_PATH = ":".join([
    ".frozen",  # asyncio and friends are frozen into the unix port
    SRC_TREE,
    os.path.join(ROOT, "host_tests", "mp"),
])


def source_tree():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import build_mpy
    return build_mpy.source_tree("unix")


# The 32-bit unix port (../shared/targets/unix32): objects the size they have
# on a board. Tests marked unix32 run on it too when it is there.
MICROPYTHON32 = os.environ.get("MICROPYTHON32") or os.path.join(
    os.path.dirname(ROOT), "shared", "targets", "unix32", "micropython")
if not os.access(MICROPYTHON32, os.X_OK):
    MICROPYTHON32 = None


def mp_env(extra=None):
    env = dict(os.environ)
    env["MICROPYPATH"] = MPY_PATH
    if extra:
        env.update(extra)
    return env
