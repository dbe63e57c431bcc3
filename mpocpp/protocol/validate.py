# OCPP 1.6 payload validation against the generated tables (schema.py, the
# index, and schema.bin, one blob per message; compact encoding described in
# tools/gen_schema.py, walked in place).
#   check(action, is_response, payload) -> None | (error_code, description)
# The walk follows the table, not the payload, so recursion depth is bounded
# by the (shallow) schemas whatever arrives. Unknown fields are ignored
# (decision, although the schemas say additionalProperties false). Paths and
# descriptions are only built on the error path. The message's blob is read
# from flash into one buffer when the action changes; a valid payload of the
# action last checked allocates nothing except while parsing date-times.
from micropython import const

from mpocpp.util import modules

_T_STR = const(0)
_T_INT = const(1)
_T_NUM = const(2)
_T_BOOL = const(3)
_T_OBJ = const(4)
_T_MASK = const(7)
_REQ = const(8)
_F_DT = const(16)
_F_URI = const(32)
_F_ARG = const(64)  # string: maxLength in arg; integer/number: range node
_F_ENUM = const(128)  # string: enum node at arg
_NO_MAX = const(0xFFFF)

# The errors are the CALLERROR codes of OCPP-J 1.6 as published
# ("OccurenceConstraintViolation"), written out: a named constant costs a qstr.

# The index, loaded on first use (action -> blob offsets in schema.bin), the
# buffer holding the blob of the last message checked, and its offset.
_tab = None
_buf = b""
_loaded = -1


def _table():
    global _tab, _buf
    if _tab is None:
        from mpocpp.protocol import schema
        _buf = bytearray(schema.LARGEST)
        _tab = schema.ACTIONS
        modules.release("mpocpp.protocol.schema")
    return _tab


def _path():
    # schema.bin beside this module (in /lib, a firmware slot or ROMFS); a
    # frozen image has no file beside it: tools/deploy puts one in /lib.
    d = __file__[:__file__.rfind("/") + 1]
    if d.startswith(".frozen"):
        return "/lib/mpocpp/protocol/schema.bin"
    return d + "schema.bin"


def _load(off):
    # The blob at off into _buf, unless it is there already. -> False when
    # the file cannot be read (a broken install).
    global _loaded
    if off == _loaded:
        return True
    _loaded = -1
    try:
        with open(_path(), "rb") as f:
            f.seek(off)
            n = f.readinto(_buf)
    except OSError:
        return False
    if n < 5 or _buf[0] | _buf[1] << 8 > n:
        return False
    _loaded = off
    return True


def known(action):
    return isinstance(action, str) and action in _table()


def check(action, is_response, payload):
    x = _table().get(action) if isinstance(action, str) else None
    if x is None:
        return ("NotImplemented", "unknown action")
    if not isinstance(payload, dict):
        return ("FormationViolation", "payload: object expected")
    if not _load(x >> 16 if is_response else x & 0xFFFF):
        return ("InternalError", "payload schema unreadable")
    e = _obj(_buf[2] | _buf[3] << 8, payload)
    if e is None:
        return None
    return (e[0], e[1] + ": " + e[2])


# Internal errors are (code, path, message); each level prefixes its part of
# the path while the error travels up.

def _obj(o, d):
    # Object node at o: u8 count, then (u8 name, u8 kind, u16 arg) per field,
    # required fields first.
    s = _buf
    end = o + 1 + 4 * s[o]
    for p in range(o + 1, end, 4):
        if not s[p + 1] & _REQ:
            break
        if _key(d, s[p]) is None:
            return ("ProtocolError", _name(s[p]), "required")
    for p in range(o + 1, end, 4):
        k = _key(d, s[p])
        if k is not None:
            e = _value(s[p + 1], s[p + 2] | s[p + 3] << 8, d[k])
            if e is not None:
                return (e[0], k + e[1], e[2])
    return None


def _key(d, i):
    # The key of d that is field name i, or None: compared in place in the
    # blob's names (a dict's keys are iterated without an allocation).
    s = _buf
    p = s[5 + 2 * i] | s[6 + 2 * i] << 8
    n = s.find(b" ", p) - p
    for k in d:
        if len(k) == n and s.startswith(k, p):
            return k
    return None


