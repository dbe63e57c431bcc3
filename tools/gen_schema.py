#!/usr/bin/env python3
"""Generate mpocpp/protocol/schema.py and schema.bin from the OCPP 1.6 JSON
schemas of the `ocpp` PyPI package (CPython tool; `make schema`).

    python tools/gen_schema.py            write mpocpp/protocol/schema.{py,bin}
    python tools/gen_schema.py --check    exit 1 if a committed file is stale
    python tools/gen_schema.py --out F    write F (a .py) and its .bin elsewhere

Table layout returned by build() (the abstract form, used by the tests):
  object node  flat tuple (name, kind, arg, name, kind, arg, ...),
               required fields first, each group sorted by name
  kind         type code | 8 if required | 16 date-time | 32 uri
               type codes: 0 string, 1 integer, 2 number, 3 boolean,
               4 object, 5 array
  arg          string:  None | maxLength (int) | enum (sorted tuple of str)
               integer/number: None | (minimum, maximum), None = unbounded
               boolean: None
               object:  object node
               array:   (minItems, maxItems | None, item kind, item arg)

Emitted encoding (read by mpocpp/protocol/validate.py; keep both in step).
Little RAM, walked in place. schema.bin holds one blob per message (each
action's request, then its response); schema.py the index:
  ACTIONS  dict action -> request blob offset | response blob offset << 16
  LARGEST  the largest blob (validate.py reads one into a buffer this size)
  SIZE     schema.bin's size
A blob (u16 and i32 little-endian; every offset from the blob's start):
  u16 blob length, u16 offset of the message's object node, u8 name count,
  u16 offset of each field name, the names (sorted, each followed by a
  space; a field refers to its name by index), then the nodes:
    object node  u8 field count, then 4 bytes per field in build() order:
                 u8 name index, u8 kind, u16 arg
    kind         type code | 8 required | 16 date-time | 32 uri
                 | 64 ARG | 128 ENUM
    field arg    string:  ARG: maxLength; ENUM: offset of an enum node
                 integer/number: ARG: offset of a range node
                 object:  offset of its object node
                 array:   offset of an array node
                 (0 when unused)
    enum node    u8 value count, then per value: u8 length, ASCII bytes
    range node   u8 flags (1 minimum, 2 maximum), i32 minimum, i32 maximum
    array node   u8 minItems, u16 maxItems (0xffff: unbounded),
                 u8 item kind, u16 item arg
"""
import argparse
import difflib
import importlib.metadata
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "mpocpp", "protocol", "schema.py")

ACTIONS = (
    "Authorize", "BootNotification", "CancelReservation", "ChangeAvailability",
    "ChangeConfiguration", "ClearCache", "ClearChargingProfile", "DataTransfer",
    "DiagnosticsStatusNotification", "FirmwareStatusNotification",
    "GetCompositeSchedule", "GetConfiguration", "GetDiagnostics",
    "GetLocalListVersion", "Heartbeat", "MeterValues", "RemoteStartTransaction",
    "RemoteStopTransaction", "ReserveNow", "Reset", "SendLocalList",
    "SetChargingProfile", "StartTransaction", "StatusNotification",
    "StopTransaction", "TriggerMessage", "UnlockConnector", "UpdateFirmware",
    # The security whitepaper (edition 3) extension's messages.
    "CertificateSigned", "DeleteCertificate", "ExtendedTriggerMessage",
    "GetInstalledCertificateIds", "GetLog", "InstallCertificate",
    "LogStatusNotification", "SecurityEventNotification", "SignCertificate",
    "SignedFirmwareStatusNotification", "SignedUpdateFirmware",
)

T_STR, T_INT, T_NUM, T_BOOL, T_OBJ, T_ARR = range(6)
REQ, F_DT, F_URI = 8, 16, 32
_TYPES = {"string": T_STR, "integer": T_INT, "number": T_NUM,
          "boolean": T_BOOL, "object": T_OBJ, "array": T_ARR}
_FORMATS = {"date-time": F_DT, "uri": F_URI}
# Keywords the firmware does not check (multipleOf: CSMSs send limits such as
# 7.36 A; additionalProperties: unknown fields are ignored by decision).
_IGNORED = {"$schema", "$id", "id", "title", "description", "javaType",
            "additionalProperties", "additionalItems", "multipleOf",
            "definitions"}
_KNOWN = {"type", "properties", "required", "enum", "maxLength", "format",
          "minimum", "maximum", "items", "minItems", "maxItems", "$ref"}


class SchemaError(Exception):
    pass


def schema_dir():
    import ocpp
    return os.path.join(os.path.dirname(ocpp.__file__), "v16", "schemas")


