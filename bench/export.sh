#!/usr/bin/env bash
# Export benchmark: GET /api/v1/exports/subscribers for 1,000,000 subscribers as CSV, NDJSON and
# gzip-compressed CSV, on SQLite and/or PostgreSQL.
#
#   bench/export.sh                 # both databases
#   bench/export.sh sqlite          # or: postgres
#   COUNT=20000 bench/export.sh sqlite
#
# For each backend: seeds COUNT subscribers straight into a fresh database (one transaction of
# generated rows, through the change-sequence triggers like any write; half of them with one of
# two interests, all with a `city` attribute), declares the `city` field, then for each format
# starts `enlace serve` (release) under /usr/bin/time -v, runs the export once with curl (the
# body goes through `wc -l`, which counts rows at memory speed), and stops the server. The
# ceiling, measured in the same run, is the database's own CSV dump of the same columns (one
# query with the interests aggregated per subscriber: `sqlite3 -csv`, or psql's `COPY … TO
# STDOUT`), through the same `wc -l`. Prints rows/s, bytes on the wire and the server's peak RSS
# for each run, checks the row count and the sync-cursor header, and writes a Markdown table to
# target/bench/export.md (machine-readable: target/bench/export.tsv). Exits non-zero if a row is
# missing or the server logged anything at warn level.
#
# Settings: COUNT (1000000), PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="${1:-both}"
COUNT="${COUNT:-1000000}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
APP_PORT=18091
case "$MODE" in
  both) BACKENDS="sqlite postgres" ;;
  sqlite | postgres) BACKENDS="$MODE" ;;
  *) echo "usage: $0 [sqlite|postgres|both]" >&2; exit 2 ;;
esac

source bench/lib.sh
install_missing sqlite3=sqlite3 psql=postgresql-client curl=curl /usr/bin/time=time

cargo build --release --quiet --bin enlace
BIN="${CARGO_TARGET_DIR:-target}/release/enlace"
WORK="$(mktemp -d)"
OUT=target/bench
mkdir -p "$OUT"
timer=""
app=""
db=""
cleanup() {
  [ -n "$app" ] && kill "$app" 2>/dev/null || true
  [ -n "$timer" ] && kill "$timer" 2>/dev/null || true
  if [ -n "$db" ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; fi
  rm -rf "$WORK"
}
trap cleanup EXIT


seed_sql() {  # $1 = sqlite|postgres; COUNT subscribers, 8 cities, interests for half, one transaction
  local id city series from
  if [ "$1" = sqlite ]; then
    id="printf('00000000-0000-7000-8000-%012x', i)"
    series="WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $COUNT) "
    from="FROM n"
  else
    id="'00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0')"
    series=""
    from="FROM generate_series(1, $COUNT) AS i"
  fi
  city="CASE i % 8 WHEN 0 THEN 'Phoenix' WHEN 1 THEN 'Tucson' WHEN 2 THEN 'Mesa' WHEN 3 THEN 'Chandler'
        WHEN 4 THEN 'Tempe' WHEN 5 THEN 'Yuma' WHEN 6 THEN 'Flagstaff' ELSE 'Glendale' END"
  echo "BEGIN;"
  echo "INSERT INTO interests (slug, name_en, name_es, public, created_at, updated_at) VALUES
        ('news', 'News', 'Noticias', true, '2026-01-01 00:00:00', '2026-01-01 00:00:00'),
        ('volunteers', 'Volunteers', 'Voluntarios', true, '2026-01-01 00:00:00', '2026-01-01 00:00:00');"
  echo "${series}INSERT INTO subscribers (id, email, name, language, status, attributes, source,
          created_at, updated_at, confirmed_at, unsubscribed_at)
        SELECT $id, 'user' || i || '@example.org', 'Supporter ' || i,
          CASE WHEN i % 3 = 0 THEN 'es' ELSE 'en' END,
          CASE WHEN i % 10 = 0 THEN 'unsubscribed' ELSE 'confirmed' END,
          '{\"city\":\"' || ($city) || '\"}', 'bench',
          '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00', NULL $from;"
  echo "${series}INSERT INTO subscriber_interests (subscriber_id, interest_slug, created_at)
        SELECT $id, CASE WHEN i % 4 = 0 THEN 'news' ELSE 'volunteers' END, '2026-01-01 00:00:00'
        $from WHERE i % 2 = 0;"
  echo "COMMIT;"
}

# The ceiling: the same columns as Enlace's CSV, straight from the database's own client.
ceiling_sql() {  # $1 = sqlite|postgres
  if [ "$1" = sqlite ]; then
    echo "SELECT s.id, s.email, s.name, s.language, s.status,
            (SELECT group_concat(interest_slug, ';') FROM subscriber_interests i WHERE i.subscriber_id = s.id),
            s.source, s.created_at, s.confirmed_at, s.unsubscribed_at, s.updated_at,
            json_extract(s.attributes, '\$.city')
          FROM subscribers s ORDER BY s.id"
  else
    echo "COPY (SELECT s.id, s.email, s.name, s.language, s.status,
            (SELECT string_agg(interest_slug, ';' ORDER BY interest_slug) FROM subscriber_interests i WHERE i.subscriber_id = s.id),
            s.source, s.created_at, s.confirmed_at, s.unsubscribed_at, s.updated_at,
            s.attributes::jsonb ->> 'city'
          FROM subscribers s ORDER BY s.id) TO STDOUT WITH (FORMAT csv, HEADER)"
  fi
}

