#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (libFuzzer, nightly Rust).
#
#   .ci/fuzz.sh smoke SECONDS [TARGET...]   CI: new inputs go to a temporary folder, the saved
#                                           corpus and regressions are read, nothing is written
#   .ci/fuzz.sh long SECONDS [TARGET...]    make fuzz: new inputs are added to fuzz/corpus/,
#                                           which is then minimised (cargo fuzz cmin)
#
# A missing tool is never a failure: without nightly Rust (and rustup to install it) or
# cargo-fuzz (installed from crates.io when missing) this says why and exits 0. A crash, a
# panic, a timeout (an input slower than 10 s) or an out-of-memory found is a failure: the
# input is in fuzz/artifacts/<target>/, replay it with
#   FUZZ_INPUT=<target>:$PWD/<file> cargo test -p memspace --lib fuzzing::tests::one_input -- --nocapture
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:?usage: .ci/fuzz.sh smoke|long SECONDS [TARGET...]}
seconds=${2:?usage: .ci/fuzz.sh smoke|long SECONDS [TARGET...]}
shift 2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    # The [[bin]] names of fuzz/Cargo.toml, in order.
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | tail -n +2)
fi

skip() {
    echo "fuzz: SKIPPED ($*); the saved corpus is still replayed by cargo test" >&2
    exit 0
}

if ! cargo +nightly --version >/dev/null 2>&1; then
    command -v rustup >/dev/null 2>&1 || skip "no nightly Rust and no rustup to install it"
    rustup toolchain install nightly --profile minimal >&2 || skip "nightly Rust cannot be installed"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz from crates.io" >&2
    cargo install cargo-fuzz --locked >&2 || skip "cargo-fuzz cannot be installed"
fi

t0=$(date +%s)
cargo +nightly fuzz build >&2
echo "fuzz: built ${#targets[@]} targets in $(($(date +%s) - t0)) s" >&2

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
summary=()
for t in "${targets[@]}"; do
    dirs=()
    if [ "$mode" = long ]; then
        mkdir -p "fuzz/corpus/$t"
        dirs+=("fuzz/corpus/$t")
    else
        mkdir -p "$scratch/$t"
        dirs+=("$scratch/$t")
        [ -d "fuzz/corpus/$t" ] && dirs+=("fuzz/corpus/$t")
    fi
    [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
    log="$scratch/$t.log"
    start=$(date +%s)
    if ! cargo +nightly fuzz run "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz: target $t FAILED (input saved under fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    summary+=("$t: ${runs:-?} runs in $(($(date +%s) - start)) s")
    if [ "$mode" = long ]; then
        cargo +nightly fuzz cmin "$t" "fuzz/corpus/$t" >"$log" 2>&1 || {
            tail -n 30 "$log" >&2
            exit 1
        }
    fi
done
printf 'fuzz: %s\n' "${summary[@]}" >&2
echo "fuzz: total $(($(date +%s) - t0)) s" >&2
