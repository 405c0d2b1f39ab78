#!/usr/bin/env bash
# Click redirect benchmark: GET /l/{newsletter}/{link}, a counted link of a newsletter sent with
# `count_clicks`, at 64 connections, every request from a different reader (its own user agent),
# beside the ceiling measured in the same run: a bare actix-web handler answering the same path
# with a 302 (examples/redirect_ceiling.rs), no signature check, no counting, no middleware.
#
#   bench/clicks.sh                 # both databases
#   bench/clicks.sh sqlite          # or: postgres
#   DURATION=30s bench/clicks.sh
#
# For each backend: a fresh database, `enlace serve` (release, mail written to its outbox), one
# subscriber, a newsletter with two links sent to them with click counting on; the counted link
# is read from the message in the outbox, and wrk asks for it for DURATION. Then, once the counts
# are written (every 2 s), checks that every request wrk saw answered was counted as a person's
# click (each came from a different reader; at most one more per connection, the requests in
# flight when wrk stopped), none as a scanner's, and that every answer was the 302. Prints a Markdown table (target/bench/clicks.md) and machine-readable results
# (target/bench/clicks.tsv).
#
# Settings: DURATION (15s), CONNECTIONS (64), THREADS (2), PG_ADMIN_URL.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="${1:-both}"
DURATION="${DURATION:-15s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
APP_PORT=18093
CEILING_PORT=18083
COUNT=0
case "$MODE" in
  both) BACKENDS="sqlite postgres" ;;
  sqlite | postgres) BACKENDS="$MODE" ;;
  *) echo "usage: $0 [sqlite|postgres|both]" >&2; exit 2 ;;
esac

source bench/lib.sh
install_missing wrk=wrk sqlite3=sqlite3 psql=postgresql-client curl=curl

cargo build --release --quiet --bin enlace --example redirect_ceiling
BIN="${CARGO_TARGET_DIR:-target}/release/enlace"
CEILING="${CARGO_TARGET_DIR:-target}/release/examples/redirect_ceiling"
WORK="$(mktemp -d)"
OUT=target/bench
mkdir -p "$OUT"
pids=()
db=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$db" ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
seed_sql() { :; }

# Runs wrk against $1 (a URL); prints "rps p50_ms p99_ms requests non2xx errors".
load() {
  local result
  result="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s bench/clicks.lua "$1" | grep '^RESULT')"
  python3 - "$result" <<'PY'
import sys
f = dict(kv.split("=") for kv in sys.argv[1].split()[1:])
req, dur = int(f["requests"]), int(f["duration_us"]) / 1e6
print(f'{req / dur:.0f} {int(f["p50_us"]) / 1000:.2f} {int(f["p99_us"]) / 1000:.2f} {req} {f["non2xx"]} {f["errors"]}')
PY
}

echo "== ceiling: bare actix-web redirect"
port_free "$CEILING_PORT"
"$CEILING" "127.0.0.1:$CEILING_PORT" & pids+=($!)
wait_port "$CEILING_PORT"
target="https://example.org/town-hall?from=bench&amp;lang=en"
read -r c_rps c_p50 c_p99 _ _ _ < <(load "http://127.0.0.1:$CEILING_PORT/l/01a24db3-1cb4-7731-aa5d-be93868ef9e3/0.AAAAAAAAAAAAAAAAAAAAAA")
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
echo "ceiling: ${c_rps} req/s, p50 ${c_p50} ms, p99 ${c_p99} ms"

