"""Every command README.md and docs/ show works as written, from a fresh copy
of the tree once `make venv` has run, in a shell where nothing is activated:
no VIRTUAL_ENV, no .venv/bin on PATH (the scripts find .venv themselves).

- every documented script answers --help (its imports work);
- README's "Trying it by hand" session runs line by line, with the statuses
  its comments name checked; only the ports differ (this machine is shared),
  added as options the README documents;
- the documented commands that need no hardware run literally.
"""
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from harness import ROOT
from simcharger import free_port

DOCS = [os.path.join(ROOT, "README.md")] + sorted(
    os.path.join(ROOT, "docs", f)
    for f in os.listdir(os.path.join(ROOT, "docs"))
    if f.endswith(".md")
)
STATUSES = ("Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing",
            "Reserved", "Unavailable", "Faulted")
# Documented commands a test may run exactly as written (no board, no server).
LITERAL = ("tools/deploy --board rp2 --dry-run", "tools/make_image.py --version 1.2.0", "make mpy")


def _doc_text():
    return "\n".join(open(p, encoding="utf-8").read() for p in DOCS)


def _commands(text):
    """Command lines: lines of ```sh blocks, and `backticked` spans with
    arguments, that start with a script of tools/ or bench/ or with make
    (a bare `tools/x.py` may be a file named, not a command)."""
    cmds = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        cmds += [line.split(" #")[0].strip() for line in block.splitlines()]
    cmds += re.findall(r"`((?:tools|bench)/\S+\s[^`]+|make [^`]+)`", text)
    out = []
    for c in cmds:
        c = re.sub(r"^\.venv/bin/python ", "", c)
        if re.match(r"(tools|bench)/|make ", c) and c not in out:
            out.append(c)
    return out


def _scripts():
    names = sorted({c.split()[0] for c in _commands(_doc_text()) if not c.startswith("make ")})
    return [n for n in names if os.path.isfile(os.path.join(ROOT, n))]


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A copy of the tree as a fresh clone has it, with the .venv made by make venv."""
    if not os.path.isdir(os.path.join(ROOT, ".venv")):
        pytest.skip("no .venv: run `make venv` first")
    dst = tmp_path_factory.mktemp("clone") / "repo"
    shutil.copytree(ROOT, dst, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "run-data", "__pycache__", ".pytest_cache", "*.pyc"))
    os.symlink(os.path.join(ROOT, ".venv"), dst / ".venv")
    return str(dst)


def clean_env(home):
    venv = os.path.realpath(os.path.join(ROOT, ".venv"))
    path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(":")
            if p and not os.path.realpath(p).startswith(venv)]
    env = {k: os.environ[k] for k in ("LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    env.update(PATH=":".join(path), HOME=home, NO_COLOR="1")
    return env


def sh(clone, cmd, timeout=120):
    return subprocess.run(
        ["bash", "-c", cmd],
        cwd=clone,
        env=clean_env(clone),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_docs_name_their_commands():
    scripts = _scripts()
    assert {"tools/run", "tools/csms", "tools/bench", "tools/sim", "tools/deploy"} <= set(scripts)
    for lit in LITERAL:
        assert lit in _commands(_doc_text()) or any(
            c.startswith(lit) for c in _commands(_doc_text())
        ), lit


@pytest.mark.parametrize("script", _scripts())
def test_every_documented_script_runs_from_a_clean_shell(clone, script):
    assert os.access(os.path.join(clone, script), os.X_OK), "%s is not executable" % script
    r = sh(clone, script + " --help", timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stderr, (
        script,
        r.stdout[-2000:],
        r.stderr[-2000:],
    )
    assert "usage" in (r.stdout + r.stderr).lower() or script in r.stdout, r.stdout


@pytest.mark.parametrize("cmd", LITERAL)
def test_documented_commands_without_hardware_run_as_written(clone, cmd):
    r = sh(clone, cmd, timeout=300)
    assert r.returncode == 0, (cmd, r.stdout[-2000:], r.stderr[-2000:])


def _session():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    part = readme.split("## Trying it by hand", 1)[1]
    block = re.search(r"```sh\n(.*?)```", part, re.S).group(1)
    lines = []
    for line in block.splitlines():
        cmd, _, comment = line.partition("#")
        named = [s for s in STATUSES if re.search(r"\b%s\b" % s, comment)]
        lines.append((cmd.strip(), named[-1] if named else None))
    return lines


def _status(clone, bench_port):
    r = sh(clone, "tools/bench --port %d state" % bench_port, timeout=30)
    m = re.search(r'"status": "(\w+)"', r.stdout)
    return m and m.group(1)


def test_the_readme_session_works_as_written(clone):
    lines = _session()
    assert lines[0][0] == "make run", lines
    ports = {k: free_port() for k in ("port", "http-port", "web-port", "bench-port")}
    args = " ".join("--%s %d" % kv for kv in ports.items()) + " --fresh"
    log = open(os.path.join(clone, "run.log"), "w")
    run = subprocess.Popen(
        ["bash", "-c", 'make run ARGS="%s"' % args],
        cwd=clone,
        env=clean_env(clone),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 60
        while _status(clone, ports["bench-port"]) != "Available":
            assert run.poll() is None and time.time() < deadline, open(log.name).read()[-3000:]
            time.sleep(0.5)
        page = urllib.request.urlopen("http://127.0.0.1:%d/" % ports["web-port"], timeout=5).read()
        assert b"bench.js" in page
        assert "bench page: http://127.0.0.1:%d/" % ports["web-port"] in open(log.name).read()
        for cmd, status in lines[1:]:
            cmd = re.sub(r"^tools/bench ", "tools/bench --port %d " % ports["bench-port"], cmd)
            cmd = re.sub(
                r"^tools/csms call ", "tools/csms call --http-port %d " % ports["http-port"], cmd
            )
            r = sh(clone, cmd)
            assert r.returncode == 0, (cmd, r.stdout, r.stderr, open(log.name).read()[-3000:])
            if status:
                deadline = time.time() + 20
                while _status(clone, ports["bench-port"]) != status:
                    assert time.time() < deadline, "after %r: not %s" % (cmd, status)
                    time.sleep(0.3)
    finally:
        os.killpg(run.pid, signal.SIGTERM)  # make and tools/run: it stops the CSMS and the charger
        try:
            run.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
        log.close()
    deadline = time.time() + 10
    while subprocess.run(["pgrep", "-f", clone], capture_output=True).returncode == 0:
        assert time.time() < deadline, "make run left processes behind: " + subprocess.run(
            ["pgrep", "-af", clone], capture_output=True, text=True).stdout
        time.sleep(0.2)