rows=()
problems=()
: > "$OUT/export.tsv"   # machine-readable: bench, backend, case, unit, value, ceiling, detail
for backend in $BACKENDS; do
  fresh_database "$backend" export

  echo "== $backend: ceiling (the database's own CSV dump)"
  t0=$(date +%s.%N)
  if [ "$backend" = sqlite ]; then
    c_lines=$(sqlite3 -csv -header "$WORK/export.db" "$(ceiling_sql sqlite)" | wc -l)
  else
    c_lines=$(psql "$url" -Atc "$(ceiling_sql postgres)" | wc -l)
  fi
  read -r c_rate c_seconds < <(python3 -c "import sys; s = float(sys.argv[2]) - float(sys.argv[1]); print(f'{(int(sys.argv[3]) - 1) / s:.0f} {s:.2f}')" \
    "$t0" "$(date +%s.%N)" "$c_lines")
  echo "$backend ceiling: $((c_lines - 1)) rows in ${c_seconds} s = ${c_rate} rows/s"
  [ "$((c_lines - 1))" = "$COUNT" ] || problems+=("$backend ceiling: $((c_lines - 1)) rows of $COUNT")
  rows+=("| $name | ceiling: the database's CSV dump | $((c_lines - 1)) | $c_seconds | $c_rate | — | — |")

  for run in csv ndjson csv-gzip; do
    format="${run%-gzip}"
    port_free "$APP_PORT"
    ENLACE_DATABASE_URL="$url" ENLACE_LISTEN="127.0.0.1:$APP_PORT" ENLACE_DATA_DIR="$WORK/data-$backend" \
      ENLACE_SECRET_KEY="bench-secret-key-0123456789abcdef0123456789" ENLACE_LOG=warn \
      ENLACE_SMTP_URL="smtp://127.0.0.1:2525" \
      /usr/bin/time -v -o "$WORK/time.txt" "$BIN" serve > "$WORK/serve.log" 2>&1 &
    timer=$!
    wait_port "$APP_PORT"
    app=$(pgrep -P "$timer")   # killing `time` alone would orphan the server
    api="http://127.0.0.1:$APP_PORT/api/v1"
    token=$(curl -sf "$api/auth/token" -H 'Content-Type: application/json' \
      -d '{"email":"admin@example.org","password":"bench-password-0123456789"}' | json 'd["access_token"]')
    if [ "$run" = csv ]; then
      curl -sf -H "Authorization: Bearer $token" "$api/fields" -H 'Content-Type: application/json' \
        -d '{"key":"city","type":"text"}' >/dev/null || true
    fi
    compressed=()
    [ "$run" = csv-gzip ] && compressed=(--compressed)
    echo "== $backend: export $run"
    lines=$(curl -sS "${compressed[@]}" -H "Authorization: Bearer $token" -D "$WORK/headers.txt" \
      -w '%{stderr}%{http_code} %{size_download} %{time_total}\n' \
      "$api/exports/subscribers?format=$format" 2> "$WORK/curl.txt" | wc -l)
    read -r code bytes seconds < <(tail -1 "$WORK/curl.txt")
    cursor=$(awk -F': ' 'tolower($1) == "enlace-sync-cursor" {print $2}' "$WORK/headers.txt" | tr -d '\r')
    kill -TERM "$app"; wait "$timer" 2>/dev/null || true
    timer=""; app=""
    rss_kb=$(awk -F': ' '/Maximum resident set size/{print $2}' "$WORK/time.txt")
    log_lines=$(grep -cvE '^\s*$' "$WORK/serve.log" || true)
    exported=$([ "$format" = csv ] && echo $((lines - 1)) || echo "$lines")
    read -r rate rss_mb mb < <(python3 -c "import sys; r, s, k, b = map(float, sys.argv[1:]); print(f'{r / s:.0f} {k / 1024:.0f} {b / 1e6:.1f}')" \
      "$exported" "$seconds" "$rss_kb" "$bytes")
    echo "$backend $run: HTTP $code, $exported rows in ${seconds} s = ${rate} rows/s, ${mb} MB on the wire," \
         "peak RSS ${rss_mb} MB, cursor ${cursor:-missing}, $log_lines server log lines"
    if [ "$log_lines" -gt 0 ]; then echo "-- server log (first 20 lines):"; head -20 "$WORK/serve.log"; fi
    [ "$code" = 200 ] || problems+=("$backend $run: HTTP $code")
    [ "$exported" = "$COUNT" ] || problems+=("$backend $run: $exported rows of $COUNT")
    [ -n "$cursor" ] || problems+=("$backend $run: no Enlace-Sync-Cursor header")
    [ "$log_lines" = 0 ] || problems+=("$backend $run: $log_lines lines in the server log (ENLACE_LOG=warn)")
    rows+=("| $name | $run | $exported | $seconds | $rate | $mb | $rss_mb |")
    printf 'export\t%s\t%s\trows/s\t%s\t%s\t%s MB, peak RSS %s MB\n' "$backend" "$run" "$rate" "$c_rate" "$mb" "$rss_mb" >> "$OUT/export.tsv"
  done
  if [ "$backend" = postgres ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"; db=""; fi
done

{
  echo "| backend | format | rows | seconds | rows/s | MB on the wire | peak RSS MB |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$OUT/export.md"
if [ "${#problems[@]}" -gt 0 ]; then
  echo "PROBLEMS:"; printf '  %s\n' "${problems[@]}"
  exit 1
fi