rows=()
: > "$OUT/clicks.tsv"   # bench, backend, case, unit, value, ceiling, detail
for backend in $BACKENDS; do
  fresh_database "$backend" clicks
  data="$WORK/data-$backend"
  port_free "$APP_PORT"
  ENLACE_DATABASE_URL="$url" ENLACE_LISTEN="127.0.0.1:$APP_PORT" ENLACE_DATA_DIR="$data" \
    ENLACE_PUBLIC_URL="http://127.0.0.1:$APP_PORT" ENLACE_CLIENT_MAX_REQUESTS=100000 ENLACE_RESULTS_MIN_COUNT=1 ENLACE_LOG=warn \
    ENLACE_POSTAL_ADDRESS="Enlace Bench, 1 Main St, Phoenix AZ 85001" "$BIN" serve > "$WORK/serve.log" 2>&1 & app=$!; pids+=($app)
  wait_port "$APP_PORT"
  api="http://127.0.0.1:$APP_PORT/api/v1"
  token=$(curl -sf "$api/auth/token" -H 'Content-Type: application/json' \
    -d '{"email":"admin@example.org","password":"bench-password-0123456789"}' | json 'd["access_token"]')
  auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/json')
  curl -sf "${auth[@]}" "$api/subscribers" \
    -d '{"email":"reader@example.org","consent":{"mode":"recorded","source":"bench","note":"asked for the news"}}' >/dev/null
  id=$(curl -sf "${auth[@]}" "$api/newsletters" -d "$(python3 -c 'import json,sys; print(json.dumps({
    "subject": "Town hall", "count_clicks": True, "filter": {"language": "en"},
    "html": "<p><a href=\"" + sys.argv[1] + "\">Town hall</a> · <a href=\"https://example.org/donate\">Donate</a></p>"}))' "$target")" \
    | json 'd["id"]')
  curl -sf "${auth[@]}" -X POST "$api/newsletters/$id/send" -d '{}' >/dev/null
  for _ in $(seq 1 100); do
    [ "$(curl -sf "${auth[@]}" "$api/newsletters/$id" | json 'd["status"]')" = sent ] && break
    sleep 0.2
  done
  link=$(python3 - "$data/outbox" <<'PY'
import email, email.policy, pathlib, re, sys
for path in pathlib.Path(sys.argv[1]).rglob("*.eml"):
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    html = msg.get_body(("html",)).get_content()
    links = re.findall(r'href="([^"]*/l/[^"]*)"', html)
    if links:
        print(links[0]); break
PY
)
  [ -n "$link" ] || { echo "no counted link in the outbox" >&2; cat "$WORK/serve.log" >&2; exit 1; }
  where=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -A 'Mozilla/5.0 check' "$link")
  expected="302 ${target//&amp;/\&}"
  [ "$where" = "$expected" ] || { echo "the link answers '$where', not '$expected'" >&2; exit 1; }
  echo "== $backend: $link"
  read -r rps p50 p99 requests non2xx errors < <(load "$link")
  sleep 6   # the counts are written every 2 s; a reader's click is counted 2 s after it
  counted=$(curl -sf "${auth[@]}" "$api/newsletters/$id/results" | json 'd["clicks"]["clicks"]')
  scanners=$(curl -sf "${auth[@]}" "$api/newsletters/$id/results" | json 'd["clicks"]["scanner_clicks"]')
  kill "$app"; wait "$app" 2>/dev/null || true
  [ -n "$db" ] && { psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; db=""; }
  ratio=$(python3 -c "print(f'{$rps / $c_rps * 100:.1f}')")
  # The check's own click, then every request wrk saw answered, and at most one more per
  # connection: requests still in flight when wrk stops are answered and counted, unseen by wrk.
  expected_count=$((requests + 1))
  ok="yes"
  [ "$counted" -ge "$expected_count" ] && [ "$counted" -le $((expected_count + CONNECTIONS)) ] \
    && [ "$non2xx" = 0 ] && [ "$errors" = 0 ] && [ "$scanners" = 0 ] || ok="NO"
  echo "$backend: ${rps} req/s (${ratio}% of ceiling), p50 ${p50} ms, p99 ${p99} ms, ${requests} requests," \
       "${non2xx} errors; clicks counted ${counted} (${expected_count} answered to wrk), scanner clicks ${scanners}"
  rows+=("| $name | $rps | $p50 | $p99 | $ratio % | $counted (wrk saw $expected_count answered) |")
  printf 'clicks\t%s\tredirect\treq/s\t%s\t%s\tp99 %s ms; %s clicks counted, %s answers seen\n' "$backend" "$rps" "$c_rps" "$p99" "$counted" "$expected_count" >> "$OUT/clicks.tsv"
  [ "$ok" = yes ] || { echo "FAILED: clicks lost or wrong answers on $backend" >&2; exit 1; }
done

{
  echo "| run | requests/s | p50 ms | p99 ms | of ceiling | clicks counted |"
  echo "|---|---|---|---|---|---|"
  echo "| ceiling (bare actix-web redirect) | $c_rps | $c_p50 | $c_p99 | 100 % | — |"
  printf '%s\n' "${rows[@]}"
} | tee "$OUT/clicks.md"
