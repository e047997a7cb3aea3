#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 60) and fails
# if any of them finds a crash (panic, sanitizer report, timeout or OOM).
#
#   scripts/fuzz.sh [SECONDS]
#
# cargo-fuzz needs nightly -Z flags; on the stable toolchain RUSTC_BOOTSTRAP=1
# unlocks them. Targets are built once (release, debug assertions, ASan), then
# each runs with the committed seeds in fuzz/corpus/<target> (read only) plus
# a working corpus in fuzz/target/corpus/<target> that grows across runs on
# the same machine. Crashing inputs land in fuzz/artifacts/<target>/; replay
# one with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
case $secs in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 2
    ;;
esac

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

targets=$(cargo fuzz list)
start=$(date +%s)
cargo fuzz build
echo "fuzz: built $(echo "$targets" | wc -w) targets in $(($(date +%s) - start))s"

logs=fuzz/target/logs
mkdir -p "$logs"
failed=()
for t in $targets; do
    work=fuzz/target/corpus/$t
    mkdir -p "$work" "fuzz/corpus/$t"
    t0=$(date +%s)
    if cargo fuzz run "$t" "$work" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -timeout=25 -print_final_stats=1 >"$logs/$t.log" 2>&1; then
        runs=$(grep -o 'Done [0-9]* runs' "$logs/$t.log" | tail -1 || true)
        echo "fuzz: $t ok (${runs:-?}, $(($(date +%s) - t0))s)"
    else
        echo "fuzz: $t FAILED after $(($(date +%s) - t0))s; log: $logs/$t.log" >&2
        grep -E -A12 "panicked at|ERROR: (libFuzzer|AddressSanitizer)" "$logs/$t.log" | head -40 >&2 || true
        ls fuzz/artifacts/"$t"/ 2>/dev/null | sed "s|^|  fuzz/artifacts/$t/|" >&2 || true
        failed+=("$t")
    fi
done

echo "fuzz: total $(($(date +%s) - start))s"
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: crashes in: ${failed[*]}" >&2
    exit 1
fi
