# OCPP 1.6 payload validation against the generated table (ocpp_schema.py,
# compact encoding described in tools/gen_schema.py, walked in place).
#   check(action, is_response, payload) -> None | (error_code, description)
# The walk follows the table, not the payload, so recursion depth is bounded
# by the (shallow) schemas whatever arrives. Unknown fields are ignored
# (decision, although the schemas say additionalProperties false). Paths and
# descriptions are only built on the error path; a valid payload allocates
# nothing except while parsing date-times.
from micropython import const

from mpocpp.util import clock

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

PROTOCOL = "ProtocolError"
TYPE = "TypeConstraintViolation"
PROPERTY = "PropertyConstraintViolation"
OCCURENCE = "OccurenceConstraintViolation"  # 1.6 spelling
FORMATION = "FormationViolation"
NOT_IMPLEMENTED = "NotImplemented"

# The table, loaded on first use: action -> node offsets, the node blob, and
# the field names of ocpp_schema (one string and the offset of each name).
_tab = None
_nodes = b""
_names = ""
_at = b""


def _table():
    global _tab, _nodes, _names, _at
    if _tab is None:
        from mpocpp.protocol import schema as ocpp_schema
        _nodes = ocpp_schema.NODES
        _names = ocpp_schema.NAMES
        _at = ocpp_schema.NAME_AT
        _tab = ocpp_schema.ACTIONS
    return _tab


def known(action):
    return isinstance(action, str) and action in _table()


def check(action, is_response, payload):
    x = _table().get(action) if isinstance(action, str) else None
    if x is None:
        return (NOT_IMPLEMENTED, "unknown action")
    if not isinstance(payload, dict):
        return (FORMATION, "payload: object expected")
    e = _obj(x >> 16 if is_response else x & 0xFFFF, payload)
    if e is None:
        return None
    return (e[0], e[1] + ": " + e[2])


# Internal errors are (code, path, message); each level prefixes its part of
# the path while the error travels up.

def _obj(o, d):
    # Object node at o: u8 count, then (u8 name, u8 kind, u16 arg) per field,
    # required fields first.
    s = _nodes
    end = o + 1 + 4 * s[o]
    for p in range(o + 1, end, 4):
        if not s[p + 1] & _REQ:
            break
        if _key(d, s[p]) is None:
            return (PROTOCOL, _name(s[p]), "required")
    for p in range(o + 1, end, 4):
        k = _key(d, s[p])
        if k is not None:
            e = _value(s[p + 1], s[p + 2] | s[p + 3] << 8, d[k])
            if e is not None:
                return (e[0], k + e[1], e[2])
    return None


def _key(d, i):
    # The key of d that is field name i, or None: compared in place in the
    # names string (a dict's keys are iterated without an allocation).
    p = _at[2 * i] | _at[2 * i + 1] << 8
    n = _names.find(" ", p) - p
    for k in d:
        if len(k) == n and _names.startswith(k, p):
            return k
    return None


def _name(i):
    # Field name i as a string (the error path).
    p = _at[2 * i] | _at[2 * i + 1] << 8
    return _names[p:_names.find(" ", p)]


def _value(kind, arg, v):
    t = kind & _T_MASK
    if t == _T_STR:
        if not isinstance(v, str):
            return (TYPE, "", "string expected")
        if kind & _F_ARG:
            if len(v) > arg:
                return (PROPERTY, "", "longer than %d" % arg)
        elif kind & _F_ENUM and not _enum(arg, v):
            return (PROPERTY, "", "value not allowed")
        if kind & _F_DT:
            try:
                clock.parse(v)
            except ValueError:
                return (PROPERTY, "", "bad date-time")
        elif kind & _F_URI and not _uri(v):
            return (PROPERTY, "", "bad uri")
        return None
    if t == _T_INT or t == _T_NUM:
        tv = type(v)  # bool is not a number in JSON
        if tv is not int and (t == _T_INT or tv is not float):
            return (TYPE, "", "integer expected" if t == _T_INT else "number expected")
        if kind & _F_ARG:
            # range node: u8 flags (1 minimum, 2 maximum), i32 minimum, i32 maximum
            f = _nodes[arg]
            if f & 1:
                lo = _i32(arg + 1)
                if v < lo:
                    return (PROPERTY, "", "below %d" % lo)
            if f & 2:
                hi = _i32(arg + 5)
                if v > hi:
                    return (PROPERTY, "", "above %d" % hi)
        return None
    if t == _T_BOOL:
        if type(v) is not bool:
            return (TYPE, "", "boolean expected")
        return None
    if t == _T_OBJ:
        if not isinstance(v, dict):
            return (TYPE, "", "object expected")
        e = _obj(arg, v)
        if e is not None:
            return (e[0], "." + e[1], e[2])
        return None
    # array node: u8 minItems, u16 maxItems, u8 item kind, u16 item arg
    if not isinstance(v, list):
        return (TYPE, "", "array expected")
    s = _nodes
    n = len(v)
    lo = s[arg]
    if n < lo:
        return (OCCURENCE, "", "at least %d item(s)" % lo)
    hi = s[arg + 1] | s[arg + 2] << 8
    if hi != _NO_MAX and n > hi:
        return (OCCURENCE, "", "at most %d item(s)" % hi)
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
    s = _nodes
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
    s = _nodes
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
