"""Security profiles 1 and 2, AuthorizationKey, SecurityProfile changes and
WebSocket keep-alive (checklist §1, scenarios 2-6)."""
import base64
import socket
import threading
import time

import pytest

from csms_lib import BenchCSMS

KEY_HEX = "00112233445566778899aabbccddeeff01234567"  # 20 bytes
KEY = bytes.fromhex(KEY_HEX)
KEY2_HEX = "ffeeddccbbaa99887766554433221100"  # 16 bytes
KEY2 = bytes.fromhex(KEY2_HEX)


def basic(user, pwd):
    return "Basic " + base64.b64encode(user.encode() + b":" + pwd).decode()


def sp1_config(key_hex=KEY_HEX):
    return {"security": {"SecurityProfile": 1, "AuthorizationKey": key_hex}}


def booted(csms, mark=0, timeout=15):
    return csms.wait_for("StatusNotification", pred=lambda m: m.payload.get("connectorId") == 1,
                         after=mark, timeout=timeout)


def change(csms, key, value):
    return csms.call("CP1", "ChangeConfiguration", {"key": key, "value": value})["status"]


def test_sp1_basic_auth(csms, charger_factory):
    csms.passwords = {"CP1": KEY}
    charger_factory(config=sp1_config())
    booted(csms)
    assert csms.last_headers("CP1")["Authorization"] == basic("CP1", KEY)


def test_sp1_wrong_password_backs_off(csms, charger_factory):
    csms.passwords = {"CP1": b"not-the-key"}
    ch = charger_factory(config=sp1_config())
    time.sleep(3)
    refused = [a for a in csms.attempts("CP1") if a[1] == 401]
    assert len(refused) >= 2
    assert ch.state()["connection"] != "online"  # and it is alive to say so
    csms.passwords = {"CP1": KEY}
    booted(csms)


def test_authorization_key_change_reconnects(csms, charger_factory):
    csms.passwords = {"CP1": KEY}
    ch = charger_factory(config=sp1_config())
    booted(csms)
    # Invalid keys: Rejected, the old key still works.
    assert change(csms, "AuthorizationKey", "abc") == "Rejected"
    assert change(csms, "AuthorizationKey", "zz" * 20) == "Rejected"
    conns = csms.connections("CP1")
    csms.passwords = {"CP1": KEY2}
    assert change(csms, "AuthorizationKey", KEY2_HEX) == "Accepted"
    csms.wait_connected("CP1", timeout=10, count=conns + 1)
    # A clean close after the answer (a dropped socket once lost the
    # CALLRESULT in a reset: the CSMS saw no answer to an applied change).
    assert any("CP1 disconnected (code 1000" in line for line in csms.log_lines), \
        [line for line in csms.log_lines if "disconnected" in line]
    assert csms.last_headers("CP1")["Authorization"] == basic("CP1", KEY2)
    r = csms.call("CP1", "GetConfiguration", {"key": ["AuthorizationKey"]})
    assert "value" not in r["configurationKey"][0]
    assert KEY2_HEX not in ch.log_text() and KEY_HEX not in ch.log_text()
    assert len(csms.calls("BootNotification")) == 1  # a reconnect, not a reboot


def test_security_profile_rules(csms, charger_factory):
    charger_factory()
    booted(csms)
    assert change(csms, "SecurityProfile", "0") == "Rejected"  # not an increase
    assert change(csms, "SecurityProfile", "3") == "Rejected"
    assert change(csms, "SecurityProfile", "1") == "Rejected"  # no AuthorizationKey yet
    assert change(csms, "SecurityProfile", "2") == "Rejected"  # no CA, no key
    assert change(csms, "AuthorizationKey", KEY_HEX) == "Accepted"
    csms.wait_connected("CP1", timeout=10, count=2)
    csms.passwords = {"CP1": KEY}
    conns = csms.connections("CP1")
    assert change(csms, "SecurityProfile", "1") == "Accepted"
    csms.wait_connected("CP1", timeout=10, count=conns + 1)
    assert csms.last_headers("CP1")["Authorization"] == basic("CP1", KEY)
    r = csms.call("CP1", "GetConfiguration", {"key": ["SecurityProfile"]})
    assert r["configurationKey"][0]["value"] == "1"


