"""Short private names for the boards' builds (used by tools/build_mpy.py).

Every name a module's bytecode uses (attributes, methods, globals, argument
names) is a qstr: interned in the heap when the .mpy is loaded, and kept
after the module is released. The firmware's private names (`_sock`,
`_on_frame`, ...) are a quarter of the names the modules loaded at boot
intern, and most are used by one module only. A board's build renames them,
module by module, to names MicroPython has in ROM that the module does not
use otherwise (`PRIVATE_ROM`: builtin functions, types and exception
classes, `abs`, `hash`, `KeyError`, ...: static qstrs of the .mpy format,
no heap), then to `_0`, `_1`,
... when a module has more: every module reuses the same few names, so those
qstrs are shared instead of each private name taking one. The ROM names
chosen are no method of a builtin type and no name of a protocol
(`read`, `write`, `keys`, `send`, ...), so no object behaves differently
for having an attribute of that name.

This is sound because a private name never crosses a module (the lint gate
holds it: ruff's SLF001 on the firmware, and no `from m import _name`), with
three exceptions this code handles:

- a class whose base class comes from another firmware module shares its
  attributes with that base: such modules are renamed as one group, with one
  mapping;
- a private name that also appears inside a string anywhere in the firmware
  (getattr, a message) is kept;
- a private argument name (a caller could pass it by keyword) is kept.

Names are only renamed where the tokenizer sees a NAME token, so line and
column numbers stay the same. The debug build (unix, with line numbers) is
not renamed: its tracebacks keep the real names.

Argument names are qstrs too (a call may name them), public or private.
An argument that no call passes by keyword (`keyword_names`: every call in
the firmware, and any `name=` anywhere else in the project, scripts sent to
a board included) is renamed inside its function to a name MicroPython
already has in ROM ("key", "value", "start", ...: the static qstrs of the
.mpy format, which cost no heap) that the function does not otherwise use
(`arg_edits`).
"""
import ast
import io
import keyword
import re
import tokenize

_PRIVATE = re.compile(r"_[A-Za-z]\w*\Z")
_IN_STRING = re.compile(r"_[A-Za-z]\w*")
_NUMBERED = re.compile(r"_\d+\Z")
# Names static in every .mpy (in ROM on a board), none of them a keyword
# or a name the compiler treats specially; checked with mpy-cross by
# host_tests/test_build_mpy.py.
ROM_NAMES = ("key", "value", "start", "stop", "step", "index", "count", "end", "sep",
             "little", "readinto", "readline", "popitem", "setdefault", "issubclass",
             "staticmethod", "classmethod")
_KEYWORD_ARG = re.compile(r"[(,]\s*([A-Za-z_]\w*)\s*=(?!=)")
# Static names (checked like ROM_NAMES) a private name may take in a module
# that uses none of them otherwise: builtin functions and types, and the
# builtin exception classes, and a few other static names (`main`, `next`,
# ...); none a method of a builtin type or of a protocol, none an attribute
# that builtin objects have (`args` of an exception), none the compiler
# treats specially (super, const), and none in ROM_NAMES (the argument
# names).
PRIVATE_ROM = ("abs", "all", "any", "bool", "callable", "chr", "dict", "dir", "divmod",
               "eval", "exec", "getattr", "globals", "hasattr", "hash", "id", "int",
               "isinstance", "iter", "len", "list", "locals", "map", "object", "open", "ord",
               "pow", "print", "range", "repr", "round", "setattr", "sorted", "str", "sum",
               "tuple", "type", "zip", "bytes", "bytearray", "set", "next",
               "main", "builtins", "bytecode", "micropython",
               "ArithmeticError", "AssertionError", "AttributeError", "BaseException",
               "EOFError", "Ellipsis", "Exception", "GeneratorExit", "ImportError",
               "IndentationError", "IndexError", "KeyError", "KeyboardInterrupt",
               "LookupError", "MemoryError", "NameError", "NoneType", "NotImplementedError",
               "OSError", "OverflowError", "RuntimeError", "StopIteration", "SyntaxError",
               "SystemExit", "TypeError", "ValueError", "ZeroDivisionError")
