# mpocpp.security.der: the reader's strictness (X.690 DER rules) and the writer.
# heap: 256k
from mpocpp.security import der
from mpocpp.security.der import Reader, DerError


def bad(b, what, tag=-1):
    try:
        r = Reader(memoryview(b))
        r.next(tag)
        r.done()
    except DerError:
        return
    raise AssertionError("accepted %s: %r" % (what, b))


def one(b, tag=-1):
    r = Reader(memoryview(b))
    r.next(tag)
    r.done()
    return r


def test_lengths():
    r = one(b"\x04\x00")
    assert (r.tag, r.v0, r.v1) == (4, 2, 2)
    r = one(b"\x04\x7f" + bytes(127))
    assert r.v1 - r.v0 == 127
    r = one(b"\x04\x81\x80" + bytes(128))
    assert (r.v0, r.v1) == (3, 131)
    r = one(b"\x04\x82\x01\x00" + bytes(256))
    assert r.v1 - r.v0 == 256
    r = one(b"\x04\x83\x01\x00\x00" + bytes(65536))
    assert r.v1 - r.v0 == 65536
    bad(b"\x30\x80\x00\x00", "indefinite length")
    bad(b"\x04\x81\x05" + bytes(5), "long form for a short length")
    bad(b"\x04\x81\x7f" + bytes(127), "long form for 127")
    bad(b"\x04\x82\x00\x80" + bytes(128), "leading zero length octet")
    bad(b"\x04\x84\x00\x00\x00\x01\x00", "4-octet length")
    bad(b"\x04\x85\x00\x00\x00\x00\x01\x00", "5-octet length")
    bad(b"\x04\x03\x00\x00", "length past the end")
    bad(b"\x04\x82\x01", "truncated length octets")
    bad(b"\x04\x81", "missing length octet")
    bad(b"\x04", "header only")
    bad(b"", "empty")
    bad(b"\x04\x01\x00\x00", "trailing byte")
    bad(b"\x1f\x81\x01\x00", "high tag number form")
    bad(b"\x04\x00", "wrong tag", der.SEQUENCE)


def test_nested_bounds():
    # an inner length that runs past its parent (but not past the buffer)
    b = b"\x30\x03\x04\x03\x00\x00\x00"
    r = Reader(memoryview(b))
    s = r.enter()
    try:
        s.next()
        raise AssertionError("inner element escaped its SEQUENCE")
    except DerError:
        pass
    # trailing bytes inside a SEQUENCE
    r = Reader(memoryview(b"\x30\x04\x05\x00\x05\x00"))
    s = r.enter()
    s.null()
    try:
        s.done()
        raise AssertionError("trailing element not noticed")
    except DerError:
        pass


def test_integers():
    def rd(b, fn="uint"):
        r = Reader(memoryview(b))
        v = getattr(r, fn)()
        r.done()
        return v
    assert rd(b"\x02\x01\x00") == 0
    assert rd(b"\x02\x01\x7f") == 127
    assert rd(b"\x02\x02\x00\x80") == 128
    assert rd(b"\x02\x03\x01\x00\x00") == 65536
    assert bytes(rd(b"\x02\x02\x00\x80", "uint_bytes")) == b"\x80"
    assert bytes(rd(b"\x02\x01\x00", "uint_bytes")) == b"\x00"
    assert bytes(rd(b"\x02\x01\xff", "integer")) == b"\xff"  # -1, any sign
    for b, what in ((b"\x02\x00", "empty"), (b"\x02\x02\x00\x7f", "leading 00"),
                    (b"\x02\x03\x00\x00\x80", "two leading 00"),
                    (b"\x02\x02\xff\x80", "leading ff"), (b"\x02\x01\x80", "negative"),
                    (b"\x02\x02\xff\x00", "negative")):
        try:
            rd(b)
            raise AssertionError("accepted INTEGER " + what)
        except DerError:
            pass
    for b in (b"\x02\x02\x00\x7f", b"\x02\x02\xff\x80", b"\x02\x00"):
        try:
            rd(b, "integer")
            raise AssertionError("accepted non-canonical INTEGER")
        except DerError:
            pass


def test_boolean_null_bits():
    def rd(b, fn):
        r = Reader(memoryview(b))
        v = getattr(r, fn)()
        r.done()
        return v
    assert rd(b"\x01\x01\xff", "boolean") is True
    assert rd(b"\x01\x01\x00", "boolean") is False
    assert rd(b"\x05\x00", "null") is None
    assert bytes(rd(b"\x03\x03\x00\xab\xcd", "bits")) == b"\xab\xcd"
    assert bytes(rd(b"\x03\x01\x00", "bits")) == b""
    for b, fn in ((b"\x01\x01\x01", "boolean"), (b"\x01\x02\xff\xff", "boolean"),
                  (b"\x01\x00", "boolean"), (b"\x05\x01\x00", "null"),
                  (b"\x03\x02\x01\xfe", "bits"), (b"\x03\x00", "bits"),
                  (b"\x23\x03\x03\x01\x00", "bits")):  # constructed BIT STRING
        try:
            rd(b, fn)
            raise AssertionError("accepted %s %r" % (fn, b))
        except DerError:
            pass


def test_oid():
    def rd(b):
        r = Reader(memoryview(b))
        v = r.oid()
        r.done()
        return bytes(v)
    assert rd(b"\x06\x03\x55\x04\x03") == b"\x55\x04\x03"
    assert rd(b"\x06\x03\x2a\x86\x00") == b"\x2a\x86\x00"  # 768: a 00 after a continuation
    assert rd(b"\x06\x01\x00") == b"\x00"
    for b in (b"\x06\x00", b"\x06\x02\x2a\x86", b"\x06\x02\x80\x01", b"\x06\x03\x2a\x80\x01",
              b"\x06\x01\x80", b"\x04\x01\x2a"):
        try:
            rd(b)
            raise AssertionError("accepted OID %r" % b)
        except DerError:
            pass


def test_no_copies():
    # values are views into the caller's buffer
    buf = bytearray(b"\x30\x06\x04\x04abcd")
    r = Reader(memoryview(buf))
    s = r.enter()
    s.next(der.OCTET_STRING)
    v = s.value()
    t = r.tlv()
    buf[5] = ord("X")
    assert bytes(v) == b"aXcd" and bytes(t) == b"\x30\x06\x04\x04aXcd"


def test_writer_round_trip():
    for n in (0, 1, 127, 128, 255, 256, 1000, 65535):
        body = bytes(i & 0xFF for i in range(n))
        r = one(der.tlv(0x04, body), 0x04)
        assert bytes(r.value()) == body
    for x in (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, (1 << 255) + 3, (1 << 256) - 1):
        b = der.uint(x, 32)
        r = Reader(memoryview(b))
        assert r.uint() == x
        r.done()
    assert der.uint(0x80, 32) == b"\x02\x02\x00\x80"
    assert der.uint(0, 32) == b"\x02\x01\x00"
    assert der.seq(der.uint(1, 1), b"\x05\x00") == b"\x30\x05\x02\x01\x01\x05\x00"
