# The charge point certificate's paths that the end-to-end tests
# (test_profile3.py) do not reach: SignCertificate's answers and failures
# and what becomes of the pending key, the renewal check, the store's
# client certificate and its restore.
import os

from fakes import Recorder, config, init_clock, T0

from mpocpp.operations import certsigning
from mpocpp.protocol.rpc import CallError, CallTimeout, Offline
from mpocpp.security import eckey, pem, store
from mpocpp.util import fsutil


class Sender:
    # call_now answers with `res`, or raises it when it is an exception class
    def __init__(self, res):
        self.res = res
        self.sent = []

    async def call_now(self, action, payload):
        self.sent.append((action, payload))
        if isinstance(self.res, Exception):
            raise self.res
        if isinstance(self.res, type):
            raise self.res()
        return self.res



def _pause():
    pass

def _make(res, keys=None, settings=None):
    init_clock()
    cfg = config(keys={"CpoName": "Test CPO"} if keys is None else keys,
                 settings={"chargeBoxId": "CP1"} if settings is None else settings)
    s = Sender(res)
    ev = Recorder()
    h = certsigning.CertificateSigning(cfg, s, ev, Recorder(), _pause)
    return h, s, ev, store.folder(cfg.dir) + store.PENDING_KEY


async def test_sign_accepted_keeps_the_pending_key():
    h, s, ev, path = _make({"status": "Accepted"})
    assert await h.sign_certificate() is True
    assert [a for a, _ in s.sent] == ["SignCertificate"]
    text = s.sent[0][1]["csr"]
    assert text.startswith("-----BEGIN CERTIFICATE REQUEST-----")
    key = fsutil.read(path)
    pub = []
    d = eckey.load_private(key, pub)
    assert pub[0] == eckey.public(d)
    assert "PRIVATE" not in text


async def test_sign_rejected_or_offline_drops_the_key():
    for res in ({"status": "Rejected"}, Offline):
        h, s, ev, path = _make(res)
        assert await h.sign_certificate() is False
        assert not fsutil.exists(path)


async def test_sign_unanswered_keeps_the_key():
    for res in (CallTimeout, CallError("InternalError", "down")):
        h, s, ev, path = _make(res)
        assert await h.sign_certificate() is False
        assert fsutil.exists(path)  # the CSMS may have the CSR


async def test_no_cpo_name_or_identity_too_long_sends_nothing():
    for keys, settings in (({}, None), (None, {"chargeBoxId": "C" * 65})):
        h, s, ev, path = _make({"status": "Accepted"}, keys, settings)
        assert await h.sign_certificate() is False
        assert s.sent == [] and not fsutil.exists(path)


async def test_renewal_due():
    # no certificate: only profile 3 asks for one
    h, s, ev, path = _make({"status": "Accepted"})
    assert await h.renew() is False and s.sent == []
    h, s, ev, path = _make({"status": "Accepted"},
                           keys={"CpoName": "Test CPO", "SecurityProfile": 3})
    assert await h.renew() is True and len(s.sent) == 1


def test_certificate_signed_without_pending_key_is_rejected():
    h, s, ev, path = _make({"status": "Accepted"})
    r = h.CertificateSigned({"certificateChain": "x"})
    assert r == {"status": "Rejected"}
    assert ev.calls == ["InvalidChargePointCertificate"]


def test_client_cert_from_the_store_and_restore():
    init_clock(T0)
    d = "/tmp/mpt_cpcert_%s" % "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(d)
    base = store.folder(d)
    os.mkdir(base)
    assert store.client_cert(d) is None
    k = eckey.private_der(1)

    def write(name, cert):
        fsutil.write_atomic(base + name, (pem.encode(cert, "CERTIFICATE")
                                          + pem.encode(k, store.KEY_LABEL)).encode())

    def got():
        cc = store.client_cert(d)
        return cc.leaf, cc.key, cc.chain

    write(store.PREVIOUS, b"old")
    assert got() == (b"old", k, None)  # a cut left only the old one
    write(store.CHARGE_POINT, b"new")
    assert got() == (b"new", k, None)
    store.Restore(d)()
    assert got() == (b"old", k, None) and not fsutil.exists(base + store.PREVIOUS)
    # with an intermediate: the chain as PEM too, leaf first (for the handshake)
    fsutil.write_atomic(base + store.CHARGE_POINT, (
        pem.encode(b"leaf", "CERTIFICATE") + pem.encode(b"inter", "CERTIFICATE")
        + pem.encode(k, store.KEY_LABEL)).encode())
    leaf, key, chain = got()
    assert (leaf, key) == (b"leaf", k)
    assert [bytes(c) for c in pem.decode(chain.decode())] == [b"leaf", b"inter"]
    assert store.KEY_LABEL.encode() not in chain  # never the key
    store.Restore(d)()  # nothing to restore: no error
    fsutil.write_atomic(base + store.CHARGE_POINT, b"-----BEGIN CERTIFICATE-----\nAA==\n")
    assert store.client_cert(d) is None  # unreadable: none
