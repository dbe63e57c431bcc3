"""tools/build_mpy.py: the identifier-like string constants of a module are
named on a free module-level line before mpy-cross compiles it, so that they
load as shared qstrs; line numbers and behaviour stay the same."""
import ast
import struct
import os
import subprocess
import sys

from harness import MICROPYTHON, ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import build_mpy  # noqa: E402

SRC = '''# header comment
"""Docstring mentioning "notInterned_docword"."""
import gc


def f(d):
    # a comment inside a block is never used
    return d.get("connectorId"), "short", "with spaces in it"


X = ("transactionId",
# inside brackets
     "meterValueSample")
'''


def test_names_go_on_the_first_free_line():
    out = build_mpy._intern_line(SRC)
    a, b = SRC.split("\n"), out.split("\n")
    assert len(a) == len(b)
    changed = [i for i in range(len(a)) if a[i] != b[i]]
    assert changed == [0], changed
    assert b[0] == "if 0: connectorId, meterValueSample, transactionId  # header comment"
    compile(out, "m.py", "exec")


def test_blank_line_after_a_docstring_and_no_free_line():
    src = '"""Doc."""\n\nimport gc\ny = "connectorId"\n'
    assert build_mpy._intern_line(src).split("\n")[1] == "if 0: connectorId"
    # a constant used before the only free line is left alone
    src = 'y = "connectorId"\n\nz = "transactionId"\n'
    assert build_mpy._intern_line(src).split("\n")[1] == "if 0: transactionId"
    assert build_mpy._intern_line('def f():\n    return "connectorId"\n') \
        == 'def f():\n    return "connectorId"\n'
    assert build_mpy._intern_line("def (:\n") == "def (:\n"  # mpy-cross reports it


def test_a_module_loaded_when_needed_names_only_what_the_boot_modules_share():
    # A name outlives its module: the session code, an operation, the
    # authorization store name only the strings the boot modules name anyway.
    out = build_mpy._intern_line(SRC, {"transactionId"})
    assert out.split("\n")[0] == "if 0: transactionId  # header comment"
    assert build_mpy._intern_line(SRC, set()) == SRC
    texts = {rel: open(src, encoding="utf-8").read() for src, rel in build_mpy.sources("rp2")}
    boot = build_mpy.boot_modules(texts)
    for rel in ("mpocpp/charger.py", "mpocpp/app.py", "mpocpp/model/sessions.py",
                "mpocpp/operations/__init__.py", "mpocpp/protocol/link.py",
                "mpocpp_board/board.py"):
        assert rel.replace("/", os.sep) in boot, rel
    for rel in ("mpocpp/model/sessionflow.py", "mpocpp/model/authstore.py",
                "mpocpp/model/keys.py", "mpocpp/operations/core.py", "mpocpp/handlers.py",
                "mpocpp/metering/metervalues.py", "mpocpp/security/x509.py",
                # the WebSocket comes with the first connect attempt
                # (connect.py), not with the link
                "mpocpp/protocol/connect.py", "mpocpp/protocol/ws.py"):
        assert rel.replace("/", os.sep) in texts and rel.replace("/", os.sep) not in boot, rel


def test_every_firmware_module_keeps_its_lines():
    for board in ("unix", "esp32"):
        for path, _ in build_mpy.sources(board):
            with open(path, encoding="utf-8") as f:
                src = f.read()
            out = build_mpy._intern_line(src)
            assert out.count("\n") == src.count("\n"), path
            compile(out, path, "exec")


def test_compiled_module_runs_and_uses_less_heap(tmp_path):
    names = ["longFieldName%03d" % i for i in range(40)]
    src = "# m\nNAMES = [%s]\n" % ", ".join(repr(n) for n in names)
    heap = {}
    for kind, text in (("plain", src), ("interned", build_mpy._intern_line(src))):
        d = tmp_path / kind
        d.mkdir()
        (d / "src.py").write_text(text)
        subprocess.run([build_mpy.mpy_cross(), "-o", str(d / "m.mpy"), "-s", "m.py",
                        str(d / "src.py")], check=True)
        (d / "src.py").unlink()
        script = ("import gc\ngc.collect()\na = gc.mem_alloc()\nimport m\ngc.collect()\n"
                  "assert m.NAMES[7] == 'longFieldName007' and len(m.NAMES) == 40\n"
                  "print(gc.mem_alloc() - a)\n")
        p = subprocess.run([MICROPYTHON, "-c", script], cwd=str(d), capture_output=True,
                           text=True, timeout=30, env=dict(os.environ, MICROPYPATH=str(d)))
        assert p.returncode == 0, p.stdout + p.stderr
        heap[kind] = int(p.stdout.split()[-1])
    assert heap["interned"] < heap["plain"], heap


