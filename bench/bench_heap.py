#!/usr/bin/env python3
"""Heap budget (issue 8), on the 32-bit unix port (../shared/targets/unix32,
or MICROPYTHON32), with the firmware as the boards build it (.mpy without
line numbers, `tools/sim --no-lines`):

- heap in use after boot, idle, connected over wss (between Heartbeats: the
  payload validator released);
- the same once a session is over: a local list sent, a card started and
  stopped a transaction, the EV left, and the code of sessions and of the
  authorization store released (30 s idle);
- the live peak during the heap-budget scenario (host_tests/heap_scenario.py),
  sampled after a collection every 50 ms;
- the smallest `-X heapsize` that passes the scenario N times out of N;
- the same three with the bytecode run in place from a ROMFS image
  (`tools/sim --romfs`: data only, as on a board with a ROMFS partition);
- the heap each module loaded at boot adds, imported in boot order in fresh
  processes (bytecode, its qstrs and its globals).

    .venv/bin/python bench/bench_heap.py [--quick]
"""
import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))

import project_env  # noqa: E402

project_env.use_venv()  # ocpp (the CSMS side): from .venv, whatever the shell

from harness import MICROPYTHON32  # noqa: E402
from heap_scenario import Scenario, entry  # noqa: E402

BUILD = os.path.join(ROOT, "build", "mpy-unix-O3")


def run(tmp, heap, k, romfs=False):
    d = os.path.join(tmp, "run-%s-%d%s" % (heap, k, "-rom" if romfs else ""))
    try:
        with Scenario(d, MICROPYTHON32, heap, romfs=romfs) as sc:
            return sc.run()
    except Exception as e:  # a failed assertion, a timeout, a CALLERROR
        print("  %s run %d failed: %s" % (heap, k, str(e).splitlines()[0][:120]),
              file=sys.stderr)
        return None


def passes(tmp, kib, runs, romfs=False):
    for k in range(runs):
        if run(tmp, "%dk" % kib, k, romfs) is None:
            return False
    return True


def smallest(tmp, lo, hi, step, runs, romfs=False):
    # Bisection on one run each, then the answer confirmed runs times (moving
    # up a step while it is not).
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        print("  trying %d KiB%s" % (mid, " (ROMFS)" if romfs else ""), file=sys.stderr,
              flush=True)
        if run(tmp, "%dk" % mid, 0, romfs) is not None:
            hi = mid
        else:
            lo = mid
    while hi <= 1024 and not passes(tmp, hi, runs, romfs):
        hi += step
    return hi


def idle(tmp, romfs=False):
    d = os.path.join(tmp, "idle-rom" if romfs else "idle")
    # Between two Heartbeats: the validator released too (idleReleaseMs after
    # the boot's messages, 5 s here instead of 30 s).
    with Scenario(d, MICROPYTHON32, "1024k", romfs=romfs) as sc:
        sc.charger({"idleReleaseMs": 5000})
        sc.booted()
        h = sc.wait_released(60)
        return h["alloc"], [m for m in h["modules"] if m.startswith(("mpocpp", "mpocpp_board"))]


def after_session(tmp):
    # -> (heap while charging, heap idle again), both after a collection.
    import time
    with Scenario(os.path.join(tmp, "after"), MICROPYTHON32, "1024k") as sc:
        ch = sc.charger()
        sc.booted()
        sc.send_list(1, "Full", [entry(i) for i in range(255)])
        sc.start_listed()
        time.sleep(2)
        charging = ch.ok("heap")["alloc"]
        sc.stop_listed()
        ch.ok("plug_out", connector=1)
        return charging, sc.wait_released(120)["alloc"]


# The list comes in a file: the 32-bit unix port dies on an argument of 256
# characters or more ("FATAL: uncaught NLR").
MODULE_SCRIPT = """
import gc, sys
with open(sys.argv[1]) as f:
    mods = f.read().split()
for m in mods:
    __import__(m)
gc.collect()
a = gc.mem_alloc()
__import__(sys.argv[2])
gc.collect()
print("HEAP", gc.mem_alloc() - a)
"""


