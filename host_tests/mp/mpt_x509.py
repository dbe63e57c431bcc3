# mpocpp.security.x509, pem and chain inside MicroPython, on certificates
# the test builds itself (DER writer + our P-256 signer) with one field
# changed at a time: what RFC 5280 / X.690 forbid is refused, and the chain
# check refuses every broken link.
# heap: 512k
import hashlib
from mpocpp.security import x509, pem, chain, eckey
from mpocpp.security.der import tlv, seq, uint, DerError
from mpocpp.security.chain import ChainError

ECDSA = b"\x30\x0a\x06\x08\x2a\x86\x48\xce\x3d\x04\x03\x02"
EC_P256 = b"\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07"
ECDSA_SHA384 = b"\x30\x0a\x06\x08\x2a\x86\x48\xce\x3d\x04\x03\x03"
V3 = b"\xa0\x03\x02\x01\x02"
BC = b"\x55\x1d\x13"
KU = b"\x55\x1d\x0f"
T0 = 1767225600  # 2026-01-01T00:00:00Z
T1 = 1798761600  # 2027-01-01T00:00:00Z
KEYS = {}


def key(name):
    if name not in KEYS:
        d = int.from_bytes(hashlib.sha256(name.encode()).digest(), "big") % (eckey.p256.N - 1) + 1
        KEYS[name] = (d, eckey.public(d))
    return KEYS[name]


def utc(s):
    return tlv(0x17, s.encode())


def gen(s):
    return tlv(0x18, s.encode())


def name(cn, o="Test Org"):
    return seq(tlv(0x31, seq(tlv(6, b"\x55\x04\x0a"), tlv(0x0c, o.encode()))),
               tlv(0x31, seq(tlv(6, b"\x55\x04\x03"), tlv(0x0c, cn.encode()))))


def rdn(oid, tag, value):
    return tlv(0x31, seq(tlv(6, oid), tlv(tag, value)))


def ext(oid, value, critical=False):
    return seq(tlv(6, oid), b"\x01\x01\xff" if critical else b"", tlv(4, value))


def bc(ca=True, path_len=None):
    return ext(b"\x55\x1d\x13", seq(b"\x01\x01\xff" if ca else b"",
                                    uint(path_len, 4) if path_len is not None else b""), True)


def ku(bits):
    # keyUsage from an int of bits 0..8 (DER named bit list)
    n = 0
    for i in range(9):
        if bits >> i & 1:
            n = i + 1
    nbytes = (n + 7) // 8
    v = 0
    for i in range(n):
        if bits >> i & 1:
            v |= 1 << (nbytes * 8 - 1 - i)
    body = bytes((nbytes * 8 - n,)) + (v.to_bytes(nbytes, "big") if nbytes else b"")
    return ext(b"\x55\x1d\x0f", tlv(3, body), True)


def exts(*e):
    return tlv(0xA3, seq(*e))


def make(subject="Leaf", issuer="Root", signer=None, subject_key=None, version=V3,
         serial=None, alg=ECDSA, outer_alg=None, validity=None, spki=None,
         extensions=None, extra=b"", sig=None, subject_name=None):
    pub = key(subject_key or subject)[1]
    tbs = seq(version, serial if serial is not None else uint(0x1234, 20), alg,
              name(issuer), validity if validity is not None else
              seq(utc("260101000000Z"), utc("270101000000Z")),
              subject_name if subject_name is not None else name(subject),
              spki if spki is not None else seq(EC_P256, tlv(3, b"\x00" + pub)),
              extensions if extensions is not None else b"", extra)
    d = key(signer or issuer)[0]
    if sig is None:
        r, s = eckey.sign(d, hashlib.sha256(tbs).digest(), b"")
        sig = eckey.encode_sig(r, s)
    return seq(tbs, outer_alg or alg, tlv(3, b"\x00" + sig))


def parse(der):
    return x509.Certificate(der)


def bad(der, what):
    try:
        x509.Certificate(der)
    except DerError:
        return
    raise AssertionError("accepted: " + what)


