#!/usr/bin/env bash
# Segment count benchmark: POST /api/v1/segments/count (what the console's segment builder asks at
# every change) and POST /api/v1/segments/preview (the count and a sample of ten) over 1,000,000
# subscribers, on SQLite and/or PostgreSQL, against the same count written by hand in SQL and run
# by the database's own client (sqlite3 / psql) in the same run, as the ceiling.
#
#   bench/segments.sh                 # both databases
#   bench/segments.sh sqlite          # or: postgres
#   COUNT=100000 bench/segments.sh sqlite
#
# For each backend: seeds COUNT subscribers straight into a fresh database (one transaction:
# two languages, three e-mail domains, 90 % confirmed, half with one of two interests, a `city`
# attribute, sign-up dates spread over 2026), declares the `city` field, starts `enlace serve`
# (release), and for each filter below asks for the count, then the preview, REPS times each
# (after one warm-up) and takes the median wall time seen by curl; then runs the hand-written SQL count REPS times (after
# one warm-up) in one sqlite3 or psql session and takes the median time the client reports.
# Checks that Enlace's counts equal the hand-written one. Prints a Markdown table (also written
# to target/bench/segments.md) and machine-readable results (target/bench/segments.tsv).
#
# Settings: COUNT (1000000), REPS (7), PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="${1:-both}"
COUNT="${COUNT:-1000000}"
REPS="${REPS:-7}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
APP_PORT=18092
case "$MODE" in
  both) BACKENDS="sqlite postgres" ;;
  sqlite | postgres) BACKENDS="$MODE" ;;
  *) echo "usage: $0 [sqlite|postgres|both]" >&2; exit 2 ;;
esac

source bench/lib.sh
install_missing sqlite3=sqlite3 psql=postgresql-client curl=curl

