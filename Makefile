# The README's two commands are `make demo` and `make test`. Both set up everything they need
# (a virtualenv in .venv, the package built from source, the test tools) on a fresh machine
# that has Python >= 3.10 and a Rust toolchain.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: help demo test test-rust test-loom test-python lint bench check-platforms clean

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
	$(VENV)/bin/ruff check python tests benchmarks
	$(VENV)/bin/ruff format --check python tests benchmarks
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest memspace._memspace --allowlist .stubtest-allowlist

test-rust: ## cargo test for the workspace
	cargo test --workspace

test-loom: ## loom model checks of the lock-free protocols (own target dir: different cfg)
	RUSTFLAGS="--cfg loom" cargo test -p memspace --lib --release --target-dir target/loom loom

test-python: ## pytest (real processes, crash tests)
	$(PY) -m pytest

bench: $(PY) ## Run the side-by-side benchmarks (installs the peers)
	$(PIP) install --quiet -e ".[demo]" -r benchmarks/requirements.txt -r benchmarks/requirements-fs.txt
	$(PY) benchmarks/run.py

check-platforms: ## cargo check the core for macOS and Windows (adds the rustup targets)
	rustup target add x86_64-apple-darwin x86_64-pc-windows-msvc
	cargo check -p memspace --all-targets --target x86_64-apple-darwin
	cargo check -p memspace --all-targets --target x86_64-pc-windows-msvc

clean: ## Remove build products and the virtualenv
	rm -rf target $(VENV) .pytest_cache .mypy_cache .ruff_cache
