# The README's two commands are `make demo` and `make test`. Both set up everything they need
# (a virtualenv in .venv, the package built from source, the test tools) on a fresh machine
# that has Python >= 3.10 and a Rust toolchain.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

# The free-threaded interpreter (CPython 3.14 built with --disable-gil: PyO3 supports no
# free-threaded 3.13) lives in a cache shared by every checkout; its virtualenv and cargo
# target directory are this checkout's own.
FT_VERSION ?= 3.14
FT_PREFIX ?= $(HOME)/.cache/memspace/python-ft-$(FT_VERSION)
FT_VENV   ?= .venv-ft
FT_PY     := $(FT_VENV)/bin/python

.PHONY: help demo test test-rust test-loom test-python test-free-threaded lint bench check-platforms clean \
	fuzz fuzz-smoke miri

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

demo: $(PY) ## Install memspace (with numpy) and run `memspace demo`
	@echo "make demo: building memspace from source into $(VENV) (the Rust extension compiles"
	@echo "  in release mode: about 3-4 minutes on 2 cores the first time, quiet meanwhile;"
	@echo "  seconds after that), then running 'memspace demo' (about a minute)."
	$(PIP) install --quiet ".[demo]"
	$(VENV)/bin/memspace demo

test: $(PY) ## Install the test tools and run every test and check (what CI runs)
	@echo "make test: building memspace and installing the test tools into $(VENV) (a few"
	@echo "  minutes the first time), then lint, cargo test, loom and pytest: about 5 minutes"
	@echo "  on an idle 2-core machine once built, 10-15 on a busy one."
	$(PIP) install --quiet -e ".[test]"
	$(MAKE) lint test-rust test-loom test-python

lint: ## Formatting, clippy, ruff, mypy, stubtest
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check python tests benchmarks tools
	$(VENV)/bin/ruff format --check python tests benchmarks tools
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest memspace._memspace --allowlist .stubtest-allowlist

test-rust: ## cargo test for the workspace
	cargo test --workspace

test-loom: ## loom model checks of the lock-free protocols (own target dir: different cfg)
	RUSTFLAGS="--cfg loom" cargo test -p memspace --lib --release --target-dir target/loom loom

test-python: ## pytest (real processes, crash tests)
	$(PY) -m pytest

test-free-threaded: ## Build a free-threaded CPython (once, cached) and run pytest on it, GIL off
	FT_SOURCE="$(FT_SOURCE)" tools/build-python-ft.sh $(FT_PREFIX) $(FT_VERSION)
	test -x $(FT_PY) || $(FT_PREFIX)/bin/python$(FT_VERSION)t -m venv $(FT_VENV)
	$(FT_PY) -m pip install --quiet --upgrade pip
	@# The test extra without the lint tools (lint runs on the default build).
	$(FT_PY) -c "import tomllib; t = tomllib.load(open('pyproject.toml', 'rb')); \
	    print('\n'.join(d for d in t['project']['optional-dependencies']['test'] \
	    if not d.startswith(('mypy', 'ruff'))))" > $(FT_VENV)/test-requirements.txt
	$(FT_PY) -m pip install --quiet --only-binary=:all: -r $(FT_VENV)/test-requirements.txt
	CARGO_TARGET_DIR=$(CURDIR)/target/free-threaded $(FT_PY) -m pip install --quiet --no-deps .
	@# Importing every module must leave the GIL off and warn about nothing (an extension that
	@# does not declare free-threading support turns the GIL back on with a RuntimeWarning).
	$(FT_PY) -W error -c "import sys, memspace, memspace.cli, memspace.fs._fsspec, \
	    memspace.pytest_plugin, numpy, pandas, pyarrow; \
	    assert not sys._is_gil_enabled(), 'the GIL is enabled'; \
	    print('free-threaded:', sys.version.split()[0], memspace.__file__)"
	$(FT_PY) -m pytest -p tools.pytest_gil_off

# Fuzzing (issue #11). The cargo-fuzz targets live in fuzz/ (nightly Rust, libFuzzer; the
# script installs cargo-fuzz if it is missing and skips, saying why, without nightly); their
# saved corpus is replayed on stable by `cargo test` (memspace::fuzzing). The Python corruption
# fuzzer runs a short version in `make test` (tests/hostile/test_corruption_fuzz.py).
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 15