_WORD = re.compile(r"[A-Za-z_]\w*")


def _private(name):
    return bool(_PRIVATE.match(name)) and not name.startswith("__")


def _module_name(rel):
    # "mpocpp/protocol/ws.py" -> "mpocpp.protocol.ws"
    return rel[:-3].replace("\\", "/").replace("/", ".")


class _Module:
    def __init__(self, rel, text):
        self.name = _module_name(rel)
        tree = ast.parse(text)
        self.names = set()  # private NAME tokens
        self.kept = set()  # private names that must stay
        self.bases = set()  # firmware modules a class here derives from
        self.imports = set()  # private names this module imports from another
        self.numbered = set()  # names already of the short form
        self.in_strings = set()  # private-looking words inside strings
        self.words = set()  # every name and every word inside a string
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NAME:
                self.words.add(tok.string)
            if tok.type == tokenize.NAME and _private(tok.string):
                self.names.add(tok.string)
            elif tok.type == tokenize.NAME and _NUMBERED.match(tok.string):
                self.numbered.add(tok.string)
            elif tok.type == tokenize.STRING:
                self.in_strings.update(_IN_STRING.findall(tok.string))
                self.words.update(_WORD.findall(tok.string))
        imported = {}  # local name -> firmware module it comes from
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                pkg = self.name.split(".")
                pkg = pkg[:len(pkg) - node.level] if node.level else []
                where = ".".join(pkg + ([node.module] if node.module else []))
                for a in node.names:
                    if _private(a.name):
                        self.imports.add(a.name)
                    local = a.asname or a.name
                    imported[local] = (where, a.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    imported[a.asname or a.name.split(".")[0]] = (a.name, "")
            elif isinstance(node, ast.arg) and _private(node.arg):
                self.kept.add(node.arg)
            elif isinstance(node, ast.keyword) and node.arg and _private(node.arg):
                self.kept.add(node.arg)
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            for b in node.bases:
                root = b
                while isinstance(root, ast.Attribute):
                    root = root.value
                if not isinstance(root, ast.Name) or root.id not in imported:
                    continue
                mod, what = imported[root.id]
                # "from pkg.mod import Class" or "from pkg import mod" + mod.Class
                self.bases.add(mod)
                self.bases.add(mod + "." + what)


def _groups(mods):
    # Modules joined by a class derived across them (union-find).
    by_name = {m.name: rel for rel, m in mods.items()}
    parent = {rel: rel for rel in mods}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for rel, m in mods.items():
        for b in m.bases:
            other = by_name.get(b)
            if other is not None:
                parent[find(rel)] = find(other)
    groups = {}
    for rel in mods:
        groups.setdefault(find(rel), []).append(rel)
    return [sorted(g) for g in groups.values()]


def plan(files):
    """files: {rel path: source text} of every module of one build.
    -> ({rel path: {private name: short name}}, {rel path: the rel paths
    renamed with it, itself included}); a module the parser refuses is left
    alone (mpy-cross reports it)."""
    mods = {}
    for rel, text in files.items():
        try:
            mods[rel] = _Module(rel, text)
        except SyntaxError:
            continue
    taken = set()  # short names must not clash with a name already written
    kept_all = set()  # imported anywhere, or in a string anywhere (getattr):
    for m in mods.values():  # kept everywhere
        taken |= m.numbered
        kept_all |= m.imports | m.in_strings
    out = {}
    group = {}
    for members in _groups(mods):
        names = set()
        kept = set(kept_all)
        used = set()
        for rel in members:
            names |= mods[rel].names
            kept |= mods[rel].kept
            used |= mods[rel].words
        names -= kept
        rom = [r for r in PRIVATE_ROM if r not in used]
        short = {}
        k = 0
        for n in sorted(names):
            if rom:
                short[n] = rom.pop(0)
                continue
            while "_%d" % k in taken:
                k += 1
            short[n] = "_%d" % k
            k += 1
        for rel in members:
            out[rel] = {n: s for n, s in short.items() if n in mods[rel].names}
            group[rel] = members
    return out, group


def private_names(text):
    """-> the private NAME tokens of a source (short ones too), one per use."""
    return [t.string for t in tokenize.generate_tokens(io.StringIO(text).readline)
            if t.type == tokenize.NAME and (_private(t.string) or _NUMBERED.match(t.string))]


def rename(text, mapping, edits=()):
    """-> text with each NAME token in mapping replaced, and the (row, col,
    end col, new name) edits of arg_edits made (same lines)."""
    if not mapping and not edits:
        return text
    mapping = mapping or {}
    lines = text.split("\n")
    edits = list(edits)
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.NAME and tok.string in mapping:
            assert not keyword.iskeyword(tok.string)
            (row, col), (erow, ecol) = tok.start, tok.end
            assert row == erow
            edits.append((row, col, ecol, mapping[tok.string]))
    for row, col, ecol, new in sorted(edits, reverse=True):  # right to left on each line
        s = lines[row - 1]
        lines[row - 1] = s[:col] + new + s[ecol:]
    return "\n".join(lines)


def keyword_names(firmware, others=()):
    """-> the names any call passes by keyword: exactly, from the calls in
    firmware (source texts), and as a superset from others (any text: tools,
    tests, scripts they send to a board), every `(name=` or `, name=`."""
    out = set()
    for text in firmware:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg:
                out.add(node.arg)
    for text in others:
        out.update(_KEYWORD_ARG.findall(text))
    return out


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
           ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _bound(scope):
    # Names a nested scope binds itself (its arguments, assignments,
    # definitions; imports, global/nonlocal and `except as` anywhere are
    # counted by arg_edits): an outer argument of that name is not renamed
    # (it would be a different variable there).
    out = set()
    for n in ast.walk(scope):
        if isinstance(n, ast.arg):
            out.add(n.arg)
        elif isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            out.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
    return out


def _functions(body):
    # The functions of a module and the methods of its classes, not those
    # nested in a function (their arguments stay: a closure's names and its
    # function's would have to be chosen together).
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node.body)
        elif isinstance(node, (ast.If, ast.Try)):
            yield from _functions(node.body + node.orelse)


