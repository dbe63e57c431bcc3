"""Log messages kept in flash for the boards' builds (used by tools/build_mpy.py).

A string constant of a loaded .mpy is an object in the heap for as long as
its module is loaded (a header and a copy of its text: 48 bytes for a
30-character message on a 32-bit port), and the modules loaded at boot hold
about sixty log messages that are only read when their line is written. A
board's build replaces each log message written out in a call

    log.info(_TAG, "connector %d: no plug in time", cid)

(`log.debug`, `info`, `warn`, `error`, `exc`: the second argument, a string
literal of more than 10 characters that is not identifier-like) by its
number in one catalog, `mpocpp/util/logtext.bin` in the build, which
mpocpp/util/log.py reads when the line is written. The output is the same
line. Shorter strings are interned names anyway, and identifier-like ones
are shared names (build_mpy's `_intern_line`): neither is moved. The debug
build (unix, with line numbers) keeps its strings.

The catalog: a table of count + 1 offsets (u32, little endian) from the
start of the file, then the UTF-8 texts one after another; text n is from
offset n to offset n + 1.
"""
import ast
import struct

FILE = "mpocpp/util/logtext.bin"  # in the build, beside log.mpy
_CALLS = ("debug", "info", "warn", "error", "exc")


def _messages(tree):
    # -> the string constants to move, as (node) in source order.
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "log" \
                and node.func.attr in _CALLS and len(node.args) >= 2:
            m = node.args[1]
            if isinstance(m, ast.Constant) and isinstance(m.value, str) \
                    and len(m.value) > 10 and not m.value.isidentifier():
                yield m


def plan(texts):
    """texts: bundle path -> source. -> {message: number}, numbered in the
    order of the sorted paths and of the source."""
    ids = {}
    for rel in sorted(texts):
        try:
            tree = ast.parse(texts[rel])
        except SyntaxError:
            continue
        for m in sorted(_messages(tree), key=lambda n: (n.lineno, n.col_offset)):
            ids.setdefault(m.value, len(ids))
    return ids


def replace(src, ids):
    """-> src with each message in `ids` replaced by its number. A message
    written over several lines (implicit concatenation) leaves its line
    breaks, inside the call's parentheses: every line keeps its number."""
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return src  # mpy-cross reports it
    lines = src.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)

    def offset(lineno, col):
        # ast columns count UTF-8 bytes
        line = lines[lineno - 1]
        return starts[lineno - 1] + len(line.encode()[:col].decode())

    edits = []
    for m in _messages(tree):
        n = ids.get(m.value)
        if n is None:
            continue
        a = offset(m.lineno, m.col_offset)
        b = offset(m.end_lineno, m.end_col_offset)
        edits.append((a, b, str(n) + "\n" * (m.end_lineno - m.lineno)))
    for a, b, text in sorted(edits, reverse=True):
        src = src[:a] + text + src[b:]
    return src


def catalog(ids):
    """-> the bytes of the catalog file."""
    texts = [t.encode() for t, _ in sorted(ids.items(), key=lambda kv: kv[1])]
    head = 4 * (len(texts) + 1)
    offs = [head]
    for t in texts:
        offs.append(offs[-1] + len(t))
    return struct.pack("<%dI" % len(offs), *offs) + b"".join(texts)


def read(data, n):
    """The text of message n in catalog bytes (for tests and tools)."""
    a, b = struct.unpack_from("<II", data, 4 * n)
    return data[a:b].decode()