# tools/shortnames.py: a board's build renames private names module by module.

import shortnames  # noqa: E402

BASE = '''class Base:
    def __init__(self):
        self._state = 1

    def _hook(self):
        return self._state
'''

DERIVED = '''from pkg.base import Base

_LIMIT = const(3)


class Derived(Base):
    def __init__(self):
        super().__init__()
        self._extra = _LIMIT

    def value(self, _scale=1):
        return (self._hook() + self._extra) * _scale
'''

OTHER = '''from pkg.helpers import _shared


def _helper(x):
    return x + 1


class Other:
    def __init__(self):
        self._count = 0
        self._named = 0

    def bump(self):
        self._count = _helper(self._count)
        _shared(self)
        return getattr(self, "_named")
'''

HELPERS = '''def _shared(o):
    return o


def _own():
    return 2
'''


def _plan():
    files = {"pkg/base.py": BASE, "pkg/derived.py": DERIVED, "pkg/other.py": OTHER,
             "pkg/helpers.py": HELPERS}
    return files, shortnames.plan(files)


def test_private_names_shorten_per_module_and_are_shared_between_modules():
    files, (short, group) = _plan()
    other = short["pkg/other.py"]
    helpers = short["pkg/helpers.py"]
    assert set(other) == {"_helper", "_count"}
    # two modules reuse the same short names: one qstr each for both
    assert set(other.values()) & set(helpers.values())
    assert "_own" in helpers
    # kept: a private name imported from another module, one in a string
    # (getattr), a private argument name (a caller may pass it by keyword)
    assert "_shared" not in helpers and "_shared" not in other
    assert "_named" not in other
    assert "_scale" not in short["pkg/derived.py"]
    assert group["pkg/other.py"] == ["pkg/other.py"]


def test_a_class_derived_across_modules_renames_both_with_one_mapping():
    files, (short, group) = _plan()
    assert group["pkg/derived.py"] == ["pkg/base.py", "pkg/derived.py"]
    base, derived = short["pkg/base.py"], short["pkg/derived.py"]
    for name in ("_state", "_hook"):
        assert base[name] == derived.get(name, base[name])
    # the subclass's own names never take a name the base class uses
    assert derived["_extra"] not in base.values()
    assert derived["_hook"] == base["_hook"]


def _prints_ok(script, path):
    # the script runs under MicroPython with the renamed modules in path
    p = subprocess.run([MICROPYTHON, "-c", script], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, MICROPYPATH=str(path)))
    assert p.stdout.strip() == "ok", p.stdout + p.stderr


def test_renamed_modules_keep_their_lines_and_behave_the_same(tmp_path):
    files, (short, _) = _plan()
    for rel, text in files.items():
        out = shortnames.rename(text, short[rel])
        assert out.count("\n") == text.count("\n")
        d = tmp_path / os.path.dirname(rel)
        d.mkdir(exist_ok=True)
        (tmp_path / rel).write_text(out)
    count = short["pkg/other.py"]["_count"]
    assert count in shortnames.PRIVATE_ROM  # an attribute named like a builtin
    script = ("from pkg.derived import Derived\nfrom pkg.other import Other\n"
              "assert Derived().value(2) == 8\no = Other()\nassert o.bump() == 0\n"
              "assert o.%s == 1\nprint('ok')\n" % count)
    _prints_ok(script, tmp_path)


def test_private_names_take_rom_names_the_module_does_not_use_then_numbers():
    # A module that calls len() and names "hash" in a string keeps both
    # builtins as they are; past the ROM names, _0, _1, ...
    src = "def _a(o):\n    return len(o), 'hash'\n"
    src += "".join("_v%d = %d\n" % (i, i) for i in range(len(shortnames.PRIVATE_ROM) + 1))
    short, _ = shortnames.plan({"pkg/m.py": src})
    got = sorted(short["pkg/m.py"].values())
    assert "len" not in got and "hash" not in got
    # 1 + len(PRIVATE_ROM) + 1 names, all the ROM names but two: 4 numbered
    assert [g for g in got if g.startswith("_")] == ["_0", "_1", "_2", "_3"], got
    out = shortnames.rename(src, short["pkg/m.py"])
    scope = {}
    exec(compile(out, "m.py", "exec"), scope)
    assert scope[short["pkg/m.py"]["_a"]]([1, 2]) == (2, "hash")