@pytest.fixture
def tls_csms():
    from certs import pki
    p = pki()
    c = BenchCSMS(ssl_context=p.server_context())
    c.start()
    yield c, p
    c.stop()
    assert not c.violations


def _pem(der):
    b = base64.encodebytes(der).decode()
    return "-----BEGIN CERTIFICATE-----\n" + b + "-----END CERTIFICATE-----\n"


def test_sp2_wss_with_ca(tls_csms, charger_factory):
    c, p = tls_csms
    c.passwords = {"CP1": KEY}
    url = c.url.replace("127.0.0.1", "localhost")
    charger_factory(
        url=url,
        config={
            "security": {
                "SecurityProfile": 2,
                "AuthorizationKey": KEY_HEX,
                "caCert": _pem(p.ca_der),
            },
            "settings": {"csmsUrl": url},
        },
    )
    booted(c, timeout=20)
    assert c.last_headers("CP1")["Authorization"] == basic("CP1", KEY)


def test_sp2_untrusted_ca_refused(tls_csms, charger_factory):
    c, p = tls_csms
    url = c.url.replace("127.0.0.1", "localhost")
    ch = charger_factory(url=url, config={"security": {"SecurityProfile": 2,
                                                       "AuthorizationKey": KEY_HEX,
                                                       "caCert": _pem(p.other_ca_der)},
                                          "settings": {"csmsUrl": url}})
    time.sleep(3)
    assert c.calls("BootNotification") == []
    assert ch.state()["connection"] != "online"


def test_sp2_wrong_host_name_refused(charger_factory, tmp_path):
    # A certificate from the trusted CA, but for another host name.
    from certs import make
    p = make(str(tmp_path), hosts=("csms.example",), ips=())
    with BenchCSMS(ssl_context=p.server_context()) as c:
        url = c.url.replace("127.0.0.1", "localhost")
        ch = charger_factory(url=url, config={"security": {"SecurityProfile": 2,
                                                           "AuthorizationKey": KEY_HEX,
                                                           "caCert": _pem(p.ca_der)},
                                              "settings": {"csmsUrl": url}})
        time.sleep(3)
        assert c.calls("BootNotification") == []
        assert ch.state()["connection"] != "online"
        assert "connect failed" in ch.log_text()


def test_ping_interval_and_dead_link(csms, charger_factory):
    charger_factory(config={"keys": {"WebSocketPingInterval": 1},
                            "settings": {"pongTimeoutMs": 1000}})
    booted(csms)
    time.sleep(2.5)
    assert csms.pings("CP1") >= 2
    # Pongs withheld: a half-open connection is detected and replaced.
    conns = csms.connections("CP1")
    csms.answer_pings = False
    csms.wait_connected("CP1", timeout=8, count=conns + 1)
    csms.answer_pings = True
    assert len(csms.calls("BootNotification")) == 1


def test_server_pings_answered_without_own_pings(csms, charger):
    assert change(csms, "WebSocketPingInterval", "0") == "Accepted"
    assert change(csms, "WebSocketPingInterval", "-5") == "Rejected"
    n = csms.pings("CP1")
    assert csms.ping("CP1", timeout=3) < 3
    time.sleep(1.5)
    assert csms.pings("CP1") == n