def _name(i):
    # Field name i as a string (the error path).
    s = _buf
    p = s[5 + 2 * i] | s[6 + 2 * i] << 8
    return s[p:s.find(b" ", p)].decode()


def _value(kind, arg, v):
    t = kind & _T_MASK
    if t == _T_STR:
        if not isinstance(v, str):
            return ("TypeConstraintViolation", "", "string expected")
        if kind & _F_ARG:
            if len(v) > arg:
                return ("PropertyConstraintViolation", "", "longer than %d" % arg)
        elif kind & _F_ENUM and not _enum(arg, v):
            return ("PropertyConstraintViolation", "", "value not allowed")
        if kind & _F_DT:
            from mpocpp.util import timeparse
            try:
                timeparse.parse(v)
            except ValueError:
                return ("PropertyConstraintViolation", "", "bad date-time")
        elif kind & _F_URI and not _uri(v):
            return ("PropertyConstraintViolation", "", "bad uri")
        return None
    if t == _T_INT or t == _T_NUM:
        tv = type(v)  # bool is not a number in JSON
        if tv is not int and (t == _T_INT or tv is not float):
            return ("TypeConstraintViolation", "",
                    "integer expected" if t == _T_INT else "number expected")
        if kind & _F_ARG:
            # range node: u8 flags (1 minimum, 2 maximum), i32 minimum, i32 maximum
            f = _buf[arg]
            if f & 1:
                lo = _i32(arg + 1)
                if v < lo:
                    return ("PropertyConstraintViolation", "", "below %d" % lo)
            if f & 2:
                hi = _i32(arg + 5)
                if v > hi:
                    return ("PropertyConstraintViolation", "", "above %d" % hi)
        return None
    if t == _T_BOOL:
        if type(v) is not bool:
            return ("TypeConstraintViolation", "", "boolean expected")
        return None
    if t == _T_OBJ:
        if not isinstance(v, dict):
            return ("TypeConstraintViolation", "", "object expected")
        e = _obj(arg, v)
        if e is not None:
            return (e[0], "." + e[1], e[2])
        return None
    # array node: u8 minItems, u16 maxItems, u8 item kind, u16 item arg
    if not isinstance(v, list):
        return ("TypeConstraintViolation", "", "array expected")
    s = _buf
    n = len(v)
    lo = s[arg]
    if n < lo:
        return ("OccurenceConstraintViolation", "", "at least %d item(s)" % lo)
    hi = s[arg + 1] | s[arg + 2] << 8
    if hi != _NO_MAX and n > hi:
        return ("OccurenceConstraintViolation", "", "at most %d item(s)" % hi)
    ik = s[arg + 3]
    ia = s[arg + 4] | s[arg + 5] << 8
    for i in range(n):
        e = _value(ik, ia, v[i])
        if e is not None:
            return (e[0], "[%d]%s" % (i, e[1]), e[2])
    return None


def _enum(o, v):
    # Enum node: u8 count, then per value u8 length and its ASCII bytes.
    # Compared in place (no slices); a non-ASCII v never matches.
    s = _buf
    n = len(v)
    p = o + 1
    for _ in range(s[o]):
        k = s[p]
        if k == n and s.startswith(v, p + 1):
            return True
        p += k + 1
    return False


def _i32(p):
    # No 1.6 core schema has bounds; this generic path may allocate.
    s = _buf
    x = s[p] | s[p + 1] << 8 | s[p + 2] << 16 | s[p + 3] << 24
    return x - 0x100000000 if x & 0x80000000 else x


def _uri(s):
    # scheme ":" rest, no whitespace or control characters (RFC 3986 shape).
    # Read as bytes: a str iterated or indexed interns each character it
    # yields, for good (a CSMS's random characters would fill the heap).
    b = s.encode()
    i = b.find(b":")
    if i < 1 or i + 1 >= len(b) or not 97 <= b[0] | 32 <= 122:
        return False
    for k in range(1, i):
        c = b[k]
        if not (97 <= c | 32 <= 122 or 48 <= c <= 57 or c == 43 or c == 45 or c == 46):
            return False
    for c in b:
        if c <= 32 or c == 127:
            return False
    return True
