# DER (ITU-T X.690, distinguished encoding) reader and the small writer the
# CSR needs. The reader works on a memoryview in place (no copies) and is
# strict: indefinite or non-minimal lengths, lengths past the end, trailing
# bytes, non-canonical INTEGERs and BOOLEANs all raise DerError.
from micropython import const

SEQUENCE = const(0x30)
SET = const(0x31)
INTEGER = const(0x02)
BIT_STRING = const(0x03)
OCTET_STRING = const(0x04)
NULL = const(0x05)
OID = const(0x06)
_BOOLEAN = const(0x01)


class DerError(ValueError):
    pass


class Reader:
    # A cursor over buf[pos:end]. next() reads one TLV: tag, t0 (its first
    # byte), v0..v1 (its value) are kept for the caller, pos moves past it.
    def __init__(self, buf, pos=0, end=-1):
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end < 0 else end
        self.tag = self.t0 = self.v0 = self.v1 = 0

    def more(self):
        return self.pos < self.end

    def peek(self):
        return self.buf[self.pos] if self.pos < self.end else -1

    def next(self, tag=-1):
        b = self.buf
        p = self.pos
        end = self.end
        if end - p < 2:
            raise DerError("truncated")
        t = b[p]
        if tag >= 0 and t != tag:
            raise DerError("tag %02x, expected %02x" % (t, tag))
        if t & 0x1F == 0x1F:
            raise DerError("multi-byte tag")
        n = b[p + 1]
        p += 2
        if n & 0x80:
            k = n & 0x7F
            if k == 0:
                raise DerError("indefinite length")
            if k > 3 or end - p < k:
                raise DerError("length")
            if b[p] == 0:
                raise DerError("non-minimal length")
            n = 0
            for i in range(k):
                n = n << 8 | b[p + i]
            p += k
            if n < 0x80:
                raise DerError("non-minimal length")
        if n > end - p:
            raise DerError("length past end")
        self.tag = t
        self.t0 = self.pos
        self.v0 = p
        self.v1 = self.pos = p + n
        return t

    def value(self):
        return self.buf[self.v0:self.v1]

    def tlv(self):
        # the whole last element, header included
        return self.buf[self.t0:self.v1]

    def enter(self, tag=SEQUENCE):
        self.next(tag)
        return Reader(self.buf, self.v0, self.v1)

    def done(self):
        if self.pos != self.end:
            raise DerError("trailing bytes")

    def _int(self):
        self.next(INTEGER)
        b = self.buf
        p = self.v0
        n = self.v1 - p
        if n == 0:
            raise DerError("empty INTEGER")
        if n > 1 and ((b[p] == 0 and b[p + 1] < 0x80) or (b[p] == 0xFF and b[p + 1] >= 0x80)):
            raise DerError("non-canonical INTEGER")
        return p

    def integer(self):
        # canonical INTEGER, any sign -> its content bytes (two's complement)
        self._int()
        return self.value()

    def uint_bytes(self):
        # canonical non-negative INTEGER -> magnitude without the sign octet
        p = self._int()
        b = self.buf
        if b[p] & 0x80:
            raise DerError("negative INTEGER")
        if b[p] == 0 and self.v1 - p > 1:
            p += 1
        return b[p:self.v1]

    def uint(self):
        return int.from_bytes(self.uint_bytes(), "big")

    def oid(self):
        # OBJECT IDENTIFIER content; each sub-identifier minimal (X.690 8.19.2)
        self.next(OID)
        b = self.buf
        p = self.v0
        e = self.v1
        if p == e or b[e - 1] & 0x80:
            raise DerError("OID")
        for i in range(p, e):
            if b[i] == 0x80 and (i == p or b[i - 1] < 0x80):
                raise DerError("OID")
        return b[p:e]

    def boolean(self):
        self.next(_BOOLEAN)
        if self.v1 - self.v0 != 1 or self.buf[self.v0] not in (0, 0xFF):
            raise DerError("BOOLEAN")
        return self.buf[self.v0] == 0xFF

    def null(self):
        self.next(NULL)
        if self.v1 != self.v0:
            raise DerError("NULL")

    def bits(self):
        # BIT STRING of whole octets (keys, signatures) -> its content
        self.next(BIT_STRING)
        if self.v1 == self.v0 or self.buf[self.v0] != 0:
            raise DerError("BIT STRING")
        return self.buf[self.v0 + 1:self.v1]


# --- writer (short values only: a CSR) ---
def tlv(tag, body):
    n = len(body)
    if n < 0x80:
        head = bytes((tag, n))
    elif n < 0x100:
        head = bytes((tag, 0x81, n))
    else:
        head = bytes((tag, 0x82, n >> 8, n & 0xFF))
    return head + body


def seq(*parts):
    return tlv(SEQUENCE, b"".join(parts))


def uint(x, size):
    # non-negative x < 2**(8*size) as a canonical INTEGER
    b = x.to_bytes(size + 1, "big")
    i = 0
    while i < size and b[i] == 0 and b[i + 1] < 0x80:
        i += 1
    return tlv(INTEGER, b[i:])