def test_security_profile_falls_back_when_it_cannot_connect(csms, charger_factory):
    ch = charger_factory()
    booted(csms)
    assert change(csms, "AuthorizationKey", KEY_HEX) == "Accepted"
    csms.wait_connected("CP1", timeout=10, count=2)
    csms.passwords = {"CP1": b"not-what-the-charger-has"}
    assert change(csms, "SecurityProfile", "1") == "Accepted"
    ch.wait_log("SecurityProfile change failed: falling back", timeout=15)
    csms.passwords = {}
    conns = csms.connections("CP1")
    csms.wait_connected("CP1", timeout=10, count=conns + 1)
    assert "Authorization" not in csms.last_headers("CP1")  # profile 0 again
    r = csms.call("CP1", "GetConfiguration", {"key": ["SecurityProfile"]})
    assert r["configurationKey"][0]["value"] == "0"


# --- SecurityProfile 0 -> 2 with a ws:// csmsUrl ------------------------------

class SchemeSplitter:
    """One port, two bench CSMSs: a TLS ClientHello (first byte 0x16) goes to
    the wss:// one, anything else to the ws:// one, as a central system that
    serves both on the same host, port and path."""

    def __init__(self, plain_port, tls_port):
        self.ports = (plain_port, tls_port)
        self.tls = 0  # TLS connections passed on
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            first = c.recv(1, socket.MSG_PEEK)
            tls = first == b"\x16"
            self.tls += tls
            u = socket.create_connection(("127.0.0.1", self.ports[tls]))
        except OSError:
            c.close()
            return
        threading.Thread(target=self._pipe, args=(u, c), daemon=True).start()
        self._pipe(c, u)

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.sock.close()


def _to_sp1_key(csms):
    assert change(csms, "AuthorizationKey", KEY_HEX) == "Accepted"
    csms.wait_connected("CP1", timeout=10, count=2)


def test_sp0_to_sp2_from_ws_url_goes_wss(csms, tls_csms, charger_factory):
    # Interop: a CA and an AuthorizationKey installed, the configured URL
    # ws://: SecurityProfile 2 is Accepted and the charger reconnects with
    # wss:// to the same host, port and path, verifying the CSMS with the CA.
    c, p = tls_csms
    c.passwords = {"CP1": KEY}
    mux = SchemeSplitter(csms.port, c.port)
    try:
        url = "ws://localhost:%d%s" % (mux.port, csms.path)
        ch = charger_factory(url=url, config={"security": {"caCert": _pem(p.ca_der)},
                                              "settings": {"csmsUrl": url}})
        booted(csms)
        _to_sp1_key(csms)
        assert mux.tls == 0
        assert change(csms, "SecurityProfile", "2") == "Accepted"
        c.wait_connected("CP1", timeout=15)
        assert mux.tls >= 1
        assert c.last_headers("CP1")["Authorization"] == basic("CP1", KEY)
        r = c.call("CP1", "GetConfiguration", {"key": ["SecurityProfile"]})
        assert r["configurationKey"][0]["value"] == "2"
        assert "connecting to wss://localhost:%d%s/CP1" % (mux.port, csms.path) in ch.log_text()
        assert c.calls("BootNotification") == []  # a reconnect, not a reboot
    finally:
        mux.close()


def test_sp0_to_sp2_from_ws_url_falls_back(csms, charger_factory):
    # The same change where nothing answers TLS on that port: after the
    # failed attempts the charger is back on profile 0 over ws://.
    from certs import pki
    ch = charger_factory(config={"security": {"caCert": _pem(pki().ca_der)}})
    booted(csms)
    _to_sp1_key(csms)
    assert change(csms, "SecurityProfile", "2") == "Accepted"
    ch.wait_log("SecurityProfile change failed: falling back", timeout=15)
    assert "connecting to wss://127.0.0.1:%d%s/CP1" % (csms.port, csms.path) in ch.log_text()
    conns = csms.connections("CP1")
    csms.wait_connected("CP1", timeout=10, count=conns + 1)
    assert "Authorization" not in csms.last_headers("CP1")  # profile 0 again
    r = csms.call("CP1", "GetConfiguration", {"key": ["SecurityProfile"]})
    assert r["configurationKey"][0]["value"] == "0"
