# mpocpp.security.p256 and eckey inside MicroPython: group laws, point
# decoding, strict signature decoding and range checks, RFC 6979 and
# RFC 4231 vectors, key generation, private key DER.
# heap: 512k
import hashlib
from mpocpp.security import p256, eckey
from mpocpp.security.der import DerError

N = p256.N
P = p256.P
G = p256.mul_base(1)
GJ = (G[0], G[1], 1)
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B


def raises(exc, fn, *a):
    try:
        fn(*a)
    except exc:
        return
    raise AssertionError("no %s from %r" % (exc.__name__, a))


def test_generator_and_order():
    assert G == (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
                 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)
    assert p256._mul2(N, GJ, 0, None) is None  # N*G = infinity
    assert p256.affine(p256._mul2(N - 1, GJ, 0, None)) == (G[0], P - G[1])  # -G
    assert p256.mul_base(2) == p256.affine(p256._dbl(GJ))
    assert p256._add(GJ, (G[0], P - G[1], 1)) is None  # G + (-G)
    assert p256.affine(p256._add(GJ, GJ)) == p256.mul_base(2)  # add of equal points doubles
    # a different Z for the same point
    z = 12345
    gz = (G[0] * z * z % P, G[1] * z * z * z % P, z)
    assert p256.affine(p256._add(gz, GJ)) == p256.mul_base(2)
    # k1*G + k2*G = (k1 + k2)*G, scalars with zero windows and all ones
    for k1, k2 in ((1, 2), (0xF0F0, 0x0F0F), ((1 << 255) - 1, 5), (N - 2, 1)):
        a = p256.affine(p256._mul2(k1, GJ, k2, GJ))
        assert a == p256.mul_base((k1 + k2) % N), (k1, k2)


