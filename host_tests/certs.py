"""Test certificate authority for the wss:// tests (CPython, `cryptography`).

`pki()` creates once per process, in a temporary directory:
- a CA and a server certificate for localhost / 127.0.0.1 signed by it,
- a second, unrelated CA (for "wrong CA" tests),
and returns a `Pki` with the file paths and the CA certificates in DER (what
MicroPython's `tls.SSLContext.load_verify_locations()` takes).
"""
import atexit
import datetime
import ipaddress
import os
import shutil
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class Pki:
    def __init__(self, dir):
        self.dir = dir
        self.ca_pem = os.path.join(dir, "ca.pem")
        self.ca_key_pem = os.path.join(dir, "ca.key")  # signs CSRs (profile 3)
        self.ca_der_path = os.path.join(dir, "ca.der")
        self.server_cert = os.path.join(dir, "server.pem")  # chain: server, CA
        self.server_key = os.path.join(dir, "server.key")
        self.other_ca_der_path = os.path.join(dir, "other_ca.der")
        self.ca_der = b""
        self.other_ca_der = b""
        self.ca = self.ca_key = None  # the CA (cryptography objects): it signs CSRs
        self.other_ca = self.other_ca_key = None

    def server_context(self):
        """A TLS 1.2+ server context with the server's chain, for a CSMS."""
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx


def sign_csr(csr_pem, ca, ca_key, days=30, not_before=None, key=None):
    """A charge point certificate for a CSR (PEM text), issued by ca: the
    CSR's subject, its public key (or key's, to make a mismatch), valid from
    not_before (default: a day ago) for `days` days."""
    req = x509.load_pem_x509_csr(csr_pem.encode())
    assert req.is_signature_valid
    nb = not_before or datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    cert = (x509.CertificateBuilder()
            .subject_name(req.subject).issuer_name(ca.subject)
            .public_key(key or req.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(nb).not_valid_after(nb + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn, now):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            # one sub-CA allowed (test_profile3's intermediate)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make(dir, hosts=("localhost",), ips=("127.0.0.1",)):
    """Write a fresh CA, server certificate and unrelated CA into dir."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, ca = _ca("Test CSMS CA", now)
    other_key, other = _ca("Unrelated CA", now)
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(h) for h in hosts] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(_name(hosts[0])).issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    pki = Pki(dir)
    pem = serialization.Encoding.PEM
    der = serialization.Encoding.DER
    pki.ca_der = ca.public_bytes(der)
    pki.ca, pki.ca_key, pki.other_ca, pki.other_ca_key = ca, ca_key, other, other_key
    pki.other_ca_der = other.public_bytes(der)
    files = {
        pki.ca_pem: ca.public_bytes(pem),
        pki.ca_der_path: pki.ca_der,
        pki.ca_key_pem: ca_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()),
        pki.other_ca_der_path: pki.other_ca_der,
        pki.server_cert: cert.public_bytes(pem) + ca.public_bytes(pem),
        pki.server_key: key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()),
    }
    for path, data in files.items():
        with open(path, "wb") as f:
            f.write(data)
    return pki


_pki = None


def pki():
    """The per-process test PKI (created on first use, removed at exit)."""
    global _pki
    if _pki is None:
        d = tempfile.mkdtemp(prefix="ocpp-test-pki-")
        atexit.register(shutil.rmtree, d, True)
        _pki = make(d)
    return _pki

