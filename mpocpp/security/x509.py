# X.509 certificates (RFC 5280) parsed in place from their DER, and the
# whitepaper's CertificateHashData. Parsing checks structure only; signatures
# and the chain are checked by chain.py.
import hashlib
import binascii
from micropython import const
from .der import Reader, DerError, SEQUENCE, SET, OCTET_STRING

# signature algorithms (Certificate.sig_alg); 0 = not supported here
RSA_SHA256 = const(1)
ECDSA_SHA256 = const(2)
RSA_PSS_SHA256 = const(3)
# key types (Certificate.key_type); 0 = not supported here
KEY_RSA = const(1)
KEY_P256 = const(2)
# keyUsage bits (Certificate.key_usage, -1 when the extension is absent)
KU_DIGITAL_SIGNATURE = const(1)
KU_KEY_CERT_SIGN = const(32)

_OID_RSA_SHA256 = const(b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0b")
_OID_RSA_PSS = const(b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0a")
_OID_MGF1 = const(b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x08")
_OID_SHA256 = const(b"\x60\x86\x48\x01\x65\x03\x04\x02\x01")
_OID_ECDSA_SHA256 = const(b"\x2a\x86\x48\xce\x3d\x04\x03\x02")
_OID_RSA = const(b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01")
_OID_EC = const(b"\x2a\x86\x48\xce\x3d\x02\x01")
_OID_P256 = const(b"\x2a\x86\x48\xce\x3d\x03\x01\x07")
_OID_CN = const(b"\x55\x04\x03")
_OID_O = const(b"\x55\x04\x0a")
_OID_BC = const(b"\x55\x1d\x13")
_OID_KU = const(b"\x55\x1d\x0f")
_TEXT_TAGS = const(b"\x0c\x13\x16")  # UTF8String, PrintableString, IA5String


class Certificate:
    # Fields are memoryviews into the DER given (kept alive by self.der):
    # tbs (signed bytes), serial (INTEGER content), issuer / subject (whole
    # Name TLVs), key_bits (subjectPublicKey BIT STRING value), signature;
    # rsa_n (modulus magnitude, None for other keys) and rsa_e.
    def __init__(self, der):
        mv = memoryview(der)
        self.der = mv
        top = Reader(mv)
        c = top.enter()
        top.done()
        t = c.enter()
        self.tbs = c.tlv()
        self.version = 1
        if t.peek() == 0xA0:
            v = t.enter(0xA0)
            self.version = v.uint() + 1
            v.done()
            if self.version not in (2, 3):  # v1 is DEFAULT: absent in DER
                raise DerError("version")
        self.serial = t.integer()
        if len(self.serial) > 20 + (self.serial[0] == 0):  # RFC 5280: 20 octets
            raise DerError("serial number too long")
        t.next(SEQUENCE)
        inner_alg = t.tlv()
        self.cn = self.o = None
        self.issuer = self._name(t, False)
        v = t.enter()
        self.not_before = _time(v)
        self.not_after = _time(v)
        v.done()
        self.subject = self._name(t, True)
        self._spki(t.enter())
        self.ca = False
        self.path_len = -1  # no limit
        self.key_usage = -1
        self.critical_unknown = False
        for tag in (0x81, 0x82):  # issuer/subjectUniqueID
            if t.peek() == tag:
                if self.version < 2:
                    raise DerError("unique id in v1")
                t.next()
        if t.more():
            if self.version != 3:
                raise DerError("extensions before v3")
            x = t.enter(0xA3)
            self._extensions(x.enter())
            x.done()
        t.done()
        c.next(SEQUENCE)
        if c.tlv() != inner_alg:
            raise DerError("signature algorithms differ")
        self.sig_alg, self.pss_salt = _sig_alg(Reader(mv, c.t0, c.v1))
        self.signature = c.bits()
        c.done()

    def _name(self, r, subject):
        n = r.enter()
        out = r.tlv()
        while n.more():
            rdn = n.enter(SET)
            if not rdn.more():
                raise DerError("empty RDN")
            while rdn.more():
                a = rdn.enter()
                oid = a.oid()
                a.next()
                if oid == _OID_CN or oid == _OID_O:
                    t = _text(a.tag, a.value())
                    if subject:
                        if oid == _OID_CN:
                            self.cn = self.cn or t
                        else:
                            self.o = self.o or t
                a.done()
        return out

    def _spki(self, s):
        a = s.enter()
        oid = a.oid()
        self.key_type = 0
        if oid == _OID_RSA:
            a.null()
            self.key_type = KEY_RSA
        elif oid == _OID_EC:
            if a.oid() == _OID_P256:
                self.key_type = KEY_P256
        else:
            while a.more():
                a.next()
        a.done()
        self.key_bits = k = s.bits()
        s.done()
        self.rsa_n = None
        self.rsa_e = 0
        if self.key_type == KEY_RSA:
            r = Reader(k)
            q = r.enter()
            r.done()
            self.rsa_n = q.uint_bytes()
            self.rsa_e = q.uint()
            q.done()
        elif self.key_type == KEY_P256:
            if not ((len(k) == 65 and k[0] == 4) or (len(k) == 33 and k[0] in (2, 3))):
                raise DerError("EC point")

    def _extensions(self, x):
        if not x.more():
            raise DerError("empty extensions")
        seen = []
        while x.more():
            e = x.enter()
            oid = e.oid()
            for s in seen:
                if s == oid:
                    raise DerError("duplicate extension")
            seen.append(oid)
            crit = False
            if e.peek() == 0x01:
                crit = e.boolean()
                if not crit:  # DEFAULT FALSE: absent in DER
                    raise DerError("critical FALSE")
            v = e.enter(OCTET_STRING)
            e.done()
            if oid == _OID_BC:
                b = v.enter()
                if b.peek() == 0x01:
                    self.ca = b.boolean()
                    if not self.ca:
                        raise DerError("cA FALSE")
                if b.more():
                    self.path_len = b.uint()
                b.done()
            elif oid == _OID_KU:
                v.next(0x03)
                buf = v.buf
                p = v.v0
                n = v.v1 - p
                if (n == 0 or buf[p] > 7 or (n == 1 and buf[p])
                        or buf[v.v1 - 1] & ((1 << buf[p]) - 1)):
                    raise DerError("keyUsage")
                ku = 0
                for i in range(min(8 * (n - 1) - buf[p], 9)):
                    if buf[p + 1 + (i >> 3)] & (0x80 >> (i & 7)):
                        ku |= 1 << i
                self.key_usage = ku
            else:  # not processed: one well-formed element, not looked into
                self.critical_unknown = self.critical_unknown or crit
                v.next()
            v.done()

    def valid_at(self, now):
        return self.not_before <= now <= self.not_after

    def self_issued(self):
        return self.issuer == self.subject


def _text(tag, b):
    # CN, O -> str. RFC 5280 4.1.2.6: CAs use UTF8String or PrintableString;
    # Teletex, Universal and BMP strings are refused, not misread.
    if tag not in _TEXT_TAGS:
        raise DerError("string type")
    if tag != 0x0C:  # PrintableString, IA5String: ASCII
        for c in b:
            if c < 0x20 or c > 0x7E:
                raise DerError("string")
    try:
        return str(b, "utf-8")
    except UnicodeError:
        raise DerError("UTF8String")


def _sig_alg(r):
    # AlgorithmIdentifier of the signature -> (constant, PSS salt length)
    a = r.enter()
    r.done()
    oid = a.oid()
    alg, salt = 0, 0
    if oid == _OID_ECDSA_SHA256:  # no parameters (RFC 5758)
        alg = ECDSA_SHA256
    elif oid == _OID_RSA_SHA256:  # NULL, or absent (RFC 4055)
        if a.more():
            a.null()
        alg = RSA_SHA256
    elif oid == _OID_RSA_PSS:
        alg, salt = _pss(a.enter())
    else:
        while a.more():
            a.next()
    a.done()
    return alg, salt


def _pss(p):
    # RSASSA-PSS-params (RFC 4055): SHA-256, MGF1 with SHA-256, any salt
    ok = False
    salt = 20
    if p.peek() == 0xA0:
        x = p.enter(0xA0)
        ok = _is_sha256(x.enter())
        x.done()
    if p.peek() == 0xA1:
        x = p.enter(0xA1)
        m = x.enter()
        x.done()
        if m.oid() == _OID_MGF1:
            ok = ok and _is_sha256(m.enter())
        else:
            ok = False
            m.pos = m.end
        m.done()
    else:
        ok = False
    if p.peek() == 0xA2:
        x = p.enter(0xA2)
        salt = x.uint()
        x.done()
    p.done()  # trailerField: 1 is the only value and the DEFAULT, so absent
    return (RSA_PSS_SHA256 if ok else 0), salt


def _is_sha256(a):
    ok = a.oid() == _OID_SHA256
    if ok and a.more():
        a.null()
    a.pos = a.end
    return ok


def _digits(b, p):
    h = b[p] - 48
    lo = b[p + 1] - 48
    if not (0 <= h <= 9 and 0 <= lo <= 9):
        raise DerError("time")
    return h * 10 + lo


def _time(r):
    # UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ -> unix seconds
    r.next()
    b = r.buf
    p = r.v0
    n = r.v1 - p
    if r.tag == 0x17 and n == 13:
        y = _digits(b, p)
        y += 1900 if y >= 50 else 2000
        p += 2
    elif r.tag == 0x18 and n == 15:
        y = _digits(b, p) * 100 + _digits(b, p + 2)
        p += 4
    else:
        raise DerError("time")
    if b[p + 10] != 0x5A:  # Z
        raise DerError("time zone")
    m = _digits(b, p)
    d = _digits(b, p + 2)
    hh = _digits(b, p + 4)
    mm = _digits(b, p + 6)
    ss = _digits(b, p + 8)
    if m < 1 or m > 12 or d < 1 or hh > 23 or mm > 59 or ss > 59:
        raise DerError("time")
    if m == 2:
        dim = 29 if y % 4 == 0 and (y % 100 or y % 400 == 0) else 28
    else:
        dim = 30 + ((m + (m >> 3)) & 1)
    if d > dim:
        raise DerError("time")
    if m < 3:
        y -= 1
        m += 12
    days = 365 * y + y // 4 - y // 100 + y // 400 + (153 * (m - 3) + 2) // 5 + d - 719469
    return days * 86400 + hh * 3600 + mm * 60 + ss


def hash_data(cert, issuer):
    # CertificateHashDataType: SHA-256 over the DER of cert's issuer Name and
    # over the issuer's subjectPublicKey BIT STRING value (without the
    # unused-bits octet, as RFC 6960 CertID); serial in upper-case hex
    # without leading zeroes. For a self-signed root, issuer is cert.
    return {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": _hex(hashlib.sha256(cert.issuer).digest()),
        "issuerKeyHash": _hex(hashlib.sha256(issuer.key_bits).digest()),
        "serialNumber": _hex(cert.serial).upper().lstrip("0") or "0",
    }


def same_hash_data(a, b):
    # CertificateHashData equality: CiString fields compare case-insensitively
    for k in ("hashAlgorithm", "issuerNameHash", "issuerKeyHash"):
        if a[k].upper() != b[k].upper():
            return False
    return a["serialNumber"].upper().lstrip("0") == b["serialNumber"].upper().lstrip("0")


def _hex(b):
    return binascii.hexlify(b).decode()