def arg_edits(text, keep):
    """-> [(row, col, end col, new name)]: the positional arguments of each
    function (not in keep) renamed to ROM_NAMES inside it (columns in
    characters)."""
    tree = ast.parse(text)
    lines = text.split("\n")
    edits = []

    def at(node, old, new):
        c = len(lines[node.lineno - 1].encode("utf-8")[:node.col_offset].decode("utf-8"))
        edits.append((node.lineno, c, c + len(old), new))

    for fn in _functions(tree.body):
        used = set()  # every name the function (nested scopes included) sees or binds
        nested = set()  # names bound by nested scopes, or not by a Name node
        for stmt in fn.body:
            for n in ast.walk(stmt):
                if isinstance(n, ast.Name):
                    used.add(n.id)
                elif isinstance(n, (ast.Global, ast.Nonlocal)):
                    nested.update(n.names)
                elif isinstance(n, ast.ExceptHandler) and n.name:
                    nested.add(n.name)  # bound without a Name node: not renamed
                elif isinstance(n, ast.alias):
                    nested.add((n.asname or n.name).split(".")[0])
                if isinstance(n, _SCOPES):
                    nested |= _bound(n)
        a = fn.args
        args = a.posonlyargs + a.args
        used.update(x.arg for x in args + a.kwonlyargs)
        used.update(x.arg for x in (a.vararg, a.kwarg) if x is not None)
        used |= nested
        free = [r for r in ROM_NAMES if r not in used]
        for x in args:
            old = x.arg
            if old in keep or old in ROM_NAMES or old in ("self", "cls") or old in nested \
                    or not free:
                continue
            new = free.pop(0)
            at(x, old, new)
            for stmt in fn.body:
                for n in ast.walk(stmt):
                    if isinstance(n, ast.Name) and n.id == old:
                        at(n, old, new)
    return edits