def test_fields():
    c = parse(make(extensions=exts(ku(1 | 2))))
    assert c.version == 3 and bytes(c.serial) == b"\x12\x34"
    assert c.cn == "Leaf" and c.o == "Test Org"
    assert (c.not_before, c.not_after) == (T0, T1)
    assert c.key_type == x509.KEY_P256 and bytes(c.key_bits) == key("Leaf")[1]
    assert c.sig_alg == x509.ECDSA_SHA256 and not c.ca and c.path_len == -1
    assert c.key_usage == 3 and not c.critical_unknown
    assert bytes(c.issuer) == name("Root") and bytes(c.subject) == name("Leaf")
    assert eckey.p256.verify(key("Root")[1], hashlib.sha256(c.tbs).digest(), c.signature)
    assert c.valid_at(T0) and c.valid_at(T1) and not c.valid_at(T0 - 1) and not c.valid_at(T1 + 1)
    r = parse(make("Root", extensions=exts(bc(True, 2), ku(32 | 64))))
    assert r.ca and r.path_len == 2 and r.key_usage == 96 and r.self_issued()
    # v1 without extensions, v2 with unique ids
    c = parse(make(version=b""))
    assert c.version == 1
    c = parse(make(version=b"\xa0\x03\x02\x01\x01", extra=b"\x81\x02\x00\xaa\x82\x02\x00\xbb"))
    assert c.version == 2
    # keyUsage decipherOnly (bit 8) needs a second octet
    c = parse(make(extensions=exts(ku(1 | 256))))
    assert c.key_usage == 257


def test_times():
    ok = [
        (utc("500101000000Z"), -631152000),       # YY >= 50: 19YY
        (utc("491231235959Z"), 2524607999),       # YY < 50: 20YY
        (utc("000229120000Z"), 951825600),        # 2000 is a leap year
        (utc("380119031408Z"), 2147483648),       # past 2^31 on a 32-bit port
        (gen("20500101000000Z"), 2524608000),
        (gen("99991231235959Z"), 253402300799),   # "no well-defined expiration"
        (gen("19700101000000Z"), 0),
        (gen("21000228000000Z"), 4107456000),
        (gen("24000229000000Z"), 13574563200),    # 2400 is a leap year
    ]
    for t, want in ok:
        c = parse(make(validity=seq(t, gen("99991231235959Z"))))
        assert c.not_before == want, (t, c.not_before, want)
    bad_times = [
        utc("210229000000Z"), gen("21000229000000Z"), gen("19000229000000Z"),
        utc("261301000000Z"), utc("260001000000Z"), utc("260100000000Z"),
        utc("260132000000Z"), utc("260431000000Z"), utc("260101240000Z"),
        utc("260101006000Z"), utc("260101000060Z"), utc("2601010000Z"),
        utc("260101000000"), utc("260101000000+0000"), utc("26010100000aZ"),
        utc("2601010000000Z"), gen("20260101000000.5Z"), gen("202601010000Z"),
        gen("20260101000000"), utc("26-1-1 00:00Z"), tlv(0x04, b"260101000000Z"),
        utc(" 60101000000Z"),
    ]
    for t in bad_times:
        bad(make(validity=seq(t, gen("99991231235959Z"))), repr(t))
    bad(make(validity=seq(utc("260101000000Z"))), "one time")
    three = seq(utc("260101000000Z"), utc("270101000000Z"), utc("280101000000Z"))
    bad(make(validity=three), "three times")


