# OCPP 1.6 payload validation against the generated table (ocpp_schema.py,
# encoding described in tools/gen_schema.py).
#   check(action, is_response, payload) -> None | (error_code, description)
# The walk follows the table, not the payload, so recursion depth is bounded
# by the (shallow) schemas whatever arrives. Unknown fields are ignored
# (decision, although the schemas say additionalProperties false). Paths and
# descriptions are only built on the error path; a valid payload allocates
# nothing except while parsing date-times.
from micropython import const

import clock

_T_STR = const(0)
_T_INT = const(1)
_T_NUM = const(2)
_T_BOOL = const(3)
_T_OBJ = const(4)
_T_MASK = const(7)
_REQ = const(8)
_F_DT = const(16)
_F_URI = const(32)

PROTOCOL = "ProtocolError"
TYPE = "TypeConstraintViolation"
PROPERTY = "PropertyConstraintViolation"
OCCURENCE = "OccurenceConstraintViolation"  # 1.6 spelling
FORMATION = "FormationViolation"
NOT_IMPLEMENTED = "NotImplemented"

_SCHEME = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-."

_tab = None  # action -> (request node, response node), loaded on first use


def _table():
    global _tab
    if _tab is None:
        import ocpp_schema
        _tab = ocpp_schema.ACTIONS
    return _tab


def known(action):
    return isinstance(action, str) and action in _table()


def check(action, is_response, payload):
    nodes = _table().get(action) if isinstance(action, str) else None
    if nodes is None:
        return (NOT_IMPLEMENTED, "unknown action")
    if not isinstance(payload, dict):
        return (FORMATION, "payload: object expected")
    e = _obj(nodes[1 if is_response else 0], payload)
    if e is None:
        return None
    return (e[0], e[1] + ": " + e[2])


# Internal errors are (code, path, message); each level prefixes its part of
# the path while the error travels up.

def _obj(fields, d):
    n = len(fields)
    for i in range(0, n, 3):
        if fields[i + 1] & _REQ and fields[i] not in d:
            return (PROTOCOL, fields[i], "required")
    for i in range(0, n, 3):
        name = fields[i]
        if name in d:
            e = _value(fields[i + 1], fields[i + 2], d[name])
            if e is not None:
                return (e[0], name + e[1], e[2])
    return None


def _value(kind, arg, v):
    t = kind & _T_MASK
    if t == _T_STR:
        if not isinstance(v, str):
            return (TYPE, "", "string expected")
        if arg is not None:
            if type(arg) is int:
                if len(v) > arg:
                    return (PROPERTY, "", "longer than %d" % arg)
            elif v not in arg:
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
        if arg is not None:
            lo, hi = arg
            if lo is not None and v < lo:
                return (PROPERTY, "", "below %s" % lo)
            if hi is not None and v > hi:
                return (PROPERTY, "", "above %s" % hi)
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
    # array: arg = (minItems, maxItems | None, item kind, item arg)
    if not isinstance(v, list):
        return (TYPE, "", "array expected")
    n = len(v)
    if n < arg[0]:
        return (OCCURENCE, "", "at least %d item(s)" % arg[0])
    if arg[1] is not None and n > arg[1]:
        return (OCCURENCE, "", "at most %d item(s)" % arg[1])
    ik = arg[2]
    ia = arg[3]
    for i in range(n):
        e = _value(ik, ia, v[i])
        if e is not None:
            return (e[0], "[%d]%s" % (i, e[1]), e[2])
    return None


def _uri(s):
    # scheme ":" rest, no whitespace or control characters (RFC 3986 shape).
    i = s.find(":")
    if i < 1 or i + 1 >= len(s) or s[0] in "0123456789+-.":
        return False
    for k in range(i):
        if s[k] not in _SCHEME:
            return False
    for c in s:
        if c <= " " or c == "\x7f":
            return False
    return True
