# OCPP 1.6J charge-point firmware (MicroPython) — host workflow.
# Only python3 and make are needed: everything else comes from PyPI into .venv
# (and, for the emulated Raspberry Pi Pico, the npm package rp2040js into
# node_modules when node is installed: package.json, package-lock.json).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell $(PYTHON) -c "import hashlib,sys;print(hashlib.sha1(open('requirements.txt','rb').read()).hexdigest()[:12])")
# Parallel test workers (pytest-xdist); override with `make test JOBS=1`.
JOBS   ?= auto
# Extra pytest arguments, e.g. `make test T="-k websocket"`.
T      ?=
# Options for tools/run, e.g. `make run ARGS="--web-port 8080 --fresh"`.
ARGS   ?=

NODE_STAMP := node_modules/.installed-$(shell $(PYTHON) -c "import hashlib;print(hashlib.sha1(open('package-lock.json','rb').read()).hexdigest()[:12])")

.PHONY: all venv node_modules test test32 lint run bench soak schema mpy clean

all: test

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(BIN)/pip install -q -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

# The RP2040 emulator for the real-port tests (host_tests/test_pico.py); those
# tests skip with a message when node is missing.
$(NODE_STAMP): package.json package-lock.json
	@if command -v npm >/dev/null; then \
	  npm ci --no-audit --no-fund --loglevel=error && rm -f node_modules/.installed-* && touch $@; \
	else echo "make: no npm: the emulated-Pico tests will skip"; fi

node_modules: $(NODE_STAMP)

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/python tools/build_mpy.py --quiet
	$(BIN)/python -m pytest -n $(JOBS) $(T) host_tests

# The whole suite with the firmware on the 32-bit unix port (MICROPYTHON32):
# objects the size they have on a board, small ints of 31 bits.
test32: $(STAMP) $(NODE_STAMP)
	@if [ -x "$(MICROPYTHON32)" ]; then \
	  MICROPYTHON=$(MICROPYTHON32) $(MAKE) --no-print-directory test; \
	else echo "make test32: no 32-bit port at $(MICROPYTHON32)"; exit 1; fi

# ruff over the whole tree (ruff.toml): firmware, boards, tools, tests, benches.
lint: $(STAMP)
	$(BIN)/ruff check .

run: $(STAMP)
	$(BIN)/python tools/run $(ARGS)

bench: $(STAMP) $(NODE_STAMP)
	$(BIN)/python bench/run_all.py

# The long campaigns (docs/reliability.md): 100,000 fuzzed CSMS frames,
# 10,000 power cuts and 500 link faults over 100 transactions on the host's
# port, then on the 32-bit one when it is there (MICROPYTHON32). Hours: each
# part may be shortened, e.g. `make soak SOAK_FRAMES=20000 SOAK_CUTS=1000`.
SOAK_FRAMES ?= 100000
SOAK_CUTS ?= 10000
SOAK_LANES ?= 8
SOAK_RING_CUTS ?= 2000
SOAK_FAULTS ?= 500
SOAK_TRANSACTIONS ?= 100
MICROPYTHON32 ?= $(abspath ../shared/targets/unix32/micropython)
soak: $(STAMP)
	$(BIN)/python tools/build_mpy.py --quiet
	$(BIN)/python tools/fuzz --frames $(SOAK_FRAMES) --seed 1 --quiet
	@if [ -x "$(MICROPYTHON32)" ]; then \
	  $(BIN)/python tools/fuzz --frames $(SOAK_FRAMES) --seed 2 --quiet --micropython $(MICROPYTHON32); \
	else echo "make soak: no 32-bit port at $(MICROPYTHON32): skipped"; fi
	$(BIN)/python tools/powercut --cuts $(SOAK_CUTS) --lanes $(SOAK_LANES) --seed 1 --quiet
	$(BIN)/python tools/powercut --cuts $(SOAK_RING_CUTS) --lanes $(SOAK_LANES) --seed 3 --queue ring --quiet
	@if [ -x "$(MICROPYTHON32)" ]; then \
	  $(BIN)/python tools/powercut --cuts $(SOAK_CUTS) --lanes $(SOAK_LANES) --seed 2 --quiet --micropython $(MICROPYTHON32); \
	else echo "make soak: no 32-bit port at $(MICROPYTHON32): skipped"; fi
	$(BIN)/python tools/linkfaults --faults $(SOAK_FAULTS) --transactions $(SOAK_TRANSACTIONS) --seed 1 --quiet
	@if [ -x "$(MICROPYTHON32)" ]; then \
	  $(BIN)/python tools/linkfaults --faults $(SOAK_FAULTS) --transactions $(SOAK_TRANSACTIONS) --seed 2 --quiet --micropython $(MICROPYTHON32); \
	else echo "make soak: no 32-bit port at $(MICROPYTHON32): skipped"; fi

# Regenerate mpocpp/protocol/schema.py and schema.bin from the JSON schemas in the ocpp package.
schema: $(STAMP)
	$(BIN)/python tools/gen_schema.py

# Cross-compile the firmware to .mpy (what deploy copies to a board).
mpy: $(STAMP)
	$(BIN)/python tools/build_mpy.py

clean:
	rm -rf build .pytest_cache node_modules
