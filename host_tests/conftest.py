"""Test harness.

Two kinds of tests live here:
- `test_*.py`: ordinary pytest modules (CPython) that drive the simulated charger
  (the real firmware in the `micropython` binary) through the bench interface and
  talk to it from the bench CSMS.
- `mp/mpt_*.py`: unit tests that run *inside* MicroPython. Each `def test_*` in
  such a module becomes one pytest item, executed as
  `micropython host_tests/mp/mprun.py MODULE TEST` with the firmware package
  (as sources, build/src-unix) on the path.
"""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

from harness import MICROPYTHON, MICROPYTHON32, mp_env, source_tree  # noqa: E402


def pytest_configure(config):
    # The MicroPython unit tests import the packages from build/src-unix.
    source_tree()
    config.addinivalue_line(
        "markers", "unix32: also run the simulated charger on the 32-bit unix port")


def pytest_generate_tests(metafunc):
    # A test marked unix32 that uses the simulated charger runs twice: on the
    # host's 64-bit port and on the 32-bit one (../shared/targets/unix32).
    if "interpreter" in metafunc.fixturenames:
        kinds = ["host"]
        if metafunc.definition.get_closest_marker("unix32") is not None:
            kinds.append("unix32")
        metafunc.parametrize("interpreter", kinds, indirect=True)


@pytest.fixture
def interpreter(request):
    if getattr(request, "param", "host") == "unix32":
        if MICROPYTHON32 is None:
            pytest.skip("no 32-bit unix port: set MICROPYTHON32 (../shared/targets/unix32)")
        return MICROPYTHON32
    return None


def _is_mp(file_path):
    return file_path.suffix == ".py" and file_path.name.startswith("mpt_")


def pytest_collect_file(parent, file_path):
    # Named on the command line, the file goes through pytest_pycollect_makemodule.
    if _is_mp(file_path) and not parent.session.isinitpath(file_path):
        return MpModule.from_parent(parent, path=file_path)


def pytest_pycollect_makemodule(module_path, parent):
    if _is_mp(module_path):
        return MpModule.from_parent(parent, path=module_path)


class MpModule(pytest.File):
    def collect(self):
        src = self.path.read_text()
        heap = re.search(r"^# heap:\s*(\S+)", src, re.M)
        heap = heap.group(1) if heap else "2M"
        for m in re.finditer(r"^(?:async\s+)?def\s+(test_\w+)\s*\(", src, re.M):
            yield MpItem.from_parent(self, name=m.group(1), heap=heap)


class MpItem(pytest.Item):
    def __init__(self, *, heap, **kw):
        super().__init__(**kw)
        self.heap = heap

    def runtest(self):
        mod = self.path.stem
        cmd = [MICROPYTHON, "-X", "heapsize=" + self.heap,
               os.path.join(ROOT, "host_tests", "mp", "mprun.py"), mod, self.name]
        p = subprocess.run(cmd, cwd=str(self.path.parent), env=mp_env(),
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0 or "PASS " + mod not in p.stdout:
            raise MpFailure(p.stdout + p.stderr)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, MpFailure):
            return "MicroPython test failed:\n" + str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, "mp:" + self.name


class MpFailure(Exception):
    pass


# --- the simulated charger against the bench CSMS -------------------------

# Short intervals so that tests wait seconds, not minutes.
FAST = {
    "identity": {"chargePointVendor": "OpenCharge", "chargePointModel": "MPY-AC22",
                 "chargePointSerialNumber": "SIM-0001", "firmwareVersion": "0.1.0-test"},
    "keys": {"MessageTimeout": 5, "HeartbeatInterval": 300, "MeterValueSampleInterval": 0,
             "ConnectionTimeOut": 30, "TransactionMessageRetryInterval": 2},
    "settings": {"reconnectMinMs": 200, "reconnectMaxMs": 1000, "bootRetryS": 2,
                 "connectTimeoutMs": 3000, "pongTimeoutMs": 2000},
}


def merged(base, extra):
    out = {}
    for k in set(base) | set(extra or {}):
        a, b = base.get(k), (extra or {}).get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out[k] = dict(a, **b)
        else:
            out[k] = b if b is not None else a
    return out


@pytest.fixture
def csms():
    from csms_lib import BenchCSMS
    lines = []
    c = BenchCSMS(log=lines.append)
    c.log_lines = lines
    c.start()
    yield c
    c.stop()
    assert not c.violations, "charger sent schema violations:\n" + "\n".join(c.violations)


@pytest.fixture
def charger_factory(csms, tmp_path, request, interpreter):
    from simcharger import Charger
    made = []

    def make(cp_id="CP1", connectors=1, config=None, start=True, url=None, **kw):
        kw.setdefault("micropython", interpreter)
        ch = Charger(url or csms.url, str(tmp_path / cp_id), cp_id=cp_id, connectors=connectors,
                     config=merged(FAST, config), **kw)
        made.append(ch)
        if start:
            ch.start()
        return ch

    yield make
    failed = getattr(request.node, "rep_call", None)
    for ch in made:
        ch.stop()
        if failed is not None and failed.failed:
            print("---- %s log ----\n%s" % (ch.cp_id, ch.tail(80)))
            print("---- CSMS traffic ----\n" + "\n".join(csms.log_lines[-80:]))


@pytest.fixture
def charger(charger_factory, csms):
    ch = charger_factory()
    csms.wait_for(
        "StatusNotification", pred=lambda m: m.payload.get("connectorId") == 1, timeout=15
    )
    return ch


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
