"""Secure firmware update (security whitepaper L01) end to end on the
simulated charger: SignedUpdateFirmware against a ManufacturerRootCertificate
installed with InstallCertificate, an image over HTTP, the signature (ECDSA
P-256, RSA PSS, RSA PKCS#1 v1.5) checked before the install; the refusals
(InvalidCertificate, Rejected, InvalidSignature) and their security events."""
import base64
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from csms_lib import CallErrorResult
from fileservers import HttpFileServer
from test_fwmgmt import NEW, images, now_iso  # noqa: F401 (images: the fixture)
from test_security import booted

SFSN = "SignedFirmwareStatusNotification"
SEN = "SecurityEventNotification"
MF = "ManufacturerRootCertificate"
NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _root(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY).not_valid_after(NOW + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def _signing(root, key, cn="Firmware signing", before=NOW - DAY, after=NOW + 30 * DAY):
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(root[0].subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(before).not_valid_after(after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=False, crl_sign=False,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(root[1], hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def sign(key, data, scheme="pss"):
    if isinstance(key, ec.EllipticCurvePrivateKey):
        s = key.sign(data, ec.ECDSA(hashes.SHA256()))
    elif scheme == "pss":
        s = key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    else:
        s = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(s).decode()


@pytest.fixture(scope="module")
def pki():
    root = _root("Manufacturer root")
    other = _root("Another manufacturer")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(65537, 2048)
    return {
        "root": _pem(root[0]),
        "ec_key": ec_key, "ec": _signing(root, ec_key),
        "rsa_key": rsa_key, "rsa": _signing(root, rsa_key, "RSA firmware signing"),
        "other": _signing(other, ec_key),
        "expired": _signing(root, ec_key, before=NOW - 30 * DAY, after=NOW - DAY),
        "rsa1024": _signing(root, rsa.generate_private_key(65537, 1024), "Weak signing"),
    }


@pytest.fixture
def http():
    s = HttpFileServer().start()
    yield s
    s.stop()


def request(csms, url, cert, sig, req_id, date=None, install=None, retries=0):
    fw = {"location": url, "retrieveDateTime": date or now_iso(),
          "signingCertificate": cert, "signature": sig}
    if install:
        fw["installDateTime"] = install
    return csms.call("CP1", "SignedUpdateFirmware",
                     {"requestId": req_id, "firmware": fw, "retries": retries,
                      "retryInterval": 1})["status"]


def statuses(csms, after, req_id):
    out = []
    for m in csms.calls(SFSN, after=after):
        assert m.payload.get("requestId") == req_id, m.payload  # L01.FR.10
        out.append(m.payload["status"])
    return out


def sfsn(csms, status, after, timeout=20):
    return csms.wait_for(SFSN, after=after, timeout=timeout,
                         pred=lambda m: m.payload["status"] == status)


def events(csms, kind, after=0):
    return [m.payload for m in csms.calls(SEN, after=after) if m.payload["type"] == kind]


def install_root(csms, pem):
    assert csms.call("CP1", "InstallCertificate",
                     {"certificateType": MF, "certificate": pem})["status"] == "Accepted"


def _installed(csms, mark, req_id, expect):
    sfsn(csms, "InstallRebooting", mark)
    boot = csms.wait_for("BootNotification", after=mark, timeout=30)
    assert boot.payload["firmwareVersion"] == NEW
    sfsn(csms, "Installed", mark, timeout=15)
    assert statuses(csms, mark, req_id) == expect
    assert csms.calls("FirmwareStatusNotification", after=mark) == []
    ev = csms.wait_for(SEN, after=mark, timeout=15,
                       pred=lambda m: m.payload["type"] == "FirmwareUpdated")
    assert ev.payload["techInfo"] == NEW


@pytest.mark.unix32
def test_ecdsa_signed_image_installed(csms, charger, http, images, pki):  # noqa: F811
    booted(csms)
    install_root(csms, pki["root"])
    http.add("/fw.img", images["good"])
    mark = csms.mark()
    sig = sign(pki["ec_key"], images["good"])
    assert request(csms, http.url("/fw.img"), pki["ec"], sig, 7) == "Accepted"
    _installed(csms, mark, 7, ["Downloading", "Downloaded", "SignatureVerified", "Installing",
                               "InstallRebooting", "Installed"])
    charger.wait_log("running firmware %s from /flash/fw/a" % NEW)


def test_rsa_pss_signed_image_scheduled_and_installed(csms, charger, http, images,  # noqa: F811
                                                      pki):
    # retrieveDateTime and installDateTime in the future: DownloadScheduled,
    # InstallScheduled (L01.FR.13, L01.FR.16).
    booted(csms)
    install_root(csms, pki["root"])
    http.add("/fw.img", images["good"])
    mark = csms.mark()
    sig = sign(pki["rsa_key"], images["good"], "pss")
    assert request(csms, http.url("/fw.img"), pki["rsa"], sig, 8, date=now_iso(2),
                   install=now_iso(6)) == "Accepted"
    sched = sfsn(csms, "InstallScheduled", mark)
    assert http.requests.count(("GET", "/fw.img")) == 1
    _installed(csms, mark, 8, ["DownloadScheduled", "Downloading", "Downloaded",
                               "SignatureVerified", "InstallScheduled", "Installing",
                               "InstallRebooting", "Installed"])
    inst = sfsn(csms, "Installing", mark)
    assert inst.t - sched.t >= 1  # not before installDateTime (whole seconds)


def test_rsa_pkcs1_signed_image_installed(csms, charger, http, images, pki):  # noqa: F811
    booted(csms)
    install_root(csms, pki["root"])
    http.add("/fw.img", images["good"])
    mark = csms.mark()
    sig = sign(pki["rsa_key"], images["good"], "pkcs1")
    assert request(csms, http.url("/fw.img"), pki["rsa"], sig, 9) == "Accepted"
    _installed(csms, mark, 9, ["Downloading", "Downloaded", "SignatureVerified", "Installing",
                               "InstallRebooting", "Installed"])


def test_bad_signatures_are_not_installed(csms, charger, http, images, pki):  # noqa: F811
    booted(csms)
    install_root(csms, pki["root"])
    good = images["good"]
    http.add("/fw.img", good)
    flipped = bytearray(good)
    flipped[len(flipped) // 3] ^= 0x01
    http.add("/flipped.img", bytes(flipped))
    wrong_key = ec.generate_private_key(ec.SECP256R1())
    cases = [
        ("/fw.img", pki["ec"], sign(pki["ec_key"], good + b"x")),  # over other bytes
        ("/flipped.img", pki["ec"], sign(pki["ec_key"], good)),  # a flipped bit
        ("/fw.img", pki["ec"], sign(wrong_key, good)),  # another key
        ("/fw.img", pki["rsa"], sign(pki["ec_key"], good)),  # an ECDSA signature, RSA cert
    ]
    for i, (path, cert, sig) in enumerate(cases):
        mark = csms.mark()
        assert request(csms, http.url(path), cert, sig, 100 + i) == "Accepted"
        sfsn(csms, "InvalidSignature", mark)
        assert statuses(csms, mark, 100 + i) == ["Downloading", "Downloaded", "InvalidSignature"]
        csms.wait_for(SEN, after=mark, timeout=10,
                      pred=lambda m: m.payload["type"] == "InvalidFirmwareSignature")
    st = charger.state()
    assert st["boot"] == 1 and st["connectors"][0]["status"] == "Available"
    # nothing installed, nothing left in the flash
    assert "installed: rebooting" not in charger.log_text()


def test_refused_requests(csms, charger, http, images, pki):  # noqa: F811
    booted(csms)
    url = http.url("/fw.img")
    sig = sign(pki["ec_key"], images["good"])
    mark = csms.mark()
    # no ManufacturerRootCertificate installed yet
    assert request(csms, url, pki["ec"], sig, 1) == "InvalidCertificate"
    install_root(csms, pki["root"])
    assert request(csms, url, pki["other"], sig, 2) == "InvalidCertificate"  # another root
    assert request(csms, url, pki["expired"], sig, 3) == "InvalidCertificate"
    assert request(csms, url, pki["rsa1024"], sig, 9) == "InvalidCertificate"  # key too small
    garbage = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n"
    assert request(csms, url, garbage, sig, 4) == "InvalidCertificate"
    junk = base64.b64encode(b"\x30\x03\x02\x01\x01").decode()
    junk = "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % junk
    assert request(csms, url, junk, sig, 5) == "InvalidCertificate"
    assert request(csms, url, "", sig, 6) == "InvalidCertificate"
    assert request(csms, url, pki["ec"], "%%% not base64 %%%", 7) == "Rejected"
    assert request(csms, url, pki["ec"], "", 8) == "Rejected"
    # every refused certificate reached the CSMS as a security event (L01.FR.02)
    csms.wait_for(SEN, after=mark, timeout=10,
                  pred=lambda m: len(events(csms, "InvalidFirmwareSigningCertificate",
                                            mark)) >= 7)
    got = events(csms, "InvalidFirmwareSigningCertificate", mark)
    assert len(got) == 7
    assert "no ManufacturerRootCertificate" in got[0]["techInfo"]
    assert "expired" in got[2]["techInfo"]
    assert "RSA key size" in got[3]["techInfo"]
    assert csms.calls(SFSN, after=mark) == []  # nothing started
    # L01.FR.20: with a ManufacturerRootCertificate, OCPP 1.6's unsigned
    # UpdateFirmware is NotSupported and starts nothing
    with pytest.raises(CallErrorResult) as e:
        csms.call("CP1", "UpdateFirmware", {"location": url, "retrieveDate": now_iso()})
    assert e.value.code == "NotSupported"
    assert csms.calls("FirmwareStatusNotification", after=mark) == []
    assert http.requests == []
    assert charger.state()["boot"] == 1


def test_new_request_cancels_the_scheduled_one(csms, charger, http, images, pki):  # noqa: F811
    booted(csms)
    install_root(csms, pki["root"])
    http.add("/fw.img", images["good"])
    sig = sign(pki["ec_key"], images["good"] + b"x")
    mark = csms.mark()
    assert request(csms, http.url("/fw.img"), pki["ec"], sig, 1, date=now_iso(3600)) == \
        "Accepted"
    sfsn(csms, "DownloadScheduled", mark)
    assert request(csms, http.url("/fw.img"), pki["ec"], sig, 2) == "AcceptedCanceled"
    sfsn(csms, "InvalidSignature", mark)
    assert [(m.payload["status"], m.payload["requestId"]) for m in csms.calls(SFSN, after=mark)] \
        == [("DownloadScheduled", 1), ("Downloading", 2), ("Downloaded", 2),
            ("InvalidSignature", 2)]
    assert http.requests.count(("GET", "/fw.img")) == 1
    # the plain TriggerMessage reports in OCPP 1.6's words: idle again
    m = csms.mark()
    csms.call("CP1", "TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
    assert csms.wait_for("FirmwareStatusNotification", after=m).payload == {"status": "Idle"}


def test_signed_but_corrupt_image_fails_verification(csms, charger, http, images,  # noqa: F811
                                                     pki):
    # The signature is the manufacturer's, the image inside does not check
    # out (its own SHA-256): InstallVerificationFailed, the old firmware runs.
    booted(csms)
    install_root(csms, pki["root"])
    http.add("/bad.img", images["corrupt"])
    mark = csms.mark()
    sig = sign(pki["ec_key"], images["corrupt"])
    assert request(csms, http.url("/bad.img"), pki["ec"], sig, 11) == "Accepted"
    sfsn(csms, "InstallVerificationFailed", mark)
    assert statuses(csms, mark, 11) == ["Downloading", "Downloaded", "SignatureVerified",
                                        "Installing", "InstallVerificationFailed"]
    csms.wait_for("StatusNotification", after=mark, timeout=10,  # held for the install
                  pred=lambda m: m.payload["connectorId"] == 1
                  and m.payload["status"] == "Available")
    assert charger.state()["boot"] == 1


def test_signed_broken_firmware_rolls_back(csms, charger, http, images, pki):  # noqa: F811
    # A signed build that cannot start: the rollback's InstallationFailed
    # carries the requestId the pointer kept.
    booted(csms)
    install_root(csms, pki["root"])
    http.add("/broken.img", images["broken"])
    mark = csms.mark()
    sig = sign(pki["ec_key"], images["broken"])
    assert request(csms, http.url("/broken.img"), pki["ec"], sig, 12) == "Accepted"
    sfsn(csms, "InstallationFailed", mark, timeout=30)
    assert statuses(csms, mark, 12) == ["Downloading", "Downloaded", "SignatureVerified",
                                        "Installing", "InstallRebooting", "InstallationFailed"]
    assert events(csms, "FirmwareUpdated", mark) == []
