"""tools/build_mpy.py: the identifier-like string constants of a module are
named on a free module-level line before mpy-cross compiles it, so that they
load as shared qstrs; line numbers and behaviour stay the same."""
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
