"""Shared paths and helpers for the host tests (CPython side)."""
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BIN = os.path.dirname(sys.executable)
MICROPYTHON = (os.path.join(_BIN, "micropython")
               if os.path.exists(os.path.join(_BIN, "micropython"))
               else shutil.which("micropython"))
MPY_PATH = ":".join([
    ".frozen",  # asyncio and friends are frozen into the unix port
    ROOT,  # the mpocpp package
    os.path.join(ROOT, "firmware"),
    os.path.join(ROOT, "boards", "unix"),
    os.path.join(ROOT, "boards", "common"),
    os.path.join(ROOT, "host_tests", "mp"),
])


def mp_env(extra=None):
    env = dict(os.environ)
    env["MICROPYPATH"] = MPY_PATH
    if extra:
        env.update(extra)
    return env
