#!/usr/bin/env bash
# Staff console benchmark: the console's pages over a list of 1,000,000 people, on SQLite and/or
# PostgreSQL, as a signed-in member's browser asks for them.
#
#   bench/console.sh                 # both databases
#   bench/console.sh sqlite          # or: postgres
#   COUNT=100000 REPS=20 bench/console.sh sqlite
#
# For each backend: seeds COUNT people straight into a fresh database (one transaction, through
# the change-sequence triggers like any write): addresses at three domains, twenty first and last
# names (accented ones among them) and ten people named Xóchitl, both languages, every status
# (a hundred complained), half with one of two interests and a thousand organizers, a `city`
# field (twenty people in Ajo), sign-ups spread over the last 365 days each with its consent
# record. Starts `enlace serve` (release), signs in to the console as an admin, and asks for each
# page of bench/console_pages.py REPS times one after the other (after three warm-ups), timing
# each answer from request to last byte. Prints p50/p95/p99 per page (also written to
# target/bench/console.md; machine-readable: target/bench/console.tsv) and the machine's load
# average before and after, since other work on the machine moves these figures. Exits non-zero
# if a page does not answer 200 or the server logged anything at warn level.
#
# Settings: COUNT (1000000), REPS (50), PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres),
# ENLACE_BIN (a release binary to measure instead of building this checkout).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="${1:-both}"
COUNT="${COUNT:-1000000}"
REPS="${REPS:-50}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
APP_PORT=18093
case "$MODE" in
  both) BACKENDS="sqlite postgres" ;;
  sqlite | postgres) BACKENDS="$MODE" ;;
  *) echo "usage: $0 [sqlite|postgres|both]" >&2; exit 2 ;;
esac

source bench/lib.sh
install_missing sqlite3=sqlite3 psql=postgresql-client

if [ -n "${ENLACE_BIN:-}" ]; then
  BIN="$ENLACE_BIN"   # a build kept aside, to compare one commit with another
else
  cargo build --release --quiet --bin enlace
  BIN="${CARGO_TARGET_DIR:-target}/release/enlace"
fi
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

NOW="$(date -u '+%Y-%m-%d %H:%M:%S')"

seed_sql() {  # $1 = sqlite|postgres
  local id cid series from created city first last name status interest
  if [ "$1" = sqlite ]; then
    id="printf('00000000-0000-7000-8000-%012x', i)"
    cid="printf('00000000-0000-7000-9000-%012x', i)"
    series="WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $COUNT) "
    from="FROM n"
    created="strftime('%Y-%m-%d %H:%M:%S', '$NOW', '-' || (i % 365) || ' days', '-' || (i % 86400) || ' seconds')"
  else
    id="'00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0')"
    cid="'00000000-0000-7000-9000-' || lpad(to_hex(i), 12, '0')"
    series=""
    from="FROM generate_series(1, $COUNT) AS i"
    created="timestamp '$NOW' - (i % 365) * interval '1 day' - (i % 86400) * interval '1 second'"
  fi
  city="CASE WHEN i % 50000 = 11 THEN 'Ajo' ELSE CASE i % 8 WHEN 0 THEN 'Phoenix' WHEN 1 THEN 'Tucson'
        WHEN 2 THEN 'Mesa' WHEN 3 THEN 'Chandler' WHEN 4 THEN 'Tempe' WHEN 5 THEN 'Yuma'
        WHEN 6 THEN 'Flagstaff' ELSE 'Glendale' END END"
  first="CASE i % 10 WHEN 0 THEN 'Ana' WHEN 1 THEN 'José' WHEN 2 THEN 'María' WHEN 3 THEN 'Luis'
        WHEN 4 THEN 'Ángela' WHEN 5 THEN 'John' WHEN 6 THEN 'Mary' WHEN 7 THEN 'Rosa'
        WHEN 8 THEN 'Carlos' ELSE 'Emily' END"
  last="CASE (i / 10) % 10 WHEN 0 THEN 'García' WHEN 1 THEN 'Hernández' WHEN 2 THEN 'López'
        WHEN 3 THEN 'Smith' WHEN 4 THEN 'Núñez' WHEN 5 THEN 'Johnson' WHEN 6 THEN 'Martínez'
        WHEN 7 THEN 'Brown' WHEN 8 THEN 'Pérez' ELSE 'Méndez' END"
  name="CASE WHEN i % 100000 = 17 THEN 'Xóchitl Cuauhtémoc' ELSE ($first) || ' ' || ($last) END"
  status="CASE WHEN i % 10000 = 5 THEN 'complained' WHEN i % 100 = 1 THEN 'bounced'
        WHEN i % 10 = 2 THEN 'unsubscribed' WHEN i % 20 = 3 THEN 'pending' ELSE 'confirmed' END"
  echo "BEGIN;"
  echo "INSERT INTO interests (slug, name_en, name_es, public, created_at, updated_at) VALUES
        ('news', 'News', 'Noticias', true, '2026-01-01 00:00:00', '2026-01-01 00:00:00'),
        ('volunteers', 'Volunteers', 'Voluntarios', true, '2026-01-01 00:00:00', '2026-01-01 00:00:00'),
        ('organizers', 'Organizers', 'Organizadores', false, '2026-01-01 00:00:00', '2026-01-01 00:00:00');"
  echo "INSERT INTO custom_fields (key, field_type, allowed_values, public, created_at, updated_at)
        VALUES ('city', 'text', NULL, true, '2026-01-01 00:00:00', '2026-01-01 00:00:00');"
  echo "${series}INSERT INTO subscribers (id, email, name, language, status, attributes, source,
          created_at, updated_at, confirmed_at, unsubscribed_at)
        SELECT $id, 'user' || i || '@' || (CASE i % 3 WHEN 0 THEN 'example.org' WHEN 1 THEN 'example.net' ELSE 'correo.mx' END),
          $name, CASE WHEN i % 5 < 2 THEN 'es' ELSE 'en' END, $status,
          '{\"city\":\"' || ($city) || '\"}', 'bench',
          $created, $created, $created, NULL $from;"
  echo "${series}INSERT INTO subscriber_interests (subscriber_id, interest_slug, created_at)
        SELECT $id, CASE WHEN i % 4 = 0 THEN 'news' ELSE 'volunteers' END, '2026-01-01 00:00:00'
        $from WHERE i % 2 = 0;"
  echo "${series}INSERT INTO subscriber_interests (subscriber_id, interest_slug, created_at)
        SELECT $id, 'organizers', '2026-01-01 00:00:00' $from WHERE i % 1000 = 3;"
  echo "${series}INSERT INTO consent_events (id, subscriber_id, action, interests, wording,
          wording_version, language, source, created_at)
        SELECT $cid, $id, 'signup', '[]', 'I want to hear from you.', 'bench',
          CASE WHEN i % 5 < 2 THEN 'es' ELSE 'en' END, 'bench', $created $from;"
  echo "COMMIT;"
}

