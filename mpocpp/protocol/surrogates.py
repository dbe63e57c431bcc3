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
                _utf8_4(out, cp)
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


def repair(v):
    # A value parsed from a message kept in flash (json.load reads the file,
    # so unpair cannot run first): each string whose escapes json decoded
    # into surrogates, one by one, gets the pairs joined and a lone one
    # U+FFFD, as unpair would have. Lists and dicts are repaired in place,
    # with a list of those left to walk rather than recursion: a message
    # nested a thousand deep must not exhaust the stack.
    if isinstance(v, str):
        return _join(v)
    todo = [v]
    while todo:
        c = todo.pop()
        if isinstance(c, list):
            for i in range(len(c)):
                x = c[i]
                if isinstance(x, str):
                    c[i] = _join(x)
                elif isinstance(x, (list, dict)):
                    todo.append(x)
        elif isinstance(c, dict):
            for k in list(c):
                x = c[k]
                if isinstance(x, str):
                    x = _join(x)
                elif isinstance(x, (list, dict)):
                    todo.append(x)
                r = _join(k)
                if r is not k:
                    del c[k]
                c[r] = x
    return v


def _join(s):
    # A decoded surrogate is 0xED then 0xA0-0xBF, which valid UTF-8 never
    # holds (high: 0xA0-0xAF, low: 0xB0-0xBF).
    b = s.encode()
    i = _next(b, 0)
    if i < 0:
        return s
    out = bytearray()
    start = 0
    while i >= 0:
        out += b[start:i]
        k = 3
        if b[i + 1] < 0xB0 and _next(b, i + 3) == i + 3 and b[i + 4] >= 0xB0:
            cp = 0x10000 + ((b[i + 1] & 0x0F) << 16 | (b[i + 2] & 0x3F) << 10
                            | (b[i + 4] & 0x0F) << 6 | b[i + 5] & 0x3F)
            _utf8_4(out, cp)
            k = 6
        else:
            out += b"\xef\xbf\xbd"
        start = i + k
        i = _next(b, start)
    out += b[start:]
    return str(out, "utf-8")


def _next(b, i):
    # Offset of the next decoded surrogate in b from i, or -1.
    i = b.find(b"\xed", i)
    while i >= 0 and (i + 2 >= len(b) or b[i + 1] < 0xA0):
        i = b.find(b"\xed", i + 1)
    return i


def _utf8_4(out, cp):
    # Append the 4-byte UTF-8 of cp (U+10000 and up) to the bytearray out.
    out.append(0xF0 | cp >> 18)
    out.append(0x80 | (cp >> 12) & 63)
    out.append(0x80 | (cp >> 6) & 63)
    out.append(0x80 | cp & 63)
