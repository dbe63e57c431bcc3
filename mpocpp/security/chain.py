# Certificate chain validation (RFC 5280 6.1, the parts the whitepaper
# needs): signatures, validity at a given time, CA constraints, up to one of
# the trusted roots. Also the signature check used for signed firmware.
import hashlib
from . import x509


class ChainError(ValueError):
    pass


def verify_digest(key_cert, alg, digest, sig, salt_len=-1, pause=None):
    # signature by key_cert's public key over a SHA-256 digest -> bool;
    # ChainError when the key and algorithm cannot be used together; pause:
    # as for p256 (RSA is one pow() in C, short)
    kt = key_cert.key_type
    try:
        if alg == x509.ECDSA_SHA256 and kt == x509.KEY_P256:
            from . import p256
            return p256.verify(key_cert.key_bits, digest, sig, pause)
        if kt == x509.KEY_RSA:
            from . import rsa
            if alg == x509.RSA_SHA256:
                return rsa.verify(key_cert.rsa_n, key_cert.rsa_e, digest, sig)
            if alg == x509.RSA_PSS_SHA256:
                return rsa.verify_pss(key_cert.rsa_n, key_cert.rsa_e, digest, sig, salt_len)
    except ValueError as e:  # a key the algorithm refuses (curve, size)
        raise ChainError("bad key: %s" % e)
    raise ChainError("unsupported algorithm")


def _signed_by(cert, issuer, pause):
    if cert.issuer != issuer.subject:
        raise ChainError("issuer name mismatch")
    d = hashlib.sha256(cert.tbs).digest()
    if not verify_digest(issuer, cert.sig_alg, d, cert.signature, cert.pss_salt, pause):
        raise ChainError("bad signature")


def _usable(cert, now):
    if now < cert.not_before:
        raise ChainError("not yet valid")
    if now > cert.not_after:
        raise ChainError("expired")
    if cert.critical_unknown:
        raise ChainError("unknown critical extension")


def _issuer(cert, below):
    # cert signs a certificate with `below` intermediate CAs under it
    if not cert.ca:
        raise ChainError("issuer is not a CA")
    if cert.key_usage >= 0 and not cert.key_usage & x509.KU_KEY_CERT_SIGN:
        raise ChainError("issuer lacks keyCertSign")
    if 0 <= cert.path_len < below:
        raise ChainError("path length")


def verify_chain(chain, roots, now, max_certs=5, pause=None):
    # chain: Certificates, leaf first, each issued by the next; roots: trusted
    # Certificates; now: unix seconds. -> the root the chain ends at, or
    # ChainError. The last certificate may itself be one of the roots.
    n = len(chain)
    if not 0 < n <= max_certs:
        raise ChainError("chain length")
    for i in range(n):
        _usable(chain[i], now)
        if i:
            _issuer(chain[i], i - 1)
            _signed_by(chain[i - 1], chain[i], pause)
    top = chain[-1]
    for r in roots:
        if r.der == top.der:
            return r
    err = ChainError("no trusted root")
    for r in roots:
        if r.subject == top.issuer:
            try:
                _usable(r, now)
                _issuer(r, n - 1)
                _signed_by(top, r, pause)
                return r
            except ChainError as e:  # another root may share the name
                err = e
    raise err