def test_structure():
    good = make()
    parse(good)
    bad(good + b"\x00", "trailing byte")
    bad(good[:-1], "truncated")
    for n in range(0, len(good), 7):
        bad(good[:n], "truncated at %d" % n)
    bad(b"\x30\x80" + good[2:] + b"\x00\x00", "indefinite length")
    bad(make(version=b"\xa0\x03\x02\x01\x00"), "explicit v1 (DEFAULT)")
    bad(make(version=b"\xa0\x03\x02\x01\x03"), "version 4")
    bad(make(version=b"\xa0\x04\x02\x02\x00\x02"), "non-canonical version")
    bad(make(version=b"", extensions=exts(bc())), "extensions in v1")
    bad(make(version=b"\xa0\x03\x02\x01\x01", extensions=exts(bc())), "extensions in v2")
    bad(make(version=b"", extra=b"\x81\x02\x00\xaa"), "unique id in v1")
    bad(make(outer_alg=ECDSA_SHA384), "outer algorithm differs")
    bad(make(alg=b"\x30\x0c\x06\x08\x2a\x86\x48\xce\x3d\x04\x03\x02\x05\x00"),
        "ECDSA with NULL params")
    bad(make(extra=b"\x05\x00"), "trailing element in tbs")
    bad(make(serial=uint(1 << 160, 21)), "21-octet serial")
    parse(make(serial=uint((1 << 160) - 1, 20)))  # 20 octets + sign octet
    bad(make(serial=b"\x02\x02\x00\x01"), "non-canonical serial")
    bad(make(serial=b"\x02\x00"), "empty serial")
    bad(make(spki=seq(EC_P256, tlv(3, b"\x00" + key("Leaf")[1][:-1]))), "short EC point")
    bad(make(spki=seq(EC_P256, tlv(3, b"\x00\x00"))), "EC point at infinity")
    bad(make(spki=seq(EC_P256, tlv(3, b"\x01" + key("Leaf")[1]))), "unused bits in key")
    p384 = seq(tlv(6, b"\x2a\x86\x48\xce\x3d\x02\x01"), tlv(6, b"\x2b\x81\x04\x00\x22"))
    c = parse(make(spki=seq(p384, tlv(3, b"\x00\x04" + bytes(96)))))
    assert c.key_type == 0  # P-384: parsed, not usable
    c = parse(make(alg=ECDSA_SHA384))
    assert c.sig_alg == 0  # ecdsa-with-SHA384: parsed, not usable
    # names
    bad(make(subject_name=seq(tlv(0x31, b""))), "empty RDN")
    bad(make(subject_name=seq(tlv(0x31, seq(tlv(6, b"\x55\x04\x03"))))), "attribute without value")
    bad(make(subject_name=tlv(0x31, b"")), "Name as a SET")
    c = parse(make(subject_name=seq()))
    assert c.cn is None and c.o is None and bytes(c.subject) == b"\x30\x00"
    # PrintableString, the first CN of two, IA5String
    c = parse(make(subject_name=seq(rdn(b"\x55\x04\x03", 0x13, b"CP-1"),
                                    rdn(b"\x55\x04\x03", 0x0c, b"CP-2"),
                                    rdn(b"\x55\x04\x0a", 0x16, b"cpo"))))
    assert c.cn == "CP-1" and c.o == "cpo"
    # other attributes: any value
    c = parse(make(subject_name=seq(rdn(b"\x55\x04\x05", 0x1e, b"\x00A"))))
    assert c.cn is None
    c = parse(make(subject_name=name("Stra\u00dfe \u20ac", "\u00d6")))
    assert c.cn == "Stra\u00dfe \u20ac" and c.o == "\u00d6"
    for tag, value in ((0x0c, b"\xff\xfe"), (0x0c, b"\xc3"), (0x13, b"\xc3\xa9"),
                       (0x16, b"a\x00"), (0x1e, b"\x00A"), (0x14, b"A"), (0x1c, b"\x00\x00\x00A"),
                       (0x04, b"A")):
        bad(make(subject_name=seq(rdn(b"\x55\x04\x03", tag, value))), "bad string %r" % value)
    # attribute types and algorithm OIDs must be minimal encodings
    bad(make(subject_name=seq(rdn(b"\x55\x04\x83", 0x0c, b"x"))), "OID")
    bad(make(subject_name=seq(rdn(b"\x55\x80\x04\x03", 0x0c, b"x"))), "OID")



def test_extensions():
    bad(make(extensions=tlv(0xA3, seq())), "empty extensions")
    bad(make(extensions=exts(bc(), bc())), "duplicate extension")
    bad(make(extensions=exts(seq(tlv(6, b"\x55\x1d\x13"), b"\x01\x01\x00", tlv(4, seq())))),
        "critical FALSE encoded")
    bad(make(extensions=exts(ext(b"\x55\x1d\x13", seq(b"\x01\x01\x00")))), "cA FALSE encoded")
    bad(make(extensions=exts(ext(b"\x55\x1d\x13", seq(b"\x01\x01\x01")))), "BOOLEAN 01")
    bad(make(extensions=exts(ext(BC, seq(b"\x01\x01\xff\x02\x01\xff")))), "negative pathLen")
    bad(make(extensions=exts(ext(b"\x55\x1d\x0f", b"\x03\x02\x08\x80"))), "keyUsage unused 8")
    bad(make(extensions=exts(ext(KU, b"\x03\x02\x01\x81"))), "keyUsage padding bit set")
    bad(make(extensions=exts(ext(b"\x55\x1d\x0f", b"\x03\x01\x01"))), "keyUsage empty with unused")
    bad(make(extensions=exts(ext(BC, seq() + b"\x00"))), "trailing byte in extension value")
    c = parse(make(extensions=exts(ext(b"\x55\x1d\x20", seq()),
                                   ext(b"\x2b\x06\x01", b"\x05\x00"))))
    assert not c.critical_unknown
    c = parse(make(extensions=exts(ext(b"\x55\x1d\x1e", seq(), True))))  # nameConstraints
    assert c.critical_unknown
    c = parse(make(extensions=exts(ext(b"\x55\x1d\x13", seq()))))  # BC with cA absent
    assert not c.ca


