# RSA signature verification with SHA-256 (RFC 8017): RSASSA-PKCS1-v1_5 and
# RSASSA-PSS (MGF1-SHA-256). Keys of 2048 to 4096 bits. Public data only, so
# variable-time arithmetic is harmless here.
import hashlib
from micropython import const

# DigestInfo header for SHA-256 (RFC 8017 9.2 note 1), NULL parameters
_DIGEST_INFO = const(b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01"
                     b"\x05\x00\x04\x20")


def _bits(n):
    # bit length of the modulus (big-endian bytes, no leading zero octet)
    if not n or n[0] == 0:
        raise ValueError("RSA modulus")
    bits = 8 * len(n)
    t = n[0]
    while t < 0x80:
        t <<= 1
        bits -= 1
    if bits < 2048 or bits > 4096:
        raise ValueError("RSA key size")
    return bits


def _open(n, e, sig):
    # s^e mod n, or None when the signature is not an integer below n of
    # exactly the modulus' length (RFC 8017 8.2.2 step 1)
    # e odd, 3 <= e < 2^32: every key in use has 65537 (or 3); a large e
    # would make a verification take seconds on a microcontroller
    if e < 3 or not e & 1 or e >> 32:
        raise ValueError("RSA exponent")
    if len(sig) != len(n):
        return None
    m = int.from_bytes(n, "big")
    s = int.from_bytes(sig, "big")
    if s >= m:
        return None
    return pow(s, e, m)


def verify(n, e, digest, sig):
    # RSASSA-PKCS1-v1_5: the whole encoded message is rebuilt from the digest
    # and compared, nothing of the padding is parsed (no Bleichenbacher '06).
    _bits(n)
    m = _open(n, e, sig)
    if m is None or len(digest) != 32:
        return False
    k = len(n)
    em = b"\x00\x01" + b"\xff" * (k - 54) + b"\x00" + _DIGEST_INFO + digest
    return m.to_bytes(k, "big") == em


def _mgf1(seed, n):
    out = b""
    c = 0
    while len(out) < n:
        out += hashlib.sha256(seed + c.to_bytes(4, "big")).digest()
        c += 1
    return out[:n]


def verify_pss(n, e, digest, sig, salt_len=-1):
    # RSASSA-PSS with SHA-256 and MGF1-SHA-256; salt_len -1 accepts any salt
    # length (recovered from the padding), else it must match.
    em_bits = _bits(n) - 1
    m = _open(n, e, sig)
    if m is None or len(digest) != 32:
        return False
    em_len = (em_bits + 7) >> 3
    try:
        em = m.to_bytes(em_len, "big")
    except OverflowError:
        return False
    db_len = em_len - 33
    zb = 8 * em_len - em_bits  # leftmost bits of EM that must be zero
    if em[-1] != 0xBC or em[0] >> (8 - zb):
        return False
    h = em[db_len:-1]
    db = int.from_bytes(em[:db_len], "big") ^ int.from_bytes(_mgf1(h, db_len), "big")
    db = (db & ((1 << (8 * db_len - zb)) - 1)).to_bytes(db_len, "big")
    i = 0
    while i < db_len and db[i] == 0:
        i += 1
    if i == db_len or db[i] != 1:
        return False
    salt = db[i + 1:]
    if salt_len >= 0 and len(salt) != salt_len:
        return False
    return hashlib.sha256(bytes(8) + digest + salt).digest() == h