def test_the_boards_build_interns_far_fewer_private_names():
    # Every firmware module of the esp32 board, renamed as tools/build_mpy.py
    # does: few distinct private names remain, each module compiles.
    files = {}
    for path, rel in build_mpy.sources("esp32"):
        with open(path, encoding="utf-8") as f:
            files[rel] = f.read()
    short, _ = shortnames.plan(files)
    before, after = set(), set()
    for rel, text in files.items():
        out = shortnames.rename(text, short.get(rel))
        compile(out, rel, "exec")
        for src, names in ((text, before), (out, after)):
            for tok in shortnames.private_names(src):
                names.add(tok)
    assert len(before) > 500 and len(after) < len(before) // 5, (len(before), len(after))


def test_a_private_name_in_a_string_anywhere_is_kept_everywhere():
    files = {"pkg/a.py": "class A:\n    def __init__(self):\n        self._x = 1\n",
             "pkg/b.py": "def peek(o):\n    return getattr(o, '_x')\n"}
    short, _ = shortnames.plan(files)
    assert "_x" not in short["pkg/a.py"]
    files["pkg/b.py"] = "def peek(o):\n    return o\n"
    short, _ = shortnames.plan(files)
    assert short["pkg/a.py"]["_x"] in shortnames.PRIVATE_ROM


# Argument names: renamed to names every .mpy has in ROM when no call passes
# them by keyword.

ARGS = '''import sys


def scale(amount, factor, unit="W"):
    total = amount * factor
    return "%d %s" % (total, unit)


def closure(reading, key):
    def inner(step):
        return reading + step
    try:
        raise ValueError(reading)
    except ValueError as reason:
        first = reason.args[0]
    return inner(1) + first + sum(x for x in (key,))


def shadowed(upto, limit):
    return [limit for limit in range(upto)]


def caught(reason):
    try:
        raise ValueError(reason)
    except ValueError as reason:
        return reason.args[0]


class Meter:
    def __init__(self, register, hooks):
        self.register = register
        self.hooks = hooks

    def add(self, wh):
        self.register += wh
        return self.register
'''


def test_rom_names_are_static_in_every_mpy(tmp_path):
    # A function with every ROM_NAMES argument, and every PRIVATE_ROM name
    # as an attribute: mpy-cross writes none of them into the file's qstr
    # table (they are in the firmware's ROM).
    src = tmp_path / "r.py"
    src.write_text("def f(%s):\n    pass\n" % ", ".join(shortnames.ROM_NAMES) +
                   "".join("f.%s = 1\n" % n for n in shortnames.PRIVATE_ROM))
    assert not set(shortnames.ROM_NAMES) & set(shortnames.PRIVATE_ROM)
    out = tmp_path / "r.mpy"
    subprocess.run([build_mpy.mpy_cross(), "-o", str(out), str(src)], check=True)
    data = out.read_bytes()
    for name in shortnames.ROM_NAMES + shortnames.PRIVATE_ROM:
        assert b"\x00" + name.encode() + b"\x00" not in data, name
        assert bytes((len(name) << 1,)) + name.encode() + b"\x00" not in data, name


def test_arguments_take_rom_names_and_behave_the_same(tmp_path):
    calls = "scale(1, 2, unit='A')\nMeter(hooks=None, register=0)\n"
    keep = shortnames.keyword_names([ARGS, calls])
    assert {"unit", "hooks", "register"} <= keep
    out = shortnames.rename(ARGS, None, shortnames.arg_edits(ARGS, keep))
    assert out.count("\n") == ARGS.count("\n")
    assert "def scale(key, value, unit=\"W\"):" in out
    assert "    total = key * value" in out
    assert "def __init__(self, register, hooks):" in out  # passed by keyword
    assert "def add(self, key):" in out and "self.register += key" in out
    # a closure sees the renamed argument; the one of the nested function,
    # the name bound by `except ... as`, and a name a comprehension binds
    # again are left alone
    assert "def closure(value, key):" in out  # "key" is one already
    assert "return value + step" in out and "raise ValueError(value)" in out
    assert "def inner(step):" in out
    assert "def shadowed(key, limit):" in out
    assert "def caught(reason):" in out
    (tmp_path / "m.py").write_text(out)
    script = ("import m\nassert m.scale(3, 4) == '12 W'\nassert m.closure(2, 5) == 10\n"
              "assert m.shadowed(3, 9) == [0, 1, 2]\nassert m.caught(4) == 4\n"
              "x = m.Meter(hooks=None, register=1)\n"
              "assert x.add(2) == 3\nprint('ok')\n")
    _prints_ok(script, tmp_path)


