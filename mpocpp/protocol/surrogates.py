# The surrogate escapes of an OCPP-J text (\uD800-\uDFFF), decoded before
# it is parsed; rare in real traffic, so rpc.py loads this for the message
# that has one and releases it after.


def unpair(text):
    # MicroPython's json decoder makes each \uD800-\uDFFF escape a lone
    # surrogate (invalid UTF-8: echoed in an answer, the central system
    # closes with 1007). Before parsing, a pair becomes the character it
    # encodes and a lone one U+FFFD. Only escapes are looked at; a message
    # without one is returned as it is. The result grows in one bytearray:
    # a list of pieces kept alive among the loop's garbage cut the heap into
    # small holes, and chr() would intern each character for good.
    out = None
    start = 0
    n = len(text)
    i = text.find("\\u")
    while i >= 0:
        b = i
        while b > 0 and text[b - 1:b] == "\\":  # (a slice: str[i] interns)
            b -= 1
        hi = _hex4(text, i + 2) if not (i - b) & 1 and i + 6 <= n else 0
        if 0xD800 <= hi <= 0xDFFF:
            cp = 0xFFFD
            k = 6
            if hi < 0xDC00 and text.startswith("\\u", i + 6) and i + 12 <= n:
                lo = _hex4(text, i + 8)
                if 0xDC00 <= lo <= 0xDFFF:
                    cp = 0x10000 + ((hi - 0xD800) << 10) + lo - 0xDC00
                    k = 12
            if out is None:
                out = bytearray()
            out += text[start:i].encode()
            if cp > 0xFFFF:
                out += bytes((0xF0 | cp >> 18, 0x80 | (cp >> 12) & 63,
                              0x80 | (cp >> 6) & 63, 0x80 | cp & 63))
            else:
                out += b"\xef\xbf\xbd"
            start = i + k
            i = text.find("\\u", start)
        else:
            i = text.find("\\u", i + 2)
    if out is None:
        return text
    out += text[start:].encode()
    return str(out, "utf-8")


def _hex4(s, p):
    # The 4 hex digits at p as a number, or -1.
    v = 0
    for k in range(p, p + 4):
        c = ord(s[k:k + 1])  # a slice: str[k] would intern the character
        if 48 <= c <= 57:
            c -= 48
        elif 97 <= c | 32 <= 102:
            c = (c | 32) - 87
        else:
            return -1
        v = v << 4 | c
    return v
