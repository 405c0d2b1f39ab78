#!/usr/bin/env bash
# Subscribe benchmark: POST /api/v1/subscribe with distinct addresses, 64 connections for 10 s,
# on SQLite and on PostgreSQL, against a bare actix-web handler (same JSON, answers 202) measured
# in the same run as the ceiling. Afterwards it waits for the mail worker and checks that every
# accepted signup's confirmation reached a local SMTP sink (postfix's smtp-sink on loopback).
#
#   bench/subscribe.sh                 # both databases
#   BACKENDS=sqlite bench/subscribe.sh
# The signup answer floor (ENLACE_SIGNUP_ANSWER_MS) is turned off: it holds each answer, not the
# server, so with it 64 connections could send at most 64 / 0.05 s = 1,280 requests a second
# whatever the server can take, and this measures what the server can take.
# Prints one line per run and a Markdown table (also written to target/bench/subscribe.md, and
# machine-readable to target/bench/subscribe.tsv).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
BACKENDS="${BACKENDS:-sqlite postgres}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
APP_PORT=18080
CEILING_PORT=18081
SINK_PORT=12525

if ! command -v wrk >/dev/null || [ ! -x /usr/sbin/smtp-sink ]; then
  .ci/apt-install wrk postfix
fi

cargo build --release --quiet --bin enlace --example ceiling
BIN="${CARGO_TARGET_DIR:-target}/release/enlace"
CEILING="${CARGO_TARGET_DIR:-target}/release/examples/ceiling"
WORK="$(mktemp -d)"
OUT=target/bench
mkdir -p "$OUT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; exit 1; }

# Runs wrk against port $1; prints "rps p50_ms p99_ms requests non2xx".
load() {
  local result
  result="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s bench/subscribe.lua "http://127.0.0.1:$1" | grep '^RESULT')"
  python3 - "$result" <<'PY'
import sys
f = dict(kv.split("=") for kv in sys.argv[1].split()[1:])
req, dur = int(f["requests"]), int(f["duration_us"]) / 1e6
print(f'{req / dur:.0f} {int(f["p50_us"]) / 1000:.2f} {int(f["p99_us"]) / 1000:.2f} {req} {f["non2xx"]}')
PY
}

sink_count() { python3 -c "import re,sys; m=re.findall(r'mesg=(\d+)', open(sys.argv[1], errors='replace').read()); print(m[-1] if m else 0)" "$1"; }

echo "== ceiling: bare actix-web handler"
"$CEILING" "127.0.0.1:$CEILING_PORT" & pids+=($!)
wait_port "$CEILING_PORT"
read -r c_rps c_p50 c_p99 _ _ < <(load "$CEILING_PORT")
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
echo "ceiling: ${c_rps} req/s, p50 ${c_p50} ms, p99 ${c_p99} ms"

rows=()
: > "$OUT/subscribe.tsv"   # machine-readable: bench, backend, case, unit, value, ceiling, detail
for backend in $BACKENDS; do
  case "$backend" in
    sqlite) url="sqlite://$WORK/bench.db" ;;
    postgres)
      db="enlace_bench_$$"
      psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
      url="${PG_ADMIN_URL%/*}/$db" ;;
    *) echo "unknown backend $backend" >&2; exit 1 ;;
  esac
  : > "$WORK/sink.out"
  /usr/sbin/smtp-sink -c -u nobody "127.0.0.1:$SINK_PORT" 1024 > "$WORK/sink.out" 2>&1 & sink=$!; pids+=($sink)
  wait_port "$SINK_PORT"
  ENLACE_DATABASE_URL="$url" ENLACE_LISTEN="127.0.0.1:$APP_PORT" ENLACE_DATA_DIR="$WORK/data-$backend" \
    ENLACE_SMTP_URL="smtp://127.0.0.1:$SINK_PORT" ENLACE_PUBLIC_RATE_LIMIT=0 ENLACE_SIGNUP_ANSWER_MS=0 ENLACE_CLIENT_MAX_REQUESTS=100000 ENLACE_LOG=warn \
    ENLACE_MAIL_CONCURRENCY=16 ENLACE_DB_POOL_SIZE=16 ENLACE_METRICS_TOKEN=bench "$BIN" serve & app=$!; pids+=($app)
  wait_port "$APP_PORT"
  echo "== $backend"
  read -r rps p50 p99 requests non2xx < <(load "$APP_PORT")
  # Every 202 is a stored signup whose confirmation must reach the sink.
  start=$(date +%s)
  while :; do
    depth=$(curl -s -H 'Authorization: Bearer bench' "http://127.0.0.1:$APP_PORT/metrics" | awk '/^enlace_queue_depth /{print $2}')
    [ "$depth" = "0" ] && break
    [ $(( $(date +%s) - start )) -gt 600 ] && { echo "mail queue did not drain (depth $depth)"; break; }
    sleep 1
  done
  drain=$(( $(date +%s) - start ))
  pending=$(curl -s -H 'Authorization: Bearer bench' "http://127.0.0.1:$APP_PORT/metrics" | awk -F' ' '/^enlace_subscribers\{status="pending"\}/{print $2}')
  sleep 1
  received=$(sink_count "$WORK/sink.out")
  kill "$app"; wait "$app" 2>/dev/null || true
  kill "$sink"; wait "$sink" 2>/dev/null || true
  [ "$backend" = postgres ] && psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  ratio=$(python3 -c "print(f'{$rps / $c_rps * 100:.1f}')")
  echo "$backend: ${rps} req/s (${ratio}% of ceiling), p50 ${p50} ms, p99 ${p99} ms, ${requests} requests, ${non2xx} non-2xx;" \
       "subscribers pending ${pending}, confirmations received ${received} (queue drained in ${drain} s)"
  rows+=("| $backend | $rps | $p50 | $p99 | $ratio % | $pending | $received |")
  printf 'subscribe\t%s\tsignups\treq/s\t%s\t%s\tp99 %s ms\n' "$backend" "$rps" "$c_rps" "$p99" >> "$OUT/subscribe.tsv"
done

{
  echo "| run | requests/s | p50 ms | p99 ms | of ceiling | signups stored | confirmations at the sink |"
  echo "|---|---|---|---|---|---|---|"
  echo "| ceiling (bare actix-web) | $c_rps | $c_p50 | $c_p99 | 100 % | — | — |"
  printf '%s\n' "${rows[@]}"
} | tee "$OUT/subscribe.md"
