# mpocpp.security.rsa inside MicroPython: RSASSA-PKCS1-v1_5 verification
# rebuilds the whole encoded message, so every malformed padding signed with
# the real key is refused, and so is the e = 3 forgery of Bleichenbacher '06.
# The keys are test keys made once with the `cryptography` package.
# heap: 256k
import hashlib
from mpocpp.security import rsa

N1 = int(
    "B2E501F473E824DBB859E38ADD3C55FE019C52503A6CB2CBEF60983D1E639569"
    "E4D0909DEB36F0CFA1B52B12915474A5498E516718AEB6D77A2A05C44CB04876"
    "32E10FE94A0F7D083B98BD803224200D78F531E36298C8D5AEFD693C59E5BD2B"
    "4D6A848CE8F826BCC1E33D25EDAE660A1BA0A5B1B1C06B607C1CFF9010DD4500"
    "37EFDE5DDE7EACA0D69A06372E3A9F2F1C25B1BB4F36616953A68F4F4D411CA6"
    "CABB2144C38F8FA436F4F4C225B1AB55FE463086785E9CC87DB3F48654C1EB8C"
    "3929D9715369FF465902DBFFEEA9AEB8703D543669E36789816BF3AB8A8C3DA1"
    "82248F6FA21752C037B2C64B346C3D17F9D9E17F19EA3B70C632E89FF52347EB", 16)
D1 = int(
    "3F887B6040C5C2495238824A2FF61CA820144F5B74D463CF6F8D43A3F925EECB"
    "73DAEA715B36E0E12C91F5E11B41FE47314F5CF39B5D794C1F73CB268301DC4A"
    "36199E1801186D143E6E2966DCE7DD864B5DF140CB246DB70DF5ABA92658240D"
    "BBE9C7776FC9A9A041CF9D48DA17A4DF941E429A50018160FBD324A41A892AD6"
    "A6115A502B7EA04366AFA29AC7B6FA54979C8FD16E489B925C1B6F3FB5B79EA8"
    "216C157754C06FE72B3B15DA7D26CDFFEB9C5A17C6842509482C4A1A9273C950"
    "BC2EFD368715933AE054D083D2CF6734A60DFB7FA4BAF48E6F2E75D316480301"
    "507378E80431496A56B74EFAD40B40A44912EBC2ACDF7E2F8B8EF50A04643A29", 16)
N3 = int(
    "AD57C8AC66E68BDD3A336EFA9DB2D49E33686BE6BD8AAC1E45924B6F74335F5F"
    "8C88DABE38FF3327DFBA7C5A0F62AC38AC47D1430BDD83D802F806A656EEBCA4"
    "FB04793A11C21788CA0FDB2B3866B29A01716FFC136B925FF9F4F96499B6DDB7"
    "11A0548871E894525E33F7C1AED2FC2DD8F5BF8C9FDA113A132064EE15C9D685"
    "CF2326A5B1C3167BC564D953A7564E38255CE49BDBB18A4FD4F4BE40E7D7FECF"
    "FD9BD1DA90C291231788035D0F9E487696B4CB24181F7C752C756014D04ACECA"
    "ACF4270E79D9278E0A83AC75D7B3CEB291C0F9D0A8A404B81038A88EB19C9957"
    "BC13604EF58A5F72F339308FA8981D24D067B5D495B6467FAE302A064C040C09", 16)
D3 = int(
    "738FDB1D99EF07E8D1779F51BE773869779AF299D3B1C8142E61879FA2CCEA3F"
    "B305E7297B54CCC53FD1A83C0A41C825C82FE0D75D3E57E55750046EE49F286D"
    "FCADA626B6816505DC0A921CD0447711564B9FFD6247B6EAA6A350EDBBCF3E7A"
    "0BC0385AF69B0D8C3ECD4FD6748CA81E90A3D5086A9160D16215989EB93139AD"
    "7115B1477A28BEA6F8A0213A66D86459407E8239ABB6212F14C1639F5FBCB34D"
    "1EE3C5BBF5CCE84D32CBAB5703D4BB67AE69C56713EC367B99DDB12B9C76C570"
    "63D853E1AC27B32ABC5C373E617CE46D79DD5559C531120A76B5284FF6479E69"
    "42321F076D1DDC540000BFA3D50DE3F17A5DEB7D4A71B4D97DF70BA0BCBBE20B", 16)

K = 256
DI = b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"
H = hashlib.sha256(b"firmware image").digest()


def nb(n):
    return n.to_bytes(K, "big")


def signed(em, n=N1, d=D1):
    # the signature a holder of the private key makes for encoded message em
    assert len(em) == K
    return pow(int.from_bytes(em, "big"), d, n).to_bytes(K, "big")


def em_of(ps=b"\xff" * (K - 54), sep=b"\x00", di=DI, h=H, head=b"\x00\x01", tail=b""):
    return head + ps + sep + di + h + tail


def raises(exc, fn, *a):
    try:
        fn(*a)
    except exc:
        return
    raise AssertionError("no %s" % exc.__name__)


