#!/usr/bin/env bash
# `make miri` in CI: Miri over the pure protocols and decoders on heap memory (issue #11).
# A missing tool is never a failure: without nightly Rust (and rustup to install it) or the
# miri component this says why and exits 0. Undefined behaviour Miri finds is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
    echo "miri: SKIPPED ($*)" >&2
    exit 0
}

if ! cargo +nightly --version >/dev/null 2>&1; then
    command -v rustup >/dev/null 2>&1 || skip "no nightly Rust and no rustup to install it"
    rustup toolchain install nightly --profile minimal >&2 || skip "nightly Rust cannot be installed"
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup component add miri rust-src --toolchain nightly >&2 || skip "the miri component cannot be installed"
fi
t0=$(date +%s)
make miri
echo "miri: done in $(($(date +%s) - t0)) s" >&2
