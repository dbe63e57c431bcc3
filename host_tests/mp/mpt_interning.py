# heap: 512k
# MicroPython interns every character a str yields when it is iterated or
# indexed (str[i], for c in s), and an interned name stays in the heap for
# good: a CSMS sending strings of random characters grew the heap by 30 KiB
# at a time and fragmented it (`make soak`, docs/reliability.md). The
# checks that read CSMS strings character by character must not intern.
import gc

from mpocpp.model import keys
from mpocpp.protocol import surrogates, validate
from mpocpp.util import timeparse


def _strange(base, n=600):
    # n distinct CJK characters, decoded from UTF-8 (chr() would intern them)
    b = bytearray()
    for i in range(n):
        cp = base + i
        b += bytes((0xE0 | cp >> 12, 0x80 | (cp >> 6) & 0x3F, 0x80 | cp & 0x3F))
    return bytes(b).decode()


def _grows(fn, arg):
    # Heap kept by fn(arg) (600 distinct characters interned: about 8 KiB
    # on 32-bit, 12 on 64-bit); an ASCII call first for fn's own first-use
    # allocations.
    fn("2026x")
    gc.collect()
    a = gc.mem_alloc()
    fn(arg)
    gc.collect()
    return gc.mem_alloc() - a


def test_uri_check_does_not_intern():
    s = "ftp://h/" + _strange(0x4E00)
    assert validate.check("GetDiagnostics", False, {"location": s}) is None
    bad = "ftp://h/ " + _strange(0x5000)
    assert validate.check("GetDiagnostics", False, {"location": bad}) is not None
    assert _grows(lambda x: validate.check("GetDiagnostics", False, {"location": x}),
                  "ftp://h/" + _strange(0x5400)) < 2048


def test_uri_shape_kept():
    for ok in ("ftp://a/b", "http://x:1/p?q=1", "a+b-c.d:x", "HTTPS://H/"):
        assert validate._uri(ok), ok
    for bad in ("", ":x", "1ab:x", "ab:", "a b:x", "ftp://a b", "ftp://a\x7f", "é:x", "a_b:x"):
        assert not validate._uri(bad), bad


def test_timestamp_parse_does_not_intern():
    def parse(x):
        try:
            timeparse.parse("2026-12-04T10:00:00." + x)
        except ValueError:
            pass
        try:
            timeparse.parse("2026-12-04T10:00:00" + x)
        except ValueError:
            pass
    # one character read per call: a call per character
    s = _strange(0x5800)
    assert _grows(lambda x: [parse(x[j:]) for j in range(len(x))], s) < 2048
    assert timeparse.parse("2026-12-04T10:00:00.250Z") is not None
    assert timeparse.parse("2026-12-04T10:00:00+01:00") is not None


def test_integer_and_key_checks_do_not_intern():
    def intval(x):
        try:
            keys._int(x)
        except ValueError:
            pass
    assert _grows(lambda x: [intval(x[j:]) for j in range(len(x))], _strange(0x5C00)) < 2048

    def authkey(x):
        try:
            keys._check_authkey(x, None)
        except ValueError:
            pass
    assert _grows(lambda x: [authkey(x[j:j + 20]) for j in range(len(x))],
                  _strange(0x6400)) < 2048
    assert keys._int("-42") == -42 and keys._int("7") == 7
    for bad in ("", "-", "+1", " 1", "1_0", "12345678901", "4\u0662"):
        try:
            keys._int(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_surrogate_decoding_does_not_intern():
    # Each strange character right before or right after a "\\u".
    s = _strange(0x6000)
    text = "".join("\\u" + s[j:j + 4] for j in range(0, len(s), 4)) + "\\ud800"
    assert _grows(surrogates.unpair, text) < 2048
    assert surrogates.unpair('"\\ud83d\\ude00"') == '"\U0001f600"'


def test_decoded_surrogate_pairs_are_not_interned():
    # 600 distinct pairs, each decoded to a character outside the BMP
    text = "".join("\\ud8%02x\\udc%02x" % (0x40 + i // 200, i % 200) for i in range(600))
    assert _grows(surrogates.unpair, text) < 2048



def test_charge_box_id_quoting_keeps_nothing():
    # (chr() of each byte interned at most 256 one-character names, once:
    # small, but the quoting now reads bytes like the checks above)
    from mpocpp.protocol.connect import quote
    odd = "".join("%c" % c for c in range(33, 127)) + _strange(0x7000, 40)
    assert _grows(lambda x: len(quote(x)) and None, odd) < 256
    assert quote("a b/\u00e9~-_.Z@") == "a%20b%2F%C3%A9~-_.Z%40"