def test_hash_data():
    root_der = make("Root", extensions=exts(bc()))
    root = parse(root_der)
    leaf = parse(make(serial=uint(0x0FFF, 20)))
    h = x509.hash_data(leaf, root)
    assert h["hashAlgorithm"] == "SHA256"
    assert h["issuerNameHash"] == hashlib.sha256(name("Root")).digest().hex()
    assert h["issuerKeyHash"] == hashlib.sha256(key("Root")[1]).digest().hex()
    assert h["serialNumber"] == "FFF"  # the whitepaper's example
    for ser, want in ((0, "0"), (1, "1"), (0x80, "80"), (0x00FF00, "FF00"),
                      ((1 << 159) + 10, "8" + "0" * 38 + "A")):
        assert x509.hash_data(parse(make(serial=uint(ser, 20))), root)["serialNumber"] == want
    want = hashlib.sha256(name("Root")).digest().hex()
    assert x509.hash_data(root, root)["issuerNameHash"] == want
    other = dict(h, issuerNameHash=h["issuerNameHash"].upper(), serialNumber="0fff")
    assert x509.same_hash_data(h, other)
    assert not x509.same_hash_data(h, dict(h, serialNumber="FFE"))
    assert not x509.same_hash_data(h, dict(h, issuerKeyHash="00" + h["issuerKeyHash"][2:]))


def test_pem():
    a = make()
    b = make("Root")
    text = (pem.encode(a, "CERTIFICATE") + "comment\r\n"
            + pem.encode(b, "CERTIFICATE").replace("\n", "\r\n"))
    assert pem.decode(text) == [a, b]
    assert all(len(line) <= 64 for line in pem.encode(a, "CERTIFICATE").split("\n"))
    assert pem.decode(text, "CERTIFICATE REQUEST") == []
    assert pem.decode("") == []
    one = pem.encode(a, "CERTIFICATE")
    body = "".join(one.split("\n")[1:-2])
    for width in (4, 76, 1000):  # other line lengths of whole base64 quanta
        lines = [body[i:i + width] for i in range(0, len(body), width)]
        assert pem.decode("-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----"
                          % "\n".join(lines)) == [a]
    b64 = __import__("binascii").b2a_base64
    padded = b64(b"x")[:-1].decode()  # "eA=="
    for broken in ("-----BEGIN CERTIFICATE-----\n%s\n%s\n-----END CERTIFICATE-----\n"
                   % (body[:63], body[63:]),  # 63-character line
                   "-----BEGIN CERTIFICATE-----\n%s\n%s\n-----END CERTIFICATE-----\n"
                   % (padded, body),  # padding before the last line
                   one.replace("-----END CERTIFICATE-----", ""),
                   one[:40] + "*" + one[41:],
                   one[:40] + "-" + one[41:],
                   one[:40] + "=" + one[41:],
                   one.replace("\n-----END", "A\n-----END"),
                   "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
                   "-----BEGIN CERTIFICATE-----\nAAAA\n" + one):
        try:
            pem.decode(broken)
            raise AssertionError("accepted PEM %r" % broken[:80])
        except ValueError:
            pass


def ca(name_, issuer, path_len=None, ku_bits=32 | 64, is_ca=True, validity=None, signer=None):
    e = [bc(is_ca, path_len)] if is_ca is not None else []
    if ku_bits is not None:
        e.append(ku(ku_bits))
    return parse(make(name_, issuer, signer=signer, extensions=exts(*e), validity=validity))


