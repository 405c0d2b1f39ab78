#!/usr/bin/env bash
# Signups per second of two `enlace` binaries on SQLite, alternating, ROUNDS times each: the same
# settings as bench/subscribe.sh (64 connections for DURATION, no answer floor, no rate limits),
# without its ceiling and its wait for the confirmations. For telling whether a change slowed the
# signup path: build the two commits, then
#
#   bench/compare-signups.sh /tmp/enlace-before /tmp/enlace-after
set -euo pipefail
cd "$(dirname "$0")/.."
A="$1"; B="$2"
ROUNDS="${ROUNDS:-2}"
DURATION="${DURATION:-10s}"
PORT=18090
command -v wrk >/dev/null || .ci/apt-install wrk

run() {
  local bin=$1 work pid result
  work=$(mktemp -d)
  ENLACE_DATABASE_URL="sqlite://$work/bench.db" ENLACE_LISTEN="127.0.0.1:$PORT" ENLACE_DATA_DIR="$work/data" \
    ENLACE_PUBLIC_RATE_LIMIT=0 ENLACE_SIGNUP_ANSWER_MS=0 ENLACE_CLIENT_MAX_REQUESTS=100000 ENLACE_LOG=error \
    ENLACE_MAIL_CONCURRENCY=16 ENLACE_DB_POOL_SIZE=16 ENLACE_SMTP_URL=smtp://127.0.0.1:1 "$bin" serve &
  pid=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  result=$(wrk -t2 -c64 -d"$DURATION" -s bench/subscribe.lua "http://127.0.0.1:$PORT" | grep '^RESULT')
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$work"
  python3 -c "import sys; f = dict(kv.split('=') for kv in sys.argv[1].split()[1:]); print(round(int(f['requests']) / (int(f['duration_us']) / 1e6)), 'req/s,', f['non2xx'], 'non-2xx')" "$result"
}

for i in $(seq 1 "$ROUNDS"); do
  echo "round $i: $A: $(run "$A")"
  echo "round $i: $B: $(run "$B")"
done
