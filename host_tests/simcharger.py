"""Drive the simulated charger (tools/sim: the real firmware in micropython)
from a CPython test: start, stop, cut the power, and talk to its bench port."""
import json
import os
import signal
import socket
import subprocess
import time

from harness import ROOT, MICROPYTHON

SIM = os.path.join(ROOT, "tools", "sim")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class PortTaken(ConnectionError):
    """The bench port answered for another charger: free_port() gave the
    same number to two chargers started at once (8 power-cut lanes side by
    side met it once in 10,000 restarts)."""


class BenchClient:
    def __init__(self, port, data_dir=None):
        self.port = port
        self.data_dir = data_dir  # the charger this port must belong to
        self.sock = None
        self.buf = b""

    def connect(self, timeout=10):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        if self.data_dir is not None:
            data = self.request({"op": "ping"}).get("data")
            if data != self.data_dir:
                self.close()
                raise PortTaken("bench port %d answers for %s, not %s"
                                % (self.port, data, self.data_dir))

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None
        self.buf = b""

    def request(self, req):
        if self.sock is None:
            self.connect()
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("bench connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


class Charger:
    """One simulated charger process (restarted by tools/sim after a Reset)."""

    def __init__(self, csms_url, data_dir, cp_id="CP1", connectors=1, config=None,
                 heap="512k", queue="lfs", log_level="info", extra=(), micropython=None):
        self.csms_url = csms_url
        self.data_dir = data_dir
        self.cp_id = cp_id
        self.connectors = connectors
        self.config = config  # dict -> written as the provisioning file
        self.heap = heap
        self.queue = queue
        self.log_level = log_level
        self.extra = list(extra)
        self.micropython = micropython  # the interpreter (default: the host's)
        self.bench_port = None
        self.proc = None
        self.bench = None
        self.log_path = os.path.join(data_dir, "sim.log")
        self._log = None

    def start(self, wait_bench=True, tries=3):
        os.makedirs(self.data_dir, exist_ok=True)
        self.bench_port = free_port()
        cmd = [SIM, "--csms", self.csms_url, "--id", self.cp_id, "--data", self.data_dir,
               "--bench", "127.0.0.1:%d" % self.bench_port, "--connectors", str(self.connectors),
               "--heap", self.heap, "--queue", self.queue, "--log", self.log_level] + self.extra
        if self.config is not None:
            path = os.path.join(self.data_dir, "provisioning.json")
            with open(path, "w") as f:
                json.dump(self.config, f)
            cmd += ["--config", path]
        self._log = open(self.log_path, "ab")
        env = dict(os.environ, MICROPYTHON=self.micropython or MICROPYTHON)
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        self.bench = BenchClient(self.bench_port, self.data_dir)
        if wait_bench:
            try:
                self.bench.connect(timeout=15)
            except PortTaken:
                if tries <= 1:
                    raise
                self.power_cut()  # another port; the flash is as it was
                self._log.close()
                return self.start(wait_bench, tries - 1)
        return self

    def op(self, op, **kw):
        req = dict(kw, op=op)
        for attempt in range(2):
            try:
                return self.bench.request(req)
            except (ConnectionError, OSError):
                # The process restarted (Reset): reconnect once.
                self.bench.close()
                self.bench.connect(timeout=15)
        return self.bench.request(req)

    def ok(self, op, **kw):
        r = self.op(op, **kw)
        assert r.get("ok"), r
        return r

    def state(self):
        return self.ok("state")

    def connector(self, cid=1):
        return self.state()["connectors"][cid - 1]

    def wait_state(self, pred, timeout=10, what="state"):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                last = self.state()
                if pred(last):
                    return last
            except (ConnectionError, OSError, AssertionError):
                pass
            time.sleep(0.05)
        raise AssertionError(
            "timed out waiting for %s; last state %r\n%s" % (what, last, self.tail())
        )

    def power_cut(self):
        """Kill the whole process group at once, as a power cut would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        if self.bench:
            self.bench.close()

    def stop(self):
        self.power_cut()
        if self._log:
            self._log.close()
            self._log = None

    def restart(self):
        self.power_cut()
        if self._log:
            self._log.close()
        return self.start()

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def tail(self, n=60):
        return "\n".join(self.log_text().splitlines()[-n:])

    def wait_log(self, text, timeout=10, after=0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.log_text()[after:]:
                return
            time.sleep(0.05)
        raise AssertionError("log line %r not seen\n%s" % (text, self.tail()))
