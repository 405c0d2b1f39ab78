#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 60), one after another, from the
# committed seeds. Exits non-zero, and keeps the crashing input under fuzz/artifacts/, when a
# target finds a crash.
#
#   bash fuzz/run.sh 60                  # every target, 60 s each
#   bash fuzz/run.sh 300 template        # one target
#
# Needs the nightly toolchain (installed with rustup when missing) and cargo-fuzz (installed
# into ~/.cargo when missing). Builds without a sanitizer: Enlace is safe Rust, and a panic is
# what the targets look for. FUZZ_JOBS (default 1) runs that many workers per target.
# CARGO_TARGET_DIR, when set, is where the build goes (else fuzz/target).
set -euo pipefail

seconds="${1:-60}"
shift || true
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(segment_filter csv_import template token)
fi
parallel=()
if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then
    parallel=("-jobs=$FUZZ_JOBS" "-workers=$FUZZ_JOBS")
fi
work="$(mktemp -d)"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

export PATH="$HOME/.cargo/bin:$PATH"
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi

cd "$here/.."
started=$(date +%s)
# One build of every target (cargo fuzz builds all when given none).
if ! cargo +nightly fuzz build --sanitizer none >"$work/build.log" 2>&1; then
    tail -n 30 "$work/build.log" >&2
    echo "fuzz build failed" >&2
    exit 1
fi
built=$(( $(date +%s) - started ))
echo "fuzz build: ${built}s"

failed=0
for target in "${targets[@]}"; do
    # Fresh inputs go to a scratch corpus; the committed seeds are read, never rewritten.
    mkdir -p "$work/$target" "$here/artifacts/$target"
    dict=()
    if [ -f "$here/dicts/$target.dict" ]; then
        dict=("-dict=$here/dicts/$target.dict")
    fi
    t0=$(date +%s)
    if cargo +nightly fuzz run --sanitizer none "$target" "$work/$target" "$here/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$here/artifacts/$target/" \
        "${dict[@]}" "${parallel[@]}" >"$work/$target.log" 2>&1; then
        runs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$work/$target.log" | grep -o '[0-9]*$' || echo "?")
        echo "$target: ok, ${runs} runs in $(( $(date +%s) - t0 ))s"
    else
        failed=1
        echo "$target: FAILED after $(( $(date +%s) - t0 ))s; input in fuzz/artifacts/$target/" >&2
        grep -E 'panicked|ERROR|SUMMARY' "$work/$target.log" | head -n 10 >&2 || true
    fi
done
echo "fuzzing: $(( $(date +%s) - started ))s in all"
exit "$failed"
