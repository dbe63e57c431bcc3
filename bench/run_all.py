#!/usr/bin/env python3
"""`make bench`: run every bench/bench_*.py and print their Markdown tables.

    .venv/bin/python bench/run_all.py [--quick] [NAME ...]

NAME selects benchmarks by substring (e.g. `store`). The output is also
written to build/benchmarks.md; docs/benchmarks.md records the figures of a
full run with the date and machine.
"""
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    args = sys.argv[1:]
    if "-h" in args or "--help" in args:
        print(__doc__.strip())
        return
    quick = "--quick" in args
    names = [a for a in args if not a.startswith("--")]
    here = os.path.join(ROOT, "bench")
    scripts = sorted(f for f in os.listdir(here) if f.startswith("bench_") and f.endswith(".py"))
    if names:
        scripts = [s for s in scripts if any(n in s for n in names)]
    out = ["# Benchmarks (%s, %s)\n" % (time.strftime("%Y-%m-%d"), "quick" if quick else "full")]
    failed = 0
    for i, s in enumerate(scripts):
        print("== [%d/%d] %s" % (i + 1, len(scripts), s), file=sys.stderr, flush=True)
        cmd = [sys.executable, os.path.join(here, s)] + (["--quick"] if quick else [])
        t0 = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True)
        text = p.stdout.strip()
        if p.returncode != 0:
            failed += 1
            text += "\n\n**%s failed (exit %d)**\n```\n%s\n```" % (
                s,
                p.returncode,
                p.stderr[-2000:],
            )
        print(text + "\n", flush=True)
        print("   (%s: %.0f s)" % (s, time.time() - t0), file=sys.stderr)
        out.append(text + "\n")
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    with open(os.path.join(ROOT, "build", "benchmarks.md"), "w") as f:
        f.write("\n".join(out))
    if failed:
        print("%d benchmark(s) failed: their tables above end with the error; run one alone "
              "with `.venv/bin/python bench/NAME.py --quick`" % failed, file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import project_env
    project_env.use_venv()
    main()