def test_a_keyword_written_in_a_script_for_a_board_keeps_the_name():
    # tools and tests send scripts to a board as strings: any `name=` there
    # counts as a keyword call
    other = 'SCRIPT = "from mpocpp_board.board import Board\\nb = Board(d, connectors=2)"\n'
    assert "connectors" in shortnames.keyword_names([], [other])
    src = "class Board:\n    def __init__(self, data_dir, connectors=1):\n        pass\n"
    edits = shortnames.arg_edits(src, shortnames.keyword_names([], [other]))
    assert "def __init__(self, key, connectors=1):" in shortnames.rename(src, None, edits)


def test_the_boards_build_interns_fewer_argument_names():
    files = {}
    for path, rel in build_mpy.sources("esp32"):
        with open(path, encoding="utf-8") as f:
            files[rel] = f.read()
    keep = shortnames.keyword_names(files.values(), build_mpy._project_texts())
    before, after = set(), set()
    for rel, text in files.items():
        out = shortnames.rename(text, None, shortnames.arg_edits(text, keep))
        compile(out, rel, "exec")
        for src, names in ((text, before), (out, after)):
            for node in ast.walk(ast.parse(src)):
                if isinstance(node, ast.arg):
                    names.add(node.arg)
    assert len(after) < len(before) * 2 // 3, (len(before), len(after))


# --- log messages in flash (tools/logtexts.py) ----------------------------------

LOGSRC = '''from mpocpp.util import log

_TAG = "t"


def f(cid, e):
    log.info(_TAG, "connector %d: no plug in time", cid)
    log.warn(_TAG, "short %d", cid)  # interned anyway: kept
    log.error(_TAG, "identifier_like_message")  # a shared name: kept
    log.exc(_TAG, "cache write "
                  "failed", e)
    log.info(_TAG, "connector %d: no plug in time", cid + 1)
    return "connector %d: no plug in time"  # not a log call: kept
'''


def test_log_messages_become_numbers_and_keep_their_lines():
    import logtexts
    ids = logtexts.plan({"m.py": LOGSRC})
    assert ids == {"connector %d: no plug in time": 0, "cache write failed": 1}
    out = logtexts.replace(LOGSRC, ids)
    assert out.count("\n") == LOGSRC.count("\n")
    ast.parse(out)
    assert 'log.info(_TAG, 0, cid)' in out and 'log.info(_TAG, 0, cid + 1)' in out
    assert 'log.exc(_TAG, 1\n, e)' in out
    assert '"short %d"' in out and '"identifier_like_message"' in out
    assert 'return "connector %d: no plug in time"' in out
    cat = logtexts.catalog(ids)
    assert [logtexts.read(cat, n) for n in (0, 1)] == list(ids)


def test_the_boards_build_logs_the_same_lines_from_its_catalog(tmp_path):
    # The compiled log module reads each message from logtext.bin beside it;
    # a missing catalog still writes the values out.
    import logtexts
    out = build_mpy.build("unix", out=str(tmp_path / "mpy"), quiet=True, lines=False)
    with open(os.path.join(out, logtexts.FILE), "rb") as f:
        cat = f.read()
    with open(os.path.join(ROOT, "mpocpp", "model", "sessions.py")) as f:
        assert "no plug in time, authorization dropped" in f.read()
    with open(os.path.join(out, "mpocpp", "model", "sessions.mpy"), "rb") as f:
        assert b"no plug in time" not in f.read()
    ids = {}
    n = 0
    while 4 * n + 8 <= struct.unpack_from("<I", cat, 0)[0]:
        ids[logtexts.read(cat, n)] = n
        n += 1
    k = ids["connector %d: no plug in time, authorization dropped"]
    j = ids["cache write failed"]
    q = ids["cannot queue %s"]
    script = ("from mpocpp.util import log\nlog.warn('session', %d, 2)\n"
              "log.exc('auth', %d, OSError(28))\nlog.exc('queue', %d, ValueError('x'), 'Hb')\n"
              "log.info('x', %d, 1, 2)\n" % (k, j, q, n + 5))
    p = subprocess.run([MICROPYTHON, "-c", script], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, MICROPYPATH=out), cwd=str(tmp_path))  # not the sources
    lines = [x.split(" ", 1)[1] for x in p.stdout.splitlines()]
    assert lines == ["W session: connector 2: no plug in time, authorization dropped",
                     "E auth: cache write failed: OSError OSError(28,)",
                     "E queue: cannot queue Hb: ValueError ValueError('x',)",
                     "I x: message %d (1, 2)" % (n + 5)], p.stdout + p.stderr