def test_decode_point():
    d = 0x1234567890ABCDEF
    q = p256.mul_base(d)
    u = p256.encode_point(q)
    assert len(u) == 65 and p256.decode_point(u) == q
    for k in range(1, 20):
        q = p256.mul_base(k * 7919)
        c = bytes((2 + (q[1] & 1),)) + q[0].to_bytes(32, "big")
        assert p256.decode_point(c) == q
        assert p256.decode_point(memoryview(p256.encode_point(q))) == q
    x, y = q
    off = b"\x04" + x.to_bytes(32, "big") + ((y + 1) % P).to_bytes(32, "big")
    raises(ValueError, p256.decode_point, off)
    raises(ValueError, p256.decode_point, b"\x00")  # infinity
    raises(ValueError, p256.decode_point, b"")
    raises(ValueError, p256.decode_point, b"\x06" + u[1:])  # hybrid
    raises(ValueError, p256.decode_point, b"\x05" + u[1:])
    raises(ValueError, p256.decode_point, u[:-1])
    raises(ValueError, p256.decode_point, u + b"\x00")
    # coordinates >= P: (x + P) is the same residue but not a field element
    raises(ValueError, p256.decode_point,
           b"\x04" + (G[0] + P).to_bytes(33, "big")[1:] + G[1].to_bytes(32, "big"))
    raises(ValueError, p256.decode_point, b"\x04" + (1 << 256 - 8).to_bytes(32, "big") + bytes(32))
    raises(ValueError, p256.decode_point, b"\x04" + bytes(64))  # (0, 0)
    # compressed: x with no point, and x >= P
    x = 0
    while True:
        a = (x * x * x - 3 * x + B) % P
        if pow(a, (P - 1) // 2, P) == P - 1:  # not a square
            break
        x += 1
    raises(ValueError, p256.decode_point, b"\x02" + x.to_bytes(32, "big"))
    raises(ValueError, p256.decode_point, b"\x02" + b"\xff" * 32)


def test_rfc6979_vectors():
    # RFC 6979 A.2.5, P-256 with SHA-256
    d = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
    assert eckey.public(d) == b"\x04" + bytes.fromhex(
        "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"
        "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299")
    for msg, r, s in (
            (b"sample", 0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716,
             0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8),
            (b"test", 0xF1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367,
             0x019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083)):
        h = hashlib.sha256(msg).digest()
        assert eckey.sign(d, h, b"") == (r, s)
        assert p256.verify(eckey.public(d), h, eckey.encode_sig(r, s))
    # hedged (the default): a fresh nonce each time, both verify
    h = hashlib.sha256(b"sample").digest()
    a = eckey.sign(d, h)
    b = eckey.sign(d, h)
    assert a != b and a[0] != 0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716
    for r, s in (a, b):
        assert p256.verify(eckey.public(d), h, eckey.encode_sig(r, s))
    raises(ValueError, eckey.sign, d, h[:31])


def test_hmac_rfc4231():
    hm = eckey.hmac_sha256
    assert hm(b"\x0b" * 20, b"Hi There") == bytes.fromhex(
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    assert hm(b"Jefe", b"what do ya want for nothing?") == bytes.fromhex(
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    msg = b"Test Using Larger Than Block-Size Key - Hash Key First"
    assert hm(b"\xaa" * 131, msg) == bytes.fromhex(
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")


def sig_of(r, s):
    return eckey.encode_sig(r, s)


def test_verify_rejects():
    d = 0x51A7E
    pub = eckey.public(d)
    h = hashlib.sha256(b"m").digest()
    r, s = eckey.sign(d, h)
    good = sig_of(r, s)
    assert p256.verify(pub, h, good)
    assert p256.verify(pub, h, sig_of(r, N - s))  # the standard has no low-s rule
    assert not p256.verify(pub, hashlib.sha256(b"n").digest(), good)
    assert not p256.verify(eckey.public(d + 1), h, good)
    for rr, ss in ((0, s), (r, 0), (N, s), (r, N), (r + N, s), (r, s + N), (N + 1, s),
                   ((1 << 256) - 1, s), (r, P), (r, 1), (1, s)):
        assert not p256.verify(pub, h, sig_of(rr, ss)), (rr, ss)
    # strict DER: every malformed encoding is False, never an exception
    rb = r.to_bytes(32, "big")
    sb = s.to_bytes(32, "big")
    def integer(b):
        return bytes((2, len(b))) + b
    def seq(b):
        return bytes((0x30, len(b))) + b
    ri = integer(b"\x00" + rb if rb[0] & 0x80 else rb)
    si = integer(b"\x00" + sb if sb[0] & 0x80 else sb)
    assert seq(ri + si) == good
    malformed = [
        seq(integer(b"\x00\x00" + rb) + si),             # leading zeros
        seq(ri + integer(b"\x00" + bytes(31) + b"\x01")),  # non-minimal small s
        seq(integer(bytes((rb[0] | 0x80,)) + rb[1:]) + si),  # negative r
        seq(ri + si) + b"\x00",                           # trailing byte
        seq(ri + si + b"\x05\x00"),                       # extra element
        seq(ri),                                          # s missing
        bytes((0x30, 0x81, len(ri + si))) + ri + si,      # long form length
        bytes((0x30, 0x80)) + ri + si + b"\x00\x00",      # indefinite length
        bytes((0x30, len(ri + si) + 1)) + ri + si,        # length past end
        bytes((0x30, len(ri + si) - 1)) + ri + si,        # length short
        good[:-1],                                        # truncated
        ri + si,                                          # no SEQUENCE
        seq(si + ri),                                     # swapped
        bytes((0x31,)) + good[1:],                        # SET, not SEQUENCE
        b"",
        rb + sb,                                          # raw r || s
    ]
    for m in malformed:
        assert not p256.verify(pub, h, m), m
    # a result at infinity: e + r*d = 0 mod N makes u1*G + u2*Q = 0
    e = int.from_bytes(h, "big")
    r0 = (-e * pow(d, N - 2, N)) % N
    assert p256._mul2(e * pow(7, N - 2, N) % N, GJ, r0 * pow(7, N - 2, N) % N,
                      (p256.decode_point(pub) + (1,))) is None
    assert not p256.verify(pub, h, sig_of(r0, 7))
    # a bad key is an error, not False
    raises(ValueError, p256.verify, b"\x00", h, good)
    raises(ValueError, p256.verify, pub[:-1] + bytes((pub[-1] ^ 1,)), h, good)


def test_keygen_and_private_der():
    seen = set()
    for _ in range(8):
        d = eckey.generate()
        assert 0 < d < N and d not in seen
        seen.add(d)
        b = eckey.private_der(d)
        assert eckey.load_private(b) == d
        assert eckey.load_private(memoryview(b)) == d
    d = eckey.generate()
    b = eckey.private_der(d)
    raises(DerError, eckey.load_private, b[:-1])
    raises(DerError, eckey.load_private, b + b"\x00")
    raises(DerError, eckey.load_private, b.replace(b"\x02\x01\x01", b"\x02\x01\x02", 1))
    bad_curve = b.replace(b"\x2a\x86\x48\xce\x3d\x03\x01\x07",
                          b"\x2b\x81\x04\x00\x22\x00\x00\x00", 1)
    raises(DerError, eckey.load_private, bad_curve)
    zero = eckey.private_der(1).replace(b"\x04\x20" + (1).to_bytes(32, "big"),
                                        b"\x04\x20" + bytes(32), 1)
    raises(DerError, eckey.load_private, zero)
    # the public key stored with it (CertificateSigned compares it with the
    # certificate's), the given one written as is; absent -> None
    pub = eckey.public(d)
    assert eckey.private_der(d, pub) == b
    got = []
    assert eckey.load_private(b, got) == d and got == [pub]
    bare = b"\x30\x31" + b[2:2 + 3 + 34 + 12]  # version, key, curve
    got = []
    assert eckey.load_private(bare, got) == d and got == [None]


def test_pause_called_inside_the_long_operations():
    # A multiplication stands the loop still for about a second on an
    # RP2040: pause() (the charger's relay and watchdog work) runs inside
    # it, every few windows, and the results do not change.
    from mpocpp.security import csr
    calls = []

    def pause():
        calls.append(1)

    d = 0x1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF
    pub = eckey.public(d, pause)
    assert pub == eckey.public(d) and len(calls) >= 20
    n = len(calls)
    digest = hashlib.sha256(b"pause").digest()
    sig = eckey.sign(d, digest, b"", pause)
    assert sig == eckey.sign(d, digest, b"") and len(calls) >= n + 20
    n = len(calls)
    assert p256.verify(pub, digest, eckey.encode_sig(*sig), pause)
    assert len(calls) >= n + 20
    n = len(calls)
    req = csr.build(d, "O", "CN", None, b"", pause)
    assert req == csr.build(d, "O", "CN", None, b"") and len(calls) >= n + 40
