# The charger's own P-256 key: generation from os.urandom, ECDSA signing
# with RFC 6979 nonces hedged with fresh randomness (RFC 6979 3.6), SEC 1
# private key DER (RFC 5915, what tls.SSLContext.load_cert_chain takes).
# Variable-time big-integer arithmetic: see docs/security.md.
import os
import hashlib
from micropython import const
from . import p256
from .der import Reader, DerError, tlv, seq, uint, OCTET_STRING, OID

_OID_P256 = const(b"\x2a\x86\x48\xce\x3d\x03\x01\x07")


def generate():
    # private scalar d uniform in [1, N-1] by rejection sampling (FIPS 186-4
    # B.4.2); the chance of a retry is about 2^-32
    while True:
        d = int.from_bytes(os.urandom(32), "big")
        if 0 < d < p256.N:
            return d


def public(d, pause=None):
    # SEC 1 uncompressed public point of d (65 bytes); pause: as for p256
    return p256.encode_point(p256.mul_base(d, pause))


def hmac_sha256(key, msg):
    # RFC 2104
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key += bytes(64 - len(key))
    h = hashlib.sha256(bytes(c ^ 0x36 for c in key))
    h.update(msg)
    o = hashlib.sha256(bytes(c ^ 0x5C for c in key))
    o.update(h.digest())
    return o.digest()


def sign(d, digest, extra=None, pause=None):
    # ECDSA signature (r, s) of a SHA-256 digest. The nonce is RFC 6979 3.2
    # (HMAC-SHA256 DRBG over the key and digest) with extra data k' = 32
    # bytes of os.urandom by default: a weak RNG cannot leak the key, and a
    # fault during two signings of one message does not give equal nonces.
    # extra=b"" gives plain deterministic RFC 6979 (test vectors).
    if len(digest) != 32:
        raise ValueError("digest")
    if extra is None:
        extra = os.urandom(32)
    n = p256.N
    h = int.from_bytes(digest, "big")
    seed = d.to_bytes(32, "big") + (h % n).to_bytes(32, "big") + extra
    k = bytes(32)
    v = b"\x01" * 32
    k = hmac_sha256(k, v + b"\x00" + seed)
    v = hmac_sha256(k, v)
    k = hmac_sha256(k, v + b"\x01" + seed)
    v = hmac_sha256(k, v)
    while True:
        v = hmac_sha256(k, v)
        t = int.from_bytes(v, "big")
        if 0 < t < n:
            r = p256.mul_base(t, pause)[0] % n
            if r:
                s = pow(t, n - 2, n) * (h + r * d) % n
                if s:
                    return r, s
        k = hmac_sha256(k, v + b"\x00")
        v = hmac_sha256(k, v)


def encode_sig(r, s):
    # Ecdsa-Sig-Value DER
    return seq(uint(r, 32), uint(s, 32))


def private_der(d, pub=None):
    # ECPrivateKey (RFC 5915) with the curve and the public key (pub =
    # public(d) when the caller has it: saves a scalar multiplication)
    return seq(b"\x02\x01\x01", tlv(OCTET_STRING, d.to_bytes(32, "big")),
               tlv(0xA0, tlv(OID, _OID_P256)), tlv(0xA1, tlv(0x03, b"\x00" + (pub or public(d)))))


def load_private(b, pub=None):
    # ECPrivateKey DER -> d (P-256 only), or, pub a list, d with the
    # optional public key appended to it (None when absent)
    r = Reader(memoryview(b))
    s = r.enter()
    r.done()
    if s.uint() != 1:
        raise DerError("ECPrivateKey version")
    s.next(OCTET_STRING)
    if s.v1 - s.v0 != 32:
        raise DerError("private key length")
    d = int.from_bytes(s.value(), "big")
    if not 0 < d < p256.N:
        raise DerError("private key range")
    if s.peek() == 0xA0:
        c = s.enter(0xA0)
        if c.oid() != _OID_P256:
            raise DerError("not P-256")
        c.done()
    k = None
    if s.peek() == 0xA1:
        c = s.enter(0xA1)
        k = bytes(c.bits())
        c.done()
    s.done()
    if pub is not None:
        pub.append(k)
    return d