cargo build --release --quiet --bin enlace
BIN="${CARGO_TARGET_DIR:-target}/release/enlace"
WORK="$(mktemp -d)"
OUT=target/bench
mkdir -p "$OUT"
app=""
db=""
cleanup() {
  [ -n "$app" ] && kill "$app" 2>/dev/null || true
  if [ -n "$db" ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

median() { python3 -c "import statistics,sys; print(f'{statistics.median(float(x) for x in sys.argv[1:]):.2f}')" "$@"; }

# The filters: name, Enlace's JSON filter, and the same set as SQL conditions on `subscribers`
# (SQLite's, then PostgreSQL's where they differ). Every count is of confirmed subscribers.
NAMES=(language interest attribute combined)
declare -A FILTER SQL_SQLITE SQL_PG
FILTER[language]='{"language":"es"}'
SQL_SQLITE[language]="language = 'es'"
FILTER[interest]='{"interest":"news"}'
SQL_SQLITE[interest]="id IN (SELECT subscriber_id FROM subscriber_interests WHERE interest_slug = 'news')"
FILTER[attribute]='{"attribute":{"key":"city","op":"eq","value":"Phoenix"}}'
SQL_SQLITE[attribute]="json_extract(attributes, '\$.city') = 'Phoenix'"
SQL_PG[attribute]="attributes::jsonb ->> 'city' = 'Phoenix'"
FILTER[combined]='{"all":[{"language":"en"},{"any":[{"interest":"volunteers"},{"email_domain":"correo.mx"}]},{"created":{"after":"2026-07-01T00:00:00Z"}},{"not":{"attribute":{"key":"city","op":"in","value":["Mesa","Yuma"]}}}]}'
SQL_SQLITE[combined]="language = 'en' AND (id IN (SELECT subscriber_id FROM subscriber_interests WHERE interest_slug = 'volunteers') OR email LIKE '%@correo.mx') AND created_at >= '2026-07-01 00:00:00' AND coalesce(json_extract(attributes, '\$.city') NOT IN ('Mesa', 'Yuma'), 1)"
# PostgreSQL keeps `IN (subquery)` under OR as a subplan that outgrows work_mem and is then
# scanned once per row; by hand one writes EXISTS there (Enlace does too).
SQL_PG[interest]="EXISTS (SELECT 1 FROM subscriber_interests si WHERE si.subscriber_id = subscribers.id AND si.interest_slug = 'news')"
SQL_PG[combined]="language = 'en' AND (EXISTS (SELECT 1 FROM subscriber_interests si WHERE si.subscriber_id = subscribers.id AND si.interest_slug = 'volunteers') OR email LIKE '%@correo.mx') AND created_at >= '2026-07-01 00:00:00' AND coalesce(attributes::jsonb ->> 'city' NOT IN ('Mesa', 'Yuma'), true)"
for n in "${NAMES[@]}"; do SQL_PG[$n]="${SQL_PG[$n]:-${SQL_SQLITE[$n]}}"; done

seed_sql() {  # $1 = sqlite|postgres
  local id city series from domain created
  if [ "$1" = sqlite ]; then
    id="printf('00000000-0000-7000-8000-%012x', i)"
    series="WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $COUNT) "
    from="FROM n"
    created="strftime('%Y-%m-%d %H:%M:%S', '2026-01-01', '+' || (i % 365) || ' days', '+' || (i % 86400) || ' seconds')"
  else
    id="'00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0')"
    series=""
    from="FROM generate_series(1, $COUNT) AS i"
    created="timestamp '2026-01-01' + (i % 365) * interval '1 day' + (i % 86400) * interval '1 second'"
  fi
  city="CASE i % 8 WHEN 0 THEN 'Phoenix' WHEN 1 THEN 'Tucson' WHEN 2 THEN 'Mesa' WHEN 3 THEN 'Chandler'
        WHEN 4 THEN 'Tempe' WHEN 5 THEN 'Yuma' WHEN 6 THEN 'Flagstaff' ELSE 'Glendale' END"
  domain="CASE i % 3 WHEN 0 THEN 'example.org' WHEN 1 THEN 'example.net' ELSE 'correo.mx' END"
  echo "BEGIN;"
  echo "INSERT INTO interests (slug, name_en, name_es, public, created_at, updated_at) VALUES
        ('news', 'News', 'Noticias', true, '2026-01-01 00:00:00', '2026-01-01 00:00:00'),
        ('volunteers', 'Volunteers', 'Voluntarios', true, '2026-01-01 00:00:00', '2026-01-01 00:00:00');"
  echo "${series}INSERT INTO subscribers (id, email, name, language, status, attributes, source,
          created_at, updated_at, confirmed_at, unsubscribed_at)
        SELECT $id, 'user' || i || '@' || ($domain), 'Supporter ' || i,
          CASE WHEN i % 5 < 2 THEN 'es' ELSE 'en' END,
          CASE WHEN i % 10 = 0 THEN 'unsubscribed' ELSE 'confirmed' END,
          '{\"city\":\"' || ($city) || '\"}', 'bench',
          $created, $created, $created, NULL $from;"
  echo "${series}INSERT INTO subscriber_interests (subscriber_id, interest_slug, created_at)
        SELECT $id, CASE WHEN i % 4 = 0 THEN 'news' ELSE 'volunteers' END, '2026-01-01 00:00:00'
        $from WHERE i % 2 = 0;"
  echo "COMMIT;"
}

# Runs the hand-written count REPS + 1 times in one client session; prints "count median_ms".
raw_count() {  # $1 = backend, $2 = condition
  local query="SELECT count(*) FROM subscribers WHERE status = 'confirmed' AND ($2);"
  if [ "$1" = sqlite ]; then
    { echo ".timer on"; for _ in $(seq 0 "$REPS"); do echo "$query"; done; } | sqlite3 "$WORK/segments.db" > "$WORK/raw.txt"
    python3 - "$WORK/raw.txt" <<'PY'
import re, statistics, sys
text = open(sys.argv[1]).read()
counts = re.findall(r"^(\d+)$", text, re.M)
times = [float(t) * 1000 for t in re.findall(r"Run Time: real ([0-9.]+)", text)][1:]
print(counts[0], f"{statistics.median(times):.2f}")
PY
  else
    { echo '\timing on'; for _ in $(seq 0 "$REPS"); do echo "$query"; done; } | psql "$url" -At > "$WORK/raw.txt"
    python3 - "$WORK/raw.txt" <<'PY'
import re, statistics, sys
text = open(sys.argv[1]).read()
counts = re.findall(r"^(\d+)$", text, re.M)
times = [float(t) for t in re.findall(r"^Time: ([0-9.]+) ms", text, re.M)][1:]
print(counts[0], f"{statistics.median(times):.2f}")
PY
  fi
}

rows=()
problems=()
: > "$OUT/segments.tsv"
for backend in $BACKENDS; do
  fresh_database "$backend" segments

  port_free "$APP_PORT"
  ENLACE_DATABASE_URL="$url" ENLACE_LISTEN="127.0.0.1:$APP_PORT" ENLACE_DATA_DIR="$WORK/data-$backend" \
    ENLACE_SECRET_KEY="bench-secret-key-0123456789abcdef0123456789" ENLACE_LOG=warn \
    ENLACE_SMTP_URL="smtp://127.0.0.1:2525" "$BIN" serve > "$WORK/serve.log" 2>&1 &
  app=$!
  wait_port "$APP_PORT"
  api="http://127.0.0.1:$APP_PORT/api/v1"
  token=$(curl -sf "$api/auth/token" -H 'Content-Type: application/json' \
    -d '{"email":"admin@example.org","password":"bench-password-0123456789"}' | json 'd["access_token"]')
  auth=(-H "Authorization: Bearer $token")
  curl -sf "${auth[@]}" "$api/fields" -H 'Content-Type: application/json' -d '{"key":"city","type":"text"}' >/dev/null

  for filter in "${NAMES[@]}"; do
    body="{\"filter\":${FILTER[$filter]}}"
    # The builder's count (what staff wait for at every change), then the preview (the count
    # and a sample of the ten newest).
    declare -A took=()
    count=""
    for endpoint in count preview; do
      times=()
      for rep in $(seq 0 "$REPS"); do
        code_time=$(curl -s -o "$WORK/answer.json" -w '%{http_code} %{time_total}' "${auth[@]}" \
          -H 'Content-Type: application/json' -d "$body" "$api/segments/$endpoint")
        read -r code seconds <<< "$code_time"
        [ "$code" = 200 ] || { problems+=("$backend $filter $endpoint: HTTP $code $(head -c 300 "$WORK/answer.json")"); break; }
        got=$(json 'd["count"]' < "$WORK/answer.json")
        [ -z "$count" ] || [ "$count" = "$got" ] || problems+=("$backend $filter: count $count, preview $got")
        count="$got"
        [ "$rep" = 0 ] || times+=("$(python3 -c "print(float('$seconds') * 1000)")")
      done
      [ "${#times[@]}" -gt 0 ] && took[$endpoint]=$(median "${times[@]}")
    done
    [ -n "${took[count]:-}" ] && [ -n "${took[preview]:-}" ] || continue
    ms="${took[count]}"
    if [ "$backend" = sqlite ]; then cond="${SQL_SQLITE[$filter]}"; else cond="${SQL_PG[$filter]}"; fi
    read -r raw raw_ms < <(raw_count "$backend" "$cond")
    ratio=$(python3 -c "print(f'{$raw_ms / $ms * 100:.1f}')")
    times_ceiling=$(python3 -c "print(f'{$ms / $raw_ms:.2f}')")
    echo "$backend $filter: Enlace count ${ms} ms (count $count; preview ${took[preview]} ms), hand-written SQL ${raw_ms} ms (count $raw) → ${times_ceiling}× the ceiling's time"
    [ "$count" = "$raw" ] || problems+=("$backend $filter: Enlace counted $count, the hand-written SQL $raw")
    rows+=("| $name | $filter | $count | $ms | ${took[preview]} | $raw_ms | ${times_ceiling}× |")
    printf 'segments\t%s\t%s\tms\t%s\t%s\t%s reached; preview (count and sample) %s ms\n' "$backend" "$filter" "$ms" "$raw_ms" \
      "$(LC_ALL=C printf '%s' "$count" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta')" "${took[preview]}" >> "$OUT/segments.tsv"
  done
  kill -TERM "$app"; wait "$app" 2>/dev/null || true
  app=""
  log_lines=$(grep -cvE '^\s*$' "$WORK/serve.log" || true)
  [ "$log_lines" = 0 ] || { problems+=("$backend: $log_lines lines in the server log (ENLACE_LOG=warn)"); head -20 "$WORK/serve.log"; }
  if [ "$backend" = postgres ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"; db=""; fi
done

{
  echo "| backend | filter | subscribers reached | count ms (median) | preview ms (median) | hand-written SQL count ms (median) | count's time ÷ ceiling's |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$OUT/segments.md"
if [ "${#problems[@]}" -gt 0 ]; then
  echo "PROBLEMS:"; printf '  %s\n' "${problems[@]}"
  exit 1
fi
