"""The serial bridge (docs/serial-bridge.md) with the simulated charger: its
TCP connections go over a line (here a TCP stand-in for the serial port,
`tools/sim --bridge`) to tools/bridge, which opens them. TLS stays in the
firmware end to end; a restarted bridge, a refused destination and garbage
on the line are survived. The emulated Pico runs the same code over its USB
REPL (test_pico.py)."""
import os
import subprocess
import sys
import time

import pytest

from harness import ROOT
from simcharger import free_port
from test_security import KEY, KEY_HEX, _pem, basic, booted, tls_csms  # noqa: F401

BRIDGE = os.path.join(ROOT, "tools", "bridge")
sys.path.insert(0, os.path.join(ROOT, "tools"))


class Bridge:
    def __init__(self, *extra):
        self.port = free_port()
        self.extra = list(extra)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([sys.executable, BRIDGE, "--listen",
                                      "127.0.0.1:%d" % self.port] + self.extra,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.5)
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=10)
            self.proc = None
            return out.decode(), err.decode()
        return "", ""


@pytest.fixture
def bridge():
    made = []

    def make(*extra):
        b = Bridge(*extra).start()
        made.append(b)
        return b
    yield make
    for b in made:
        b.stop()


def _sim(charger_factory, b, **kw):
    return charger_factory(extra=["--bridge", "127.0.0.1:%d" % b.port], **kw)


def test_session_through_the_bridge(csms, charger_factory, bridge):
    b = bridge()
    ch = _sim(charger_factory, b)
    csms.wait_for("StatusNotification", pred=lambda m: m.payload["connectorId"] == 1, timeout=20)
    ch.ok("plug_in", connector=1)
    ch.ok("swipe", idTag="BRIDGE1")
    csms.wait_for("StartTransaction", timeout=10)
    # a large answer (every key) crosses the line's flow control
    r = csms.call("CP1", "GetConfiguration", {})
    assert len(r["configurationKey"]) > 40
    ch.ok("swipe", idTag="BRIDGE1")
    stop = csms.wait_for("StopTransaction", timeout=10)
    assert stop.payload["reason"] == "Local"
    _, err = b.stop()
    assert "channel 0: connected to 127.0.0.1" in err


def test_tls_end_to_end_through_the_bridge(tls_csms, charger_factory, bridge):  # noqa: F811
    c, p = tls_csms
    c.passwords = {"CP1": KEY}
    url = c.url.replace("127.0.0.1", "localhost")
    b = bridge()
    _sim(charger_factory, b, url=url, config={
        "security": {"SecurityProfile": 2, "AuthorizationKey": KEY_HEX,
                     "caCert": _pem(p.ca_der)},
        "settings": {"csmsUrl": url}})
    booted(c, timeout=30)
    assert c.last_headers("CP1")["Authorization"] == basic("CP1", KEY)


def test_bridge_restart_and_refused_destinations(csms, charger_factory, bridge):
    b = bridge()
    ch = _sim(charger_factory, b)
    csms.wait_for("StatusNotification", pred=lambda m: m.payload["connectorId"] == 1, timeout=20)
    b.stop()  # the bridge goes away: the connection drops, the charger retries
    csms.wait_disconnected("CP1", timeout=15)
    b.start()  # back on the same port
    _wait_connected(csms, "CP1", 60)
    assert ch.state()["connection"] == "online"


def _wait_connected(csms, cp_id, timeout):
    deadline = time.time() + timeout
    while not csms.connected(cp_id):
        assert time.time() < deadline, "not reconnected through the restarted bridge"
        time.sleep(0.2)


def test_destination_not_allowed_is_refused(charger_factory, bridge):
    b = bridge()
    ch = charger_factory(url="ws://192.0.2.1:9/ocpp", extra=["--bridge", "127.0.0.1:%d" % b.port])
    ch.wait_log("connect failed", timeout=20)
    _, err = b.stop()
    assert "refused 192.0.2.1:9 (not allowed" in err


def test_garbage_and_console_text_on_the_line():
    # The host side's parser: frames among console text and noise, torn
    # frames, bad CRCs.
    mod = _bridge_module()
    f1 = mod.frame(mod.DATA, 0, b"hello")
    f2 = mod.frame(mod.CLOSE, 1)
    bad = bytearray(mod.frame(mod.DATA, 0, b"x" * 10))
    bad[-1] ^= 1
    line = b"123 I log: text\n" + f1 + b"\xc0garbage\xc0" + bytes(bad) + b"more text\n" + f2
    p = mod.Parser()
    frames, text = [], b""
    for i in range(0, len(line), 7):  # in small pieces, frames torn across them
        fr, tx = p.feed(line[i:i + 7])
        frames += fr
        text += tx
    assert frames == [(mod.DATA, 0, b"hello"), (mod.CLOSE, 1, b"")]
    assert b"123 I log: text\n" in text and b"more text\n" in text
    assert p.errors >= 1


def test_the_bridge_is_silent_until_the_board_says_hello(bridge):
    # On a Pico's USB REPL a frame byte 0x03 is a Ctrl-C until the firmware
    # has taken the line (a KeyboardInterrupt stopped main.py while it was
    # importing, in a test run): the bridge speaks only after the board.
    import socket
    b = bridge()
    mod = _bridge_module()
    s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    try:
        s.settimeout(6)  # longer than the bridge's 5 s HELLO period
        try:
            got = s.recv(4096)
        except socket.timeout:
            got = b""
        assert got == b"", got
        s.sendall(mod.frame(mod.HELLO, 0, b"\x01\x02\x03\x04"))
        s.settimeout(5)
        frames, _ = mod.Parser().feed(s.recv(4096))
        assert frames and frames[0][0] == mod.HELLO and len(frames[0][2]) == 4
    finally:
        s.close()


def _bridge_module():
    import importlib.machinery
    import importlib.util
    loader = importlib.machinery.SourceFileLoader("bridge_tool", BRIDGE)
    spec = importlib.util.spec_from_loader("bridge_tool", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod
