#!/usr/bin/env bash
# Every benchmark in one run, on SQLite and PostgreSQL, each with its ceiling measured in the same
# run; then rewrites the generated section of docs/benchmarks.md and draws docs/benchmarks.png.
#
#   bench/all.sh            # subscribe, blast, export, segments, clicks; about 12 minutes on 2 cores after the build
#   BENCHES="segments export" bench/all.sh    # a subset (the doc then shows only those)
#
# Run it on an otherwise idle machine: the load generator, Enlace, the database and the SMTP sink
# share its cores, and anything else running moves the figures. The scripts' own settings
# (COUNT, CONCURRENCY, DURATION, …) are passed through. A benchmark that fails (a missing or
# duplicated message, a wrong count) is reported at the end and makes the run exit non-zero; what
# the others measured is still written.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCHES="${BENCHES:-subscribe blast export segments clicks}"
VENV="${ENLACE_BENCH_VENV:-/var/tmp/enlace-bench-venv}"
OUT=target/bench
mkdir -p "$OUT"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r bench/requirements.txt
fi

# Build once before anything is timed.
cargo build --release --quiet --bin enlace --example ceiling --example blast_ceiling --example redirect_ceiling

rm -f "$OUT"/{subscribe,blast,export,segments,clicks}.tsv
failed=()
for bench in $BENCHES; do
  echo "=================== bench/$bench"
  start=$(date +%s)
  case "$bench" in
    subscribe) bench/subscribe.sh ;;
    blast | export | segments | clicks) "bench/$bench.sh" both ;;
    *) echo "unknown benchmark $bench" >&2; false ;;
  esac || failed+=("$bench")
  echo "=================== bench/$bench took $(( $(date +%s) - start )) s"
done

cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/{printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
os=$(. /etc/os-release && echo "$PRETTY_NAME")
pg=$(psql "${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}" -Atc 'SHOW server_version' 2>/dev/null | cut -d' ' -f1 || echo "?")
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src migrations 2>/dev/null || commit="$commit with uncommitted changes"
"$VENV/bin/python" bench/report.py --results "$OUT" --doc docs/benchmarks.md --chart docs/benchmarks.png \
  --date "$(date -u +%Y-%m-%d)" --commit "$commit" \
  --machine "$(nproc) × $cpu, $mem, $os, PostgreSQL $pg, loopback only"

if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