def test_valid():
    for n, d, e in ((N1, D1, 65537), (N3, D3, 3)):
        s = signed(em_of(), n, d)
        assert rsa.verify(nb(n), e, H, s)
        assert rsa.verify(memoryview(nb(n)), e, H, memoryview(s))
        assert not rsa.verify(nb(n), e, hashlib.sha256(b"other").digest(), s)
        assert not rsa.verify(nb(n), e, H[:31], s)
        # a signature of another key
        assert not rsa.verify(nb(N1 if n == N3 else N3), e, H, s)
        # every single bit flipped in the signature
        for i in range(0, K * 8, 97):
            b = bytearray(s)
            b[i >> 3] ^= 0x80 >> (i & 7)
            assert not rsa.verify(nb(n), e, H, bytes(b))


def test_malformed_encodings_signed_with_the_key():
    n = nb(N1)
    bad = [
        em_of(head=b"\x00\x02"),                                     # block type 2
        em_of(head=b"\x01\x01", ps=b"\xff" * (K - 55), tail=b"\x00"),
        em_of(ps=b"\xff" * (K - 55) + b"\xfe"),                      # PS not all FF
        em_of(ps=b"\xff" * 100 + b"\x00" + b"\xff" * (K - 155)),     # 00 inside PS
        em_of(ps=b"\xff" * 8, tail=bytes(K - 62)),                   # garbage after H
        em_of(ps=b"\xff" * 8, tail=b"\x5a" * (K - 62)),
        # DigestInfo without the NULL parameters (RFC 8017 wants them: refused)
        em_of(ps=b"\xff" * (K - 52),
              di=b"\x30\x2f\x30\x0b\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x04\x20"),
        em_of(di=DI[:14] + b"\x02" + DI[15:]),                     # sha384 OID, SHA-256 digest
        em_of(ps=b"\xff" * (K - 38),
              di=b"\x30\x21\x30\x09\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00\x04\x14",
              h=hashlib.sha1(b"firmware image").digest()),         # SHA-1 DigestInfo
        em_of(ps=b"\xff" * (K - 55), di=b"\x30\x81\x31" + DI[2:]),  # long-form length
        em_of(ps=b"\xff" * (K - 55), sep=b"\x00\x00"),               # two separators
    ]
    for i, em in enumerate(bad):
        assert len(em) == K, i
        assert not rsa.verify(n, 65537, H, signed(em)), i


def test_signature_length_and_range():
    n = nb(N1)
    s = signed(em_of())
    assert rsa.verify(n, 65537, H, s)
    assert not rsa.verify(n, 65537, H, b"\x00" + s)      # one octet longer
    assert not rsa.verify(n, 65537, H, s[1:])            # one octet shorter
    assert not rsa.verify(n, 65537, H, b"")
    assert not rsa.verify(n, 65537, H, n)                # s = n
    assert not rsa.verify(n, 65537, H, b"\xff" * K)      # s > n
    # s + n has the same residue but is not the signature
    big = int.from_bytes(s, "big") + N1
    if big < 1 << (8 * K):
        assert not rsa.verify(n, 65537, H, big.to_bytes(K, "big"))
    assert not rsa.verify(n, 65537, H, bytes(K))         # s = 0
    assert not rsa.verify(n, 65537, H, bytes(K - 1) + b"\x01")  # s = 1


def test_key_checks():
    s = signed(em_of())
    raises(ValueError, rsa.verify, nb(N1), 65536, H, s)    # even exponent
    raises(ValueError, rsa.verify, nb(N1), 1, H, s)
    raises(ValueError, rsa.verify, nb(N1), 1 << 256 | 1, H, s)
    raises(ValueError, rsa.verify, nb(N1), 1 << 32 | 1, H, s)
    assert not rsa.verify(nb(N1), (1 << 32) - 1, H, s)  # the largest e taken
    raises(ValueError, rsa.verify, nb(N1)[:128], 65537, H, s[:128])   # 1024 bits
    raises(ValueError, rsa.verify, b"\x00" + nb(N1), 65537, H, s)     # leading zero
    raises(ValueError, rsa.verify, b"", 65537, H, s)
    raises(ValueError, rsa.verify, b"\x7f" + nb(N1)[1:], 65537, H, s)  # 2047 bits
    raises(ValueError, rsa.verify, b"\x01" + bytes(512), 65537, H, bytes(513))  # 4097 bits


def icbrt(x):
    # smallest y with y^3 >= x
    y = 1 << ((len(hex(x)) * 4) // 3 + 4)
    while True:
        z = (2 * y + x // (y * y)) // 3
        if z >= y:
            break
        y = z
    while y ** 3 < x:
        y += 1
    while (y - 1) ** 3 >= x:
        y -= 1
    return y


def test_bleichenbacher_e3_forgery():
    # A verifier that parses the padding and ignores what follows the digest
    # accepts s = ceil(cbrt(00 01 FF 00 DI H || garbage)) for e = 3: no key
    # needed. Ours rebuilds the full block and refuses it.
    prefix = b"\x00\x01\xff\xff\xff\xff\xff\xff\xff\xff\x00" + DI + H
    target = int.from_bytes(prefix + bytes(K - len(prefix)), "big")
    s = icbrt(target)
    forged = (s ** 3).to_bytes(K, "big")
    assert forged[:len(prefix)] == prefix  # a lenient parser would see a valid block
    assert not rsa.verify(nb(N3), 3, H, s.to_bytes(K, "big"))