def _import_cost(script, before, done, m):
    with open(before, "w") as f:
        f.write("\n".join(done))
    p = subprocess.run([MICROPYTHON32, "-X", "heapsize=2M", script, before, m],
                       capture_output=True, text=True,
                       env=dict(os.environ, MICROPYPATH=".frozen:" + BUILD))
    return int(p.stdout.split("HEAP")[1]) if "HEAP" in p.stdout else None


def module_costs(tmp, modules):
    # The heap each module adds, imported after those that cost less alone
    # (so that, roughly, a module comes after what it imports).
    script = os.path.join(tmp, "modcost.py")
    with open(script, "w") as f:
        f.write(MODULE_SCRIPT)
    before = os.path.join(tmp, "before.txt")
    alone = {m: _import_cost(script, before, [], m) for m in modules}
    order = sorted(modules, key=lambda m: (alone[m] is None, alone[m] or 0, m))
    out = []
    done = []
    for m in order:
        out.append((m, _import_cost(script, before, done, m)))
        done.append(m)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    print("## Heap budget (issue 8)\n")
    if MICROPYTHON32 is None:
        print("Skipped: no 32-bit unix port (set MICROPYTHON32; ../shared/targets/unix32).\n")
        return
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_mpy.py"), "--board",
                    "unix", "--no-lines", "--quiet"], check=True)
    runs = 3 if a.quick else 10
    with tempfile.TemporaryDirectory(prefix="bench-heap-") as tmp:
        alloc, modules = idle(tmp)
        charging, after = after_session(tmp)
        fig = run(tmp, "1024k", 0)
        low = smallest(tmp, 128, 512, 16 if a.quick else 8, runs)
        rom_alloc = idle(tmp, True)[0]
        rom_fig = run(tmp, "1024k", 0, True)
        rom_low = smallest(tmp, 64, 512, 16 if a.quick else 8, runs, True)
        costs = module_costs(tmp, modules)
    print("32-bit unix port (`%s`), firmware as `.mpy` without line numbers, the simulated "
          "board's modules included; TLS buffers (mbedTLS) are in the GC heap on this "
          "port.\n" % os.path.relpath(MICROPYTHON32, ROOT))
    print("| figure | value |")
    print("|---|---|")
    print("| heap in use after boot, idle, connected over wss | %.1f KiB |" % (alloc / 1024))
    print("| same, while charging (a local list of 255, a card, MeterValues) | %.1f KiB |"
          % (charging / 1024))
    print("| same, idle again after that session (30 s after the EV left) | %.1f KiB |"
          % (after / 1024))
    if fig:
        print("| live peak during the scenario (sampled after a collection every 50 ms, %d "
              "samples) | %.1f KiB |" % (fig["samples"], fig["peak"] / 1024))
    print("| smallest `-X heapsize` that passes the scenario %d times out of %d | %d KiB |"
          % (runs, runs, low))
    print("| bytecode run in place from a ROMFS image (`tools/sim --romfs`, data only): "
          "idle, connected over wss | %.1f KiB |" % (rom_alloc / 1024))
    if rom_fig:
        print("| same, live peak during the scenario | %.1f KiB |" % (rom_fig["peak"] / 1024))
    print("| same, smallest heap beside the image that passes the scenario %d times out of %d "
          "| %d KiB |" % (runs, runs, rom_low))
    print()
    print("Heap each module loaded at boot adds, imported after those listed above it, "
          "in fresh processes (bytecode, qstrs, globals):\n")
    print("| module | KiB |")
    print("|---|---|")
    total = 0
    for m, b in costs:
        print("| `%s` | %s |" % (m, "%.1f" % (b / 1024) if b is not None else "import failed"))
        total += b or 0
    print("| all %d | %.1f |" % (len(costs), total / 1024))
    print()


if __name__ == "__main__":
    main()