def load(name):
    with open(os.path.join(schema_dir(), name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def _resolve(s, root):
    # Local "#/definitions/..." references only; draft 4 ignores siblings.
    for _ in range(8):
        ref = s.get("$ref")
        if ref is None:
            return s
        if not ref.startswith("#/"):
            raise SchemaError("non-local $ref " + ref)
        s = root
        for part in ref[2:].split("/"):
            s = s[part]
    raise SchemaError("$ref chain too long")


# Enums checked by the handler instead of the validator (decision in the
# checklist): TriggerMessage for a message we do not know answers
# {"status": "NotImplemented"}, not a PropertyConstraintViolation.
OPEN_ENUMS = {"TriggerMessage.requestedMessage": 50}


def _node(s, root, path):
    """-> (kind without REQ, arg) in the table encoding."""
    s = _resolve(s, root)
    if path in OPEN_ENUMS and s.get("type") == "string":
        return T_STR, OPEN_ENUMS[path]
    for k in s:
        if k not in _KNOWN and k not in _IGNORED:
            raise SchemaError("%s: unsupported keyword %r" % (path, k))
    t = s.get("type")
    if t not in _TYPES:
        raise SchemaError("%s: unsupported type %r" % (path, t))
    kind = _TYPES[t]
    fmt = s.get("format")
    if fmt is not None:
        if fmt not in _FORMATS or kind != T_STR:
            raise SchemaError("%s: unsupported format %r" % (path, fmt))
        kind |= _FORMATS[fmt]
    arg = None
    if t == "string":
        if "enum" in s:
            vals = tuple(sorted(s["enum"]))
            if not all(isinstance(v, str) for v in vals):
                raise SchemaError(path + ": non-string enum")
            ml = s.get("maxLength")
            if ml is not None and any(len(v) > ml for v in vals):
                raise SchemaError(path + ": enum value over maxLength")
            arg = vals
        elif "maxLength" in s:
            arg = int(s["maxLength"])
    elif t in ("integer", "number"):
        if "enum" in s:
            raise SchemaError(path + ": numeric enum")
        lo, hi = s.get("minimum"), s.get("maximum")
        if lo is not None or hi is not None:
            arg = (lo, hi)
    elif t == "object":
        arg = _object(s, root, path)
    elif t == "array":
        if "items" not in s or not isinstance(s["items"], dict):
            raise SchemaError(path + ": array without a single item schema")
        ik, ia = _node(s["items"], root, path + "[]")
        arg = (int(s.get("minItems", 0)), s.get("maxItems"), ik, ia)
    return kind, arg


def _object(s, root, path):
    props = s.get("properties", {})
    req = s.get("required", [])
    for r in req:
        if r not in props:
            raise SchemaError("%s: required %r has no schema" % (path, r))
    out = []
    for name in sorted(req) + sorted(n for n in props if n not in req):
        kind, arg = _node(props[name], root, path + "." + name)
        if name in req:
            kind |= REQ
        out.extend((name, kind, arg))
    return tuple(out)


def build():
    """-> {action: (request node, response node)}"""
    table = {}
    for a in ACTIONS:
        nodes = []
        for name in (a, a + "Response"):
            root = load(name)
            if root.get("type") != "object":
                raise SchemaError(name + ": top level is not an object")
            nodes.append(_object(root, root, name))
        table[a] = tuple(nodes)
    return table


# --- emitting ---------------------------------------------------------------

F_ARG, F_ENUM = 64, 128
_NO_MAX = 0xFFFF


class _Emitter:
    """Encodes one message's object node (build()'s form) into a blob:
    header, its field names, its nodes (offsets from the blob's start)."""

    def __init__(self, node):
        names = set()
        self._collect(T_OBJ, node, names, set())
        self.names = sorted(names)
        if len(self.names) > 255:
            raise SchemaError("more than 255 field names in one message")
        self.name_ix = {n: i for i, n in enumerate(self.names)}
        head = 5 + 2 * len(self.names) + sum(len(n) + 1 for n in self.names)
        self.blob = bytearray(head)  # the header and names, written last
        self.at = {}  # (node kind, value) -> offset
        self.node = node

    def _collect(self, kind, arg, names, seen):
        base = kind & 7
        if base == T_OBJ and arg not in seen:
            seen.add(arg)
            for i in range(0, len(arg), 3):
                names.add(arg[i])
                self._collect(arg[i + 1], arg[i + 2], names, seen)
        elif base == T_ARR:
            self._collect(arg[2], arg[3], names, seen)

    # Nodes are written depth first: children before their parent, so that
    # a parent knows their offsets; a node used twice is written once.
    def _put(self, key, data):
        off = self.at.get(key)
        if off is None:
            off = len(self.blob)
            if off + len(data) > 0xFFFF:
                raise SchemaError("message blob over 64 KiB")
            self.at[key] = off
            self.blob += data
        return off

    def _arg(self, kind, arg, note):
        """-> (kind with ARG/ENUM, u16 arg) for one field or array item."""
        base = kind & 7
        if arg is None:
            return kind, 0
        if base == T_STR:
            if isinstance(arg, tuple):
                if len(arg) > 255 or not all(0 < len(v) < 256 and v.isascii() for v in arg):
                    raise SchemaError(note + ": enum over 255 values or not 1..255 ASCII")
                data = bytes([len(arg)]) + b"".join(
                    bytes([len(v)]) + v.encode() for v in arg)
                return kind | F_ENUM, self._put(("enum", arg), data)
            if not 0 <= arg <= 0xFFFF:
                raise SchemaError("%s: maxLength %r" % (note, arg))
            return kind | F_ARG, arg
        if base in (T_INT, T_NUM):
            lo, hi = arg
            for x in (lo, hi):
                if x is not None and (type(x) is not int or not -2 ** 31 <= x < 2 ** 31):
                    raise SchemaError("%s: bound %r is not a 32-bit integer" % (note, x))
            data = bytes([(lo is not None) | (hi is not None) << 1]) \
                + _i32(lo or 0) + _i32(hi or 0)
            return kind | F_ARG, self._put(("range", arg), data)
        if base == T_OBJ:
            return kind, self._object(arg, note)
        if base == T_ARR:
            lo, hi, ik, ia = arg
            if not 0 <= lo <= 255 or not (hi is None or 0 <= hi < _NO_MAX):
                raise SchemaError("%s: minItems/maxItems out of range" % note)
            ik, ia = self._arg(ik, ia, note + "[]")
            data = bytes([lo]) + _u16(_NO_MAX if hi is None else hi) + bytes([ik]) + _u16(ia)
            return kind, self._put(("array", lo, hi, ik, ia), data)
        raise SchemaError("%s: unexpected argument" % note)

    def _object(self, node, note):
        key = ("object", node)
        if key in self.at:
            return self.at[key]
        fields = []
        for i in range(0, len(node), 3):
            k, a = self._arg(node[i + 1], node[i + 2], note + "." + node[i])
            fields.append(bytes([self.name_ix[node[i]], k]) + _u16(a))
        if len(fields) > 255:
            raise SchemaError(note + ": more than 255 fields")
        return self._put(key, bytes([len(fields)]) + b"".join(fields))

    def message(self, note):
        """-> the blob of the message (header, names, nodes) as bytes."""
        root = self._object(self.node, note)
        b = self.blob
        b[0:2] = _u16(len(b))
        b[2:4] = _u16(root)
        b[4] = len(self.names)
        p = 5 + 2 * len(self.names)
        for i, n in enumerate(self.names):
            b[5 + 2 * i:7 + 2 * i] = _u16(p)
            b[p:p + len(n) + 1] = n.encode() + b" "
            p += len(n) + 1
        return bytes(b)


def emit(table, version):
    """-> (schema.py text, schema.bin bytes)."""
    data = bytearray()
    acts = []
    for a in ACTIONS:
        offs = []
        for node, note in zip(table[a], (a, a + "Response")):
            offs.append(len(data))
            data += _Emitter(node).message(note)
        acts.append((a, offs[0], offs[1]))
    if len(data) > 0xFFFF:
        raise SchemaError("schema.bin over 64 KiB")
    largest = max(_u16at(data, q) for _, q, r in acts for q in (q, r))
    out = [
        "# generated by tools/gen_schema.py from ocpp %s; do not edit\n" % version,
        "# The payload schemas of OCPP 1.6 and the security whitepaper, in the\n",
        "# compact encoding described in tools/gen_schema.py: one blob per message\n",
        "# in schema.bin beside this module, read from flash by validate.py for\n",
        "# the message it checks (in a .mpy in /lib the whole table took 5.5 KB\n",
        "# of heap on a 32-bit port for as long as the charger ran).\n",
        "\n# schema.bin's size (a check that the two files belong together)\n",
        "SIZE = %d\n" % len(data),
        "\n# the largest blob, the size of validate.py's buffer\n",
        "LARGEST = %d\n" % largest,
        "\n# action -> offset of its request blob | its response blob's << 16\n",
        "ACTIONS = {\n",
    ]
    for a, q, r in acts:
        out.append("    %r: 0x%04x%04x,\n" % (a, r, q))
    out.append("}\n")
    return "".join(out), bytes(data)


def _esc(data, text=False):
    # bytes literal body: hex escapes, the letters of enum values as is
    # (the first byte is always a length).
    out = []
    for i, c in enumerate(data):
        if text and i and 32 < c < 127 and c not in b'"\\':
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return "".join(out)


def _u16(n):
    return bytes((n & 0xFF, n >> 8))


def _i32(n):
    return (n & 0xFFFFFFFF).to_bytes(4, "little")


def _u16at(b, p):
    return b[p] | b[p + 1] << 8


def decode(ns, data):
    """The emitted module's namespace and schema.bin -> build()'s table
    (round-trip test)."""
    assert ns["SIZE"] == len(data), "schema.bin does not belong to schema.py"

    def message(base):
        blob = data[base:base + _u16at(data, base)]
        count = blob[4]
        names = []
        for i in range(count):
            p = _u16at(blob, 5 + 2 * i)
            names.append(blob[p:blob.index(b" ", p)].decode())
        assert names == sorted(names), "names out of order"

        def i32(p):
            return int.from_bytes(blob[p:p + 4], "little", signed=True)

        def arg(kind, a):
            base = kind & 7
            plain = kind & ~(F_ARG | F_ENUM)
            if base == T_STR:
                if kind & F_ENUM:
                    vals, p = [], a + 1
                    for _ in range(blob[a]):
                        vals.append(blob[p + 1:p + 1 + blob[p]].decode())
                        p += 1 + blob[p]
                    return plain, tuple(vals)
                return plain, a if kind & F_ARG else None
            if base in (T_INT, T_NUM):
                if not kind & F_ARG:
                    return plain, None
                f = blob[a]
                return plain, (i32(a + 1) if f & 1 else None, i32(a + 5) if f & 2 else None)
            if base == T_OBJ:
                return plain, obj(a)
            if base == T_ARR:
                hi = _u16at(blob, a + 1)
                ik, ia = arg(blob[a + 3], _u16at(blob, a + 4))
                return plain, (blob[a], None if hi == _NO_MAX else hi, ik, ia)
            return plain, None

        def obj(o):
            out = []
            for p in range(o + 1, o + 1 + 4 * blob[o], 4):
                k, a = arg(blob[p + 1], _u16at(blob, p + 2))
                out.extend((names[blob[p]], k, a))
            return tuple(out)

        return obj(_u16at(blob, 2))

    return {a: (message(x & 0xFFFF), message(x >> 16)) for a, x in ns["ACTIONS"].items()}


def generate():
    """-> (schema.py text, schema.bin bytes)."""
    version = importlib.metadata.version("ocpp")
    return emit(build(), version)


def bin_path(py):
    return py[:-3] + ".bin" if py.endswith(".py") else py + ".bin"


def _check(path, text, data):
    try:
        with open(path, encoding="utf-8") as f:
            old = f.read()
    except OSError:
        old = ""
    try:
        with open(bin_path(path), "rb") as f:
            old_data = f.read()
    except OSError:
        old_data = b""
    rel = os.path.relpath(path, ROOT)
    if old == text and old_data == data:
        print("gen_schema: %s and its .bin are up to date" % rel)
        return 0
    if old_data != data:
        print("gen_schema: %s is stale (%d bytes, %d expected); run `make schema`"
              % (os.path.relpath(bin_path(path), ROOT), len(old_data), len(data)))
    if old != text:
        diff = list(difflib.unified_diff(
            old.splitlines(), text.splitlines(), "committed", "generated",
            lineterm="", n=1))
        changed = sum(1 for d in diff if d[:1] in "+-" and d[:3] not in ("+++", "---"))
        print("gen_schema: %s is stale (%d lines differ); run `make schema`" % (rel, changed))
        for line in diff[:40]:
            print(line)
        if len(diff) > 40:
            print("... (%d more diff lines)" % (len(diff) - 40))
    return 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if the committed table differs")
    ap.add_argument("--out", default=OUT, help="the module (the .bin goes beside it)")
    args = ap.parse_args(argv)
    try:
        text, data = generate()
    except (SchemaError, OSError, KeyError, ValueError) as e:
        print("gen_schema: %s" % e, file=sys.stderr)
        return 2
    if args.check:
        return _check(args.out, text, data)
    for path, body in ((bin_path(args.out), data), (args.out, text.encode())):
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(body)
        os.replace(tmp, path)
        print("gen_schema: wrote %s" % os.path.relpath(path, ROOT))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import project_env
    project_env.use_venv()
    sys.exit(main())