fuzz: $(PY) ## Long fuzzing: each cargo-fuzz target FUZZ_SECONDS (600) s, then the Python fuzzers at length
	.ci/fuzz.sh long $(FUZZ_SECONDS)
	MEMSPACE_FUZZ_CASES=5000 MEMSPACE_FUZZ_LIVE=300 MEMSPACE_FUZZ_SECONDS=0.2 MEMSPACE_FUZZ_EXAMPLES=5000 \
		$(PY) -m pytest -s -q tests/hostile/test_corruption_fuzz.py tests/hostile/test_archive_names.py

fuzz-smoke: ## Each cargo-fuzz target for FUZZ_SMOKE_SECONDS (15) s, nothing saved (what CI runs)
	.ci/fuzz.sh smoke $(FUZZ_SMOKE_SECONDS)

# Miri runs the unit tests that touch no operating system: the ring's and the queue's protocols
# and the mutex word on heap memory, the eventcount (threads and futexes, which Miri models),
# parts, the value codec, paths, globs, the frame and geometry helpers, and each fuzz target's
# generated cases (the header codec and the channels over a mapping-like heap arena among
# them). Tests in these modules that read /proc or the wall clock are
# `#[cfg_attr(miri, ignore)]`. Proptest runs 4 cases per property. Weak-memory emulation is
# off: this Miri aborts (an internal error, not a finding) on the fuzz arena's mix of atomic
# and plain accesses to one word in one thread. The broadcast core's heap tests are in too
# (its fuzz target runs in fuzzing::tests::miri_smoke with the others).
MIRI_TESTS ?= spsc::core mpmc::core mpmc::parts view::codec shm::header channel:: \
	lock::eventcount fs::path fs::glob fuzzing::tests::miri_smoke lock::mutex::tests::heap_ \
	broadcast::core
MIRI_ENV := PROPTEST_CASES=4 PROPTEST_DISABLE_FAILURE_PERSISTENCE=1 \
	MIRIFLAGS="-Zmiri-disable-weak-memory-emulation -Zmiri-env-forward=PROPTEST_CASES \
	-Zmiri-env-forward=PROPTEST_DISABLE_FAILURE_PERSISTENCE"
# The shared filesystem's heap-region tests (its allocator and name index) and its fuzz
# target's generated cases read the wall clock and the process id, so they run in a second
# pass with isolation off (the same code on heap memory; nothing in them touches a file).
MIRI_OPEN_TESTS ?= fs::shared::tests::heap fuzzing::tests::miri_shared_fs
MIRI_ENV_OPEN := PROPTEST_CASES=2 PROPTEST_DISABLE_FAILURE_PERSISTENCE=1 \
	MIRIFLAGS="-Zmiri-disable-isolation -Zmiri-disable-weak-memory-emulation \
	-Zmiri-env-forward=PROPTEST_CASES -Zmiri-env-forward=PROPTEST_DISABLE_FAILURE_PERSISTENCE"

miri: ## Miri over the pure protocols and decoders (nightly with the miri component)
	$(MIRI_ENV) cargo +nightly miri test -p memspace --lib -- $(MIRI_TESTS)
	$(MIRI_ENV_OPEN) cargo +nightly miri test -p memspace --lib -- $(MIRI_OPEN_TESTS)

bench: $(PY) ## Run the side-by-side benchmarks (installs the peers); BENCH_ARGS="--quick ring"
	$(PIP) install --quiet -e ".[demo]" -r benchmarks/requirements.txt -r benchmarks/requirements-fs.txt
	$(PY) benchmarks/run.py $(BENCH_ARGS)

check-platforms: ## cargo check the core for macOS and Windows (adds the rustup targets)
	rustup target add x86_64-apple-darwin x86_64-pc-windows-msvc
	cargo check -p memspace --all-targets --target x86_64-apple-darwin
	cargo check -p memspace --all-targets --target x86_64-pc-windows-msvc

clean: ## Remove build products and the virtualenv
	rm -rf target $(VENV) $(FT_VENV) .pytest_cache .mypy_cache .ruff_cache