load() { cut -d' ' -f1-3 /proc/loadavg; }

: > "$OUT/console.tsv"   # backend, page, p50, p95, p99, people shown
problems=()
for backend in $BACKENDS; do
  fresh_database "$backend" console
  if [ "$backend" = sqlite ]; then sqlite3 "$WORK/console.db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null; fi

  port_free "$APP_PORT"
  ENLACE_DATABASE_URL="$url" ENLACE_LISTEN="127.0.0.1:$APP_PORT" ENLACE_DATA_DIR="$WORK/data-$backend" \
    ENLACE_SECRET_KEY="bench-secret-key-0123456789abcdef0123456789" ENLACE_LOG=warn \
    ENLACE_SMTP_URL="smtp://127.0.0.1:2525" "$BIN" serve > "$WORK/serve.log" 2>&1 &
  app=$!
  wait_port "$APP_PORT"
  before=$(load)
  echo "== $backend: $REPS requests per page, load average before: $before"
  python3 bench/console_pages.py "http://127.0.0.1:$APP_PORT/admin" admin@example.org \
    bench-password-0123456789 "$REPS" "$OUT/console.tsv" "$name" || problems+=("$backend: a page did not answer 200")
  echo "   load average after: $(load)"
  printf '#load\t%s\t%s\t%s\n' "$name" "$before" "$(load)" >> "$OUT/console.tsv"
  kill -TERM "$app"; wait "$app" 2>/dev/null || true
  app=""
  log_lines=$(grep -cvE '^\s*$' "$WORK/serve.log" || true)
  [ "$log_lines" = 0 ] || { problems+=("$backend: $log_lines lines in the server log (ENLACE_LOG=warn)"); head -20 "$WORK/serve.log"; }
  if [ "$backend" = postgres ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"; db=""; fi
done

python3 - "$OUT/console.tsv" "$COUNT" "$REPS" <<'PY' | tee "$OUT/console.md"
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print(f"{int(sys.argv[2]):,} people, {sys.argv[3]} requests per page after 3 warm-ups, one at a time; "
      "ms from request to last byte.\n")
for backend in dict.fromkeys(r[0] for r in rows if not r[0].startswith("#")):
    loads = [r for r in rows if r[0] == "#load" and r[1] == backend]
    if loads:
        print(f"**{backend}** (load average before {loads[0][2]}, after {loads[0][3]})\n")
    print("| page | p50 ms | p95 ms | p99 ms | people shown |")
    print("|---|---|---|---|---|")
    for r in rows:
        if r[0] == backend:
            flag = " ⚠" if float(r[3]) > 200 else ""
            print(f"| {r[1]} | {r[2]} | {r[3]}{flag} | {r[4]} | {r[5]} |")
    print()
PY
if [ "${#problems[@]}" -gt 0 ]; then
  echo "PROBLEMS:"; printf '  %s\n' "${problems[@]}"
  exit 1
fi
