# NIST P-256 (FIPS 186-4 D.1.2.3, SEC 2 secp256r1): group arithmetic on
# MicroPython big integers in Jacobian coordinates (one inversion at the
# end), SEC 1 point decoding with the curve check, ECDSA verification and
# the strict DER signature decoder. Variable-time (docs/security.md): the
# secret-scalar side (keys, signing) lives in eckey.py.
from micropython import const
from .der import Reader

P = const(0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF)
N = const(0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551)
_B = const(0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B)
_GX = const(0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296)
_GY = const(0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)
_W = const(3)  # window bits: 4 is 5 % faster on an RP2040 but needs 6 KiB more heap
# pause() is called every this many windows of a multiplication (about 50 ms
# on an RP2040: a multiplication is about a second): the charger's safety
# work (the relay, the watchdog) runs although the loop cannot.
_PAUSE_WINDOWS = const(4)


def _dbl(q):
    # 2q, a = -3 (3M + 5S); None is the point at infinity
    x, y, z = q
    p = P
    d = z * z % p
    g = y * y % p
    b = x * g % p
    a = 3 * (x - d) * (x + d) % p
    x3 = (a * a - 8 * b) % p
    return x3, (a * (4 * b - x3) - 8 * g * g) % p, 2 * y * z % p


def _add(q, r):
    if q is None:
        return r
    x1, y1, z1 = q
    x2, y2, z2 = r
    p = P
    zz1 = z1 * z1 % p
    zz2 = z2 * z2 % p
    u1 = x1 * zz2 % p
    u2 = x2 * zz1 % p
    s1 = y1 * z2 % p * zz2 % p
    s2 = y2 * z1 % p * zz1 % p
    if u1 == u2:
        return _dbl(q) if s1 == s2 else None
    h = u2 - u1
    t = s2 - s1
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    x3 = (t * t - hhh - 2 * v) % p
    return x3, (t * (v - x3) - s1 * hhh) % p, z1 * z2 % p * h % p


def _table(q):
    # q, 2q, ..., (2^W - 1)q
    t = [q, _dbl(q)]
    for _ in range((1 << _W) - 3):
        t.append(_add(t[-1], q))
    return t


def _mul2(k1, q1, k2, q2, pause=None):
    # k1*q1 + k2*q2 (Jacobian, or None), 0 <= k < 2^256; windows interleaved
    t1 = _table(q1) if k1 else None
    t2 = _table(q2) if k2 else None
    r = None
    m = (1 << _W) - 1
    i = 255 // _W * _W
    n = 0
    while i >= 0:
        n += 1
        if pause is not None and n % _PAUSE_WINDOWS == 0:
            pause()
        if r is not None:
            for _ in range(_W):
                r = _dbl(r)
        d = (k1 >> i) & m
        if d:
            r = _add(r, t1[d - 1])
        d = (k2 >> i) & m
        if d:
            r = _add(r, t2[d - 1])
        i -= _W
    return r


def affine(q):
    # Jacobian -> (x, y); q must not be the point at infinity
    x, y, z = q
    zi = pow(z, P - 2, P)
    zi2 = zi * zi % P
    return x * zi2 % P, y * zi2 * zi % P


def mul_base(k, pause=None):
    # k*G as (x, y), 0 < k < N
    return affine(_mul2(k, (_GX, _GY, 1), 0, None, pause))


def encode_point(q):
    # SEC 1 uncompressed point 04 || X || Y
    return b"\x04" + q[0].to_bytes(32, "big") + q[1].to_bytes(32, "big")


def decode_point(b):
    # SEC 1 2.3.4, uncompressed or compressed -> (x, y) on the curve; the
    # point at infinity (00) and hybrid forms are refused. ValueError if bad.
    n = len(b)
    if n == 65 and b[0] == 4:
        x = int.from_bytes(b[1:33], "big")
        y = int.from_bytes(b[33:], "big")
        if x >= P or y >= P or (y * y - x * x * x + 3 * x - _B) % P:
            raise ValueError("point not on P-256")
        return x, y
    if n == 33 and b[0] in (2, 3):
        x = int.from_bytes(b[1:], "big")
        a = (x * x * x - 3 * x + _B) % P
        y = pow(a, (P + 1) >> 2, P)  # square root: P = 3 mod 4
        if x >= P or y * y % P != a:
            raise ValueError("point not on P-256")
        return x, (y if (y ^ b[0]) & 1 == 0 else P - y)
    raise ValueError("point encoding")


def _decode_sig(sig):
    # Ecdsa-Sig-Value SEQUENCE { r INTEGER, s INTEGER }, strict DER -> (r, s)
    r = Reader(sig)
    s = r.enter()
    r.done()
    a = s.uint()
    b = s.uint()
    s.done()
    return a, b


def verify(point, digest, sig, pause=None):
    # ECDSA (FIPS 186-4 6.4.2) of a SHA-256 digest; point: SEC 1 bytes (a bad
    # key raises ValueError), sig: DER. Both s and N - s verify (no low-s
    # rule in the standard).
    x, y = decode_point(point)
    try:
        r, s = _decode_sig(sig)
    except ValueError:
        return False
    if not (0 < r < N and 0 < s < N):
        return False
    e = int.from_bytes(digest[:32], "big")
    w = pow(s, N - 2, N)
    q = _mul2(e * w % N, (_GX, _GY, 1), r * w % N, (x, y, 1), pause)
    if q is None:
        return False
    # x(q) mod N == r, checked without an inversion: X == r' * Z^2 for
    # r' = r or r + N (x may be in [N, P))
    zz = q[2] * q[2] % P
    if (q[0] - r * zz) % P == 0:
        return True
    return r + N < P and (q[0] - (r + N) * zz) % P == 0