def test_chain():
    now = T0 + 1000
    root = ca("Root", "Root")
    inter = ca("Inter", "Root")
    leaf = parse(make("Leaf", "Inter", extensions=exts(ku(1))))
    assert chain.verify_chain([leaf, inter], [root], now) is root
    assert chain.verify_chain([leaf, inter, root], [root], now) is root
    assert chain.verify_chain([inter], [root], now) is root
    assert chain.verify_chain([root], [root], now) is root

    def refused(ch, roots, why, t=now, **kw):
        try:
            chain.verify_chain(ch, roots, t, **kw)
        except ChainError as e:
            assert why in str(e), (why, str(e))
            return
        raise AssertionError("chain accepted: " + why)

    refused([leaf, inter], [root], "not yet valid", T0 - 1)
    refused([leaf, inter], [root], "expired", T1 + 1)
    chain.verify_chain([leaf, inter], [root], T1)  # the last second is valid
    refused([inter, leaf], [root], "issuer")       # wrong order
    refused([leaf], [root], "no trusted root")     # intermediate missing
    refused([leaf, inter], [], "no trusted root")
    refused([leaf, inter], [ca("Other", "Other")], "no trusted root")
    refused([leaf, inter, root], [ca("Other", "Other")], "no trusted root")
    refused([], [root], "chain length")
    refused([leaf, inter], [root], "chain length", max_certs=1)
    # a root with the right name and another key, then the right one
    impostor_key = parse(make("Root", "Root", subject_key="Impostor", signer="Impostor",
                              extensions=exts(bc())))
    refused([leaf, inter], [impostor_key], "bad signature")
    assert chain.verify_chain([leaf, inter], [impostor_key, root], now) is root
    # issuer constraints
    refused([leaf, ca("Inter", "Root", is_ca=False)], [root], "not a CA")
    refused([leaf, ca("Inter", "Root", is_ca=None)], [root], "not a CA")
    refused([leaf, ca("Inter", "Root", ku_bits=1)], [root], "keyCertSign")
    chain.verify_chain([leaf, ca("Inter", "Root", ku_bits=None)], [root], now)
    chain.verify_chain([leaf, inter], [ca("Root", "Root", path_len=1)], now)
    refused([leaf, inter], [ca("Root", "Root", path_len=0)], "path length")
    chain.verify_chain([leaf, ca("Inter", "Root", path_len=0)], [root], now)
    deep = ca("Deep", "Inter")
    leaf2 = parse(make("Leaf", "Deep"))
    chain.verify_chain([leaf2, deep, inter], [root], now)
    refused([leaf2, deep, inter], [ca("Root", "Root", path_len=0)], "path length")
    refused([leaf2, deep, ca("Inter", "Root", path_len=0)], [root], "path length")
    chain.verify_chain([leaf2, deep, ca("Inter", "Root", path_len=1)],
                       [ca("Root", "Root", path_len=2)], now)
    refused([leaf2, deep, inter], [root], "chain length", max_certs=2)
    # validity of the issuers and of the root
    old = seq(utc("200101000000Z"), utc("210101000000Z"))
    refused([leaf, ca("Inter", "Root", validity=old)], [root], "expired")
    refused([leaf, inter], [ca("Root", "Root", validity=old)], "expired")
    # a changed byte in the signed part
    der = bytearray(leaf.der)
    i = bytes(der).find(b"Leaf")
    der[i] = ord("l")
    refused([parse(bytes(der)), inter], [root], "bad signature")
    # unknown critical extension
    odd = parse(make("Leaf", "Inter", extensions=exts(ext(b"\x55\x1d\x1e", seq(), True))))
    refused([odd, inter], [root], "critical")
    # algorithms the issuer key cannot check
    refused([parse(make("Leaf", "Inter", alg=ECDSA_SHA384)), inter], [root], "unsupported")
    # a signature over the tbs by the right key, but not DER
    r, s = eckey.sign(key("Inter")[0], hashlib.sha256(b"x").digest(), b"")
    refused([parse(make("Leaf", "Inter", sig=eckey.encode_sig(r, s) + b"\x00")), inter], [root],
            "bad signature")


def test_verify_digest_errors():
    leaf = parse(make())
    try:
        chain.verify_digest(leaf, x509.RSA_SHA256, bytes(32), b"")
        raise AssertionError("RSA algorithm with an EC key")
    except ChainError as e:
        assert "unsupported" in str(e)
    off = bytearray(key("Leaf")[1])
    off[-1] ^= 1
    c = parse(make(spki=seq(EC_P256, tlv(3, b"\x00" + bytes(off)))))
    try:
        chain.verify_digest(c, x509.ECDSA_SHA256, bytes(32), b"\x30\x00")
        raise AssertionError("key off the curve")
    except ChainError as e:
        assert "bad key" in str(e)
