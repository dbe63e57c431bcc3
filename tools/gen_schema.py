#!/usr/bin/env python3
"""Generate firmware/ocpp_schema.py from the OCPP 1.6 JSON schemas of the
`ocpp` PyPI package (CPython tool; `make schema`).

    python tools/gen_schema.py            write firmware/ocpp_schema.py
    python tools/gen_schema.py --check    exit 1 if the committed file is stale
    python tools/gen_schema.py --out F    write elsewhere

Table encoding (read by firmware/validate.py; keep both in step):
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
ACTIONS maps action -> (request node, response node). The module builds it
in _build(): every string is first bound to a local (named after it) so that
mpy-cross interns it as a qstr, and a tuple used more than once (enums such
as E_measurand, objects such as O_idTagInfo) is bound once to a name.
"""
import argparse
import difflib
import importlib.metadata
import json
import keyword
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "firmware", "ocpp_schema.py")

ACTIONS = (
    "Authorize", "BootNotification", "CancelReservation", "ChangeAvailability",
    "ChangeConfiguration", "ClearCache", "ClearChargingProfile", "DataTransfer",
    "DiagnosticsStatusNotification", "FirmwareStatusNotification",
    "GetCompositeSchedule", "GetConfiguration", "GetDiagnostics",
    "GetLocalListVersion", "Heartbeat", "MeterValues", "RemoteStartTransaction",
    "RemoteStopTransaction", "ReserveNow", "Reset", "SendLocalList",
    "SetChargingProfile", "StartTransaction", "StatusNotification",
    "StopTransaction", "TriggerMessage", "UnlockConnector", "UpdateFirmware",
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

def _ident(hint):
    return "".join(c if c.isalnum() else "_" for c in hint)


class _Emitter:
    def __init__(self, table):
        self.table = table
        self.count = {}
        self.hint = {}
        for a in ACTIONS:
            for node in table[a]:
                # a shared top-level payload is named by its fields
                self._scan(node, T_OBJ, "_".join(node[0::3]) or a)
        self.names = {}
        self.defs = []

    def _scan(self, t, kind, hint):
        # Count every tuple occurrence; name hints come from the first field
        # that uses it (prefix E_ enum, O_ object, A_ array).
        self.count[t] = self.count.get(t, 0) + 1
        if t not in self.hint:
            base = kind & 7
            self.hint[t] = {T_STR: "E_", T_OBJ: "O_", T_ARR: "A_"}.get(
                base, "N_") + _ident(hint)
        if self.count[t] > 1:
            return
        base = kind & 7
        if base == T_OBJ:
            for i in range(0, len(t), 3):
                self._sub(t[i + 1], t[i + 2], t[i])
        elif base == T_ARR:
            self._sub(t[2], t[3], hint)

    def _sub(self, kind, arg, hint):
        if isinstance(arg, tuple):
            self._scan(arg, kind, hint)

    def ref(self, t, kind, indent):
        """Expression for tuple t: a shared name or an inline literal."""
        if not t:
            return "()"
        if self.count[t] > 1:
            if t not in self.names:
                name = self.hint[t]
                taken = set(self.names.values())
                n, k = name, 2
                while n in taken:
                    n, k = "%s_%d" % (name, k), k + 1
                body = self.literal(t, kind, 0)
                self.names[t] = n
                self.defs.append("%s = %s\n" % (n, body))
            return self.names[t]
        return self.literal(t, kind, indent)

    def arg(self, kind, arg, indent):
        if isinstance(arg, tuple):
            return self.ref(arg, kind, indent)
        return repr(arg)

    def literal(self, t, kind, indent):
        base = kind & 7
        pad = "    " * (indent + 1)
        if base == T_OBJ:
            lines = ["("]
            for i in range(0, len(t), 3):
                k = t[i + 1]
                lines.append("%s%s, %d, %s," % (
                    pad, self.strs[t[i]], k, self.arg(k, t[i + 2], indent + 1)))
            lines.append("    " * indent + ")")
            return "\n".join(lines)
        if base == T_ARR:
            return "(%d, %r, %d, %s)" % (t[0], t[1], t[2],
                                         self.arg(t[2], t[3], indent))
        if base == T_STR:
            names = [self.strs[v] for v in t]
            one = "(" + ", ".join(names) + ("," if len(t) == 1 else "") + ")"
            if len(one) + 4 * indent < 72:
                return one
            return "(\n" + "".join("%s%s,\n" % (pad, v) for v in names) \
                + "    " * indent + ")"
        return repr(t)  # numeric range

    def _name_strings(self):
        # Every string is bound once to a local (named after it when it is
        # an identifier): mpy-cross then interns it as a qstr, whereas string
        # constants inside literal tuples load as separate str objects.
        found = set(ACTIONS)
        for t in self.count:
            for v in t:
                if isinstance(v, str):
                    found.add(v)
        self.strs = {}
        taken = set(self.hint.values()) | {"_build"}
        for v in sorted(found):
            if v.isidentifier() and not keyword.iskeyword(v) \
                    and v not in taken and not v.startswith("s_"):
                n = v
            else:
                n = base = "s_" + _ident(v)
                k = 2
                while n in taken:
                    n, k = "%s_%d" % (base, k), k + 1
            taken.add(n)
            self.strs[v] = n

    def emit(self, version):
        self._name_strings()
        body = ["return {\n"]
        for a in ACTIONS:
            req, resp = self.table[a]
            body.append("    %s: (\n        %s,\n        %s,\n    ),\n" % (
                self.strs[a], self.ref(req, T_OBJ, 2), self.ref(resp, T_OBJ, 2)))
        body.append("}\n")
        strs = ["%s = %r\n" % (n, v) for v, n in sorted(self.strs.items())]
        code = "".join(strs + ["\n"] + self.defs + ["\n"] + body)
        head = [
            "# generated by tools/gen_schema.py from ocpp %s; do not edit\n" % version,
            "# Layout: see tools/gen_schema.py. Object node = flat tuple of\n",
            "# (name, kind, arg); kind = type (0 str 1 int 2 num 3 bool 4 obj\n",
            "# 5 arr) | 8 required | 16 date-time | 32 uri.\n",
            "# Built in a function from named strings so that each string is\n",
            "# one interned qstr and each shared tuple exists once in RAM.\n",
            "\n\n",
            "def _build():\n",
        ]
        tail = ["\n\nACTIONS = _build()\n"]
        return "".join(head + ["    " + line if line else line
                               for line in code.splitlines(True)]
                       + tail).replace("    \n", "\n")


def generate():
    version = importlib.metadata.version("ocpp")
    return _Emitter(build()).emit(version)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if the committed table differs")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args(argv)
    try:
        text = generate()
    except (SchemaError, OSError, KeyError, ValueError) as e:
        print("gen_schema: %s" % e, file=sys.stderr)
        return 2
    if args.check:
        try:
            with open(args.out, encoding="utf-8") as f:
                old = f.read()
        except OSError:
            old = ""
        if old == text:
            print("gen_schema: %s is up to date" % os.path.relpath(args.out, ROOT))
            return 0
        diff = list(difflib.unified_diff(
            old.splitlines(), text.splitlines(), "committed", "generated",
            lineterm="", n=1))
        changed = sum(1 for d in diff if d[:1] in "+-" and d[:3] not in ("+++", "---"))
        print("gen_schema: %s is stale (%d lines differ); run `make schema`"
              % (os.path.relpath(args.out, ROOT), changed))
        for line in diff[:40]:
            print(line)
        if len(diff) > 40:
            print("... (%d more diff lines)" % (len(diff) - 40))
        return 1
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, args.out)
    print("gen_schema: wrote %s" % os.path.relpath(args.out, ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
