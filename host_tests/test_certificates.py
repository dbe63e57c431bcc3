"""Certificate management of the security whitepaper (M03 to M05):
InstallCertificate, GetInstalledCertificateIds and DeleteCertificate against
the simulated charger, hashes checked against `cryptography`'s OCSP CertID,
and an installed CentralSystemRootCertificate used for wss://."""
import datetime
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from csms_lib import BenchCSMS
from test_security import KEY, KEY_HEX, SchemeSplitter, booted, change

CS = "CentralSystemRootCertificate"
MF = "ManufacturerRootCertificate"
NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def make_ca(cn, key=None, issuer=None, before=NOW - DAY, after=NOW + 30 * DAY):
    """A CA certificate: self-signed, or (issuer = (cert, key)) signed by issuer."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(issuer[0].subject if issuer else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(before).not_valid_after(after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(issuer[1] if issuer else key, hashes.SHA256()))
    return cert, key


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def hash_data(cert, issuer=None):
    req = (ocsp.OCSPRequestBuilder()
           .add_certificate(cert, issuer or cert, hashes.SHA256()).build())
    return {"hashAlgorithm": "SHA256", "issuerNameHash": req.issuer_name_hash.hex(),
            "issuerKeyHash": req.issuer_key_hash.hex(),
            "serialNumber": "%X" % req.serial_number}


def install(csms, kind, cert_pem):
    return csms.call("CP1", "InstallCertificate",
                     {"certificateType": kind, "certificate": cert_pem})["status"]


def ids(csms, kind):
    return csms.call("CP1", "GetInstalledCertificateIds", {"certificateType": kind})


def delete(csms, hd):
    return csms.call("CP1", "DeleteCertificate", {"certificateHashData": hd})["status"]


def _same(a, b):
    return {k: v.upper() for k, v in a.items()} == {k: v.upper() for k, v in b.items()}


def test_install_list_delete(csms, charger_factory):
    ch = charger_factory(config={"keys": {"CertificateStoreMaxLength": 3}})
    booted(csms)
    assert ids(csms, CS) == {"status": "NotFound"}
    assert ids(csms, MF) == {"status": "NotFound"}
    a, _ = make_ca("CSMS root A")
    m, _ = make_ca("Manufacturer root")
    assert install(csms, CS, pem(a)) == "Accepted"
    assert install(csms, CS, pem(a)) == "Accepted"  # again: nothing new
    assert install(csms, MF, pem(m)) == "Accepted"
    r = ids(csms, CS)
    assert r["status"] == "Accepted" and len(r["certificateHashData"]) == 1
    assert _same(r["certificateHashData"][0], hash_data(a))
    r = ids(csms, MF)
    assert len(r["certificateHashData"]) == 1
    assert _same(r["certificateHashData"][0], hash_data(m))
    # the store holds 3: a third is accepted, a fourth is Rejected (M05.FR.03)
    b, _ = make_ca("CSMS root B")
    assert install(csms, CS, pem(b)) == "Accepted"
    c, _ = make_ca("CSMS root C")
    assert install(csms, CS, pem(c)) == "Rejected"
    assert "store full (3 of 3)" in ch.log_text()
    # kept across a restart (flash)
    mark = csms.mark()
    ch.restart()
    booted(csms, mark=mark)
    assert len(ids(csms, CS)["certificateHashData"]) == 2
    # DeleteCertificate: lower-case serial and leading zeroes match too
    hd = hash_data(b)
    hd["serialNumber"] = ("0" + hd["serialNumber"].lower())[-40:]
    assert delete(csms, hd) == "Accepted"
    assert delete(csms, hd) == "NotFound"
    assert delete(csms, dict(hash_data(a), hashAlgorithm="SHA384")) == "NotFound"
    assert delete(csms, hash_data(m)) == "Accepted"
    assert ids(csms, MF) == {"status": "NotFound"}
    assert [_same(h, hash_data(a)) for h in ids(csms, CS)["certificateHashData"]] == [True]
    assert install(csms, CS, pem(c)) == "Accepted"  # room again
    r = csms.call("CP1", "GetConfiguration", {"key": [
        "CertificateStoreMaxLength", "CertificateSignedMaxChainSize", "CpoName",
        "AdditionalRootCertificateCheck"]})
    got = {k["key"]: (k["readonly"], k.get("value")) for k in r["configurationKey"]}
    assert got == {"CertificateStoreMaxLength": (True, "3"),
                   "CertificateSignedMaxChainSize": (True, "10000"),
                   "CpoName": (False, ""), "AdditionalRootCertificateCheck": (True, "false")}
    assert change(csms, "CertificateStoreMaxLength", "5") == "Rejected"
    assert change(csms, "CpoName", "Example CPO") == "Accepted"
    assert change(csms, "CpoName", "x" * 65) == "Rejected"


def test_install_rejections(csms, charger_factory):
    ch = charger_factory()
    booted(csms)
    expired, _ = make_ca("Expired", before=NOW - 30 * DAY, after=NOW - DAY)
    future, _ = make_ca("Future", before=NOW + DAY, after=NOW + 30 * DAY)
    a, _ = make_ca("A")
    b, _ = make_ca("B")
    good = pem(a)
    body = good.splitlines()
    bad = [
        pem(expired), pem(future),
        "not a certificate",
        "\n".join(body[:3] + body[4:]),  # a line of the base64 missing
        good.replace("CERTIFICATE", "PUBLIC KEY"),
        good + pem(b),  # a chain: one certificate expected
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ]
    for text in bad:
        assert install(csms, CS, text) == "Rejected", text[:60]
        assert install(csms, MF, text) == "Rejected", text[:60]
    assert ids(csms, CS) == {"status": "NotFound"} == ids(csms, MF)
    log = ch.log_text()
    assert "not valid now" in log and "malformed" in log
    # schema violations are CALLERRORs
    from csms_lib import CallErrorResult
    with pytest.raises(CallErrorResult) as e:
        csms.call("CP1", "InstallCertificate", {"certificateType": "V2GRootCertificate",
                                                "certificate": good}, validate_outgoing=False)
    assert e.value.code == "PropertyConstraintViolation"
    with pytest.raises(CallErrorResult) as e:
        csms.call("CP1", "DeleteCertificate", {"certificateHashData": {"hashAlgorithm": "SHA256"}},
                  validate_outgoing=False)
    assert e.value.code in ("ProtocolError", "OccurenceConstraintViolation")


def test_additional_root_certificate_check(csms, charger_factory):
    charger_factory(config={"keys": {"AdditionalRootCertificateCheck": True}})
    booted(csms)
    a, ka = make_ca("Root A")
    assert install(csms, CS, pem(a)) == "Accepted"  # the first: nothing to replace
    other, _ = make_ca("Unrelated")
    assert install(csms, CS, pem(other)) == "Rejected"  # M05.FR.10
    b, kb = make_ca("Root B", issuer=(a, ka))  # the new root, signed by the old
    assert install(csms, CS, pem(b)) == "Accepted"  # M05.FR.11
    got = ids(csms, CS)["certificateHashData"]
    assert len(got) == 2  # the new one and the old as the fallback
    assert _same(got[0], hash_data(b, a)) and _same(got[1], hash_data(a))
    c, _ = make_ca("Root C", issuer=(b, kb))
    assert install(csms, CS, pem(c)) == "Accepted"
    got = ids(csms, CS)["certificateHashData"]
    assert len(got) == 2  # A is gone, B is the fallback
    assert _same(got[0], hash_data(c, b)) and _same(got[1], hash_data(b, a))


@pytest.fixture
def tls_pair():
    from certs import pki
    p = pki()
    c = BenchCSMS(ssl_context=p.server_context())
    c.start()
    yield c, p
    c.stop()
    assert not c.violations


def test_installed_root_verifies_wss(csms, tls_pair, charger_factory):
    # No caCert provisioned: SecurityProfile 2 needs a CentralSystemRootCertificate,
    # and the one installed is what the link verifies the CSMS with; the CA
    # in use is not deleted (M04.FR.06).
    c, p = tls_pair
    c.passwords = {"CP1": KEY}
    mux = SchemeSplitter(csms.port, c.port)
    try:
        url = "ws://localhost:%d%s" % (mux.port, csms.path)
        charger_factory(url=url, config={"settings": {"csmsUrl": url}})
        booted(csms)
        assert change(csms, "AuthorizationKey", KEY_HEX) == "Accepted"
        csms.wait_connected("CP1", timeout=10, count=2)
        assert change(csms, "SecurityProfile", "2") == "Rejected"  # no CA yet
        ca = x509.load_der_x509_certificate(p.ca_der)
        assert install(csms, CS, pem(ca)) == "Accepted"
        assert change(csms, "SecurityProfile", "2") == "Accepted"
        c.wait_connected("CP1", timeout=15)
        assert mux.tls >= 1
        assert delete(c, hash_data(ca)) == "Failed"
        assert len(ids(c, CS)["certificateHashData"]) == 1
        # a second root can be installed and deleted; the first stays the
        # last one, in use
        other = x509.load_der_x509_certificate(p.other_ca_der)
        assert install(c, CS, pem(other)) == "Accepted"
        assert delete(c, hash_data(other)) == "Accepted"
        assert delete(c, hash_data(ca)) == "Failed"
    finally:
        mux.close()


def test_provisioned_ca_is_listed_and_deletable(csms, charger_factory):
    from certs import pki
    from test_security import _pem
    p = pki()
    ch = charger_factory(config={"security": {"caCert": _pem(p.ca_der)}})
    booted(csms)
    ca = x509.load_der_x509_certificate(p.ca_der)
    got = ids(csms, CS)["certificateHashData"]
    assert len(got) == 1 and _same(got[0], hash_data(ca))
    assert delete(csms, hash_data(ca)) == "Accepted"  # SecurityProfile 0: not in use
    assert ids(csms, CS) == {"status": "NotFound"}
    mark = csms.mark()
    ch.restart()
    booted(csms, mark=mark)
    assert ids(csms, CS) == {"status": "NotFound"}


def _tls_bench(tmp_path, ca, ca_key):
    # A wss:// bench CSMS whose server certificate (localhost) ca issued.
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY).not_valid_after(NOW + 30 * DAY)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain, kp = tmp_path / "server.pem", tmp_path / "server.key"
    chain.write_text(pem(cert) + pem(ca))
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(chain), str(kp))
    return BenchCSMS(ssl_context=ctx)


def test_fallback_root_kept_or_removed(charger_factory, tmp_path):
    # AdditionalRootCertificateCheck over wss:// (M05.FR.12/13): a new root
    # that verifies the CSMS alone removes the fallback at the next connect;
    # one that does not is used with the fallback, which stays.
    a, ka = make_ca("Root A")
    with _tls_bench(tmp_path, a, ka) as c:
        c.passwords = {"CP1": KEY}
        url = c.url.replace("127.0.0.1", "localhost")
        ch = charger_factory(url=url, config={
            "security": {"SecurityProfile": 2, "AuthorizationKey": KEY_HEX, "caCert": pem(a)},
            "keys": {"AdditionalRootCertificateCheck": True},
            "settings": {"csmsUrl": url}})
        booted(c, timeout=20)
        # B: a new root signed by A, which did not issue the CSMS's certificate
        b, _ = make_ca("Root B", issuer=(a, ka))
        assert install(c, CS, pem(b)) == "Accepted"
        assert len(ids(c, CS)["certificateHashData"]) == 2
        n = c.connections("CP1")
        c.disconnect("CP1")
        c.wait_connected("CP1", timeout=15, count=n + 1)
        ch.wait_log("trying the fallback")
        assert len(ids(c, CS)["certificateHashData"]) == 2  # B and A (fallback)
        # A renewed (same name and key) would verify the CSMS, but the root
        # it would replace is now B, which did not sign it: Rejected
        a2, _ = make_ca("Root A", key=ka)
        assert install(c, CS, pem(a2)) == "Rejected"
    # a fresh charger whose current root is A, renewed as A2
    a, ka = make_ca("Root A")
    with _tls_bench(tmp_path, a, ka) as c:
        c.passwords = {"CP2": KEY}
        url = c.url.replace("127.0.0.1", "localhost")
        ch = charger_factory(cp_id="CP2", url=url, config={
            "security": {"SecurityProfile": 2, "AuthorizationKey": KEY_HEX, "caCert": pem(a)},
            "keys": {"AdditionalRootCertificateCheck": True},
            "settings": {"csmsUrl": url}})
        c.wait_for("StatusNotification", cp_id="CP2", timeout=20,
                   pred=lambda m: m.payload.get("connectorId") == 1)
        a2, _ = make_ca("Root A", key=ka, issuer=(a, ka))
        r = c.call("CP2", "InstallCertificate", {"certificateType": CS,
                                                 "certificate": pem(a2)})
        assert r["status"] == "Accepted"
        r = c.call("CP2", "GetInstalledCertificateIds", {"certificateType": CS})
        assert len(r["certificateHashData"]) == 2
        n = c.connections("CP2")
        c.disconnect("CP2")
        c.wait_connected("CP2", timeout=15, count=n + 1)
        ch.wait_log("fallback removed")
        r = c.call("CP2", "GetInstalledCertificateIds", {"certificateType": CS})
        assert len(r["certificateHashData"]) == 1
        assert _same(r["certificateHashData"][0], hash_data(a2, a))
