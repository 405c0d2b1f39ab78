#!/usr/bin/env bash
# Newsletter blast benchmark: one personalised newsletter to 100,000 confirmed subscribers,
# on SQLite and/or PostgreSQL, through a local SMTP sink (postfix's smtp-sink on loopback),
# compared with a bare lettre client (examples/blast_ceiling.rs) measured in the same run.
#
#   bench/blast.sh                 # both databases
#   bench/blast.sh sqlite          # or: postgres
#   COUNT=20000 bench/blast.sh sqlite
#
# For each backend: seeds COUNT confirmed subscribers straight into a fresh database (one
# transaction), starts `enlace serve` under /usr/bin/time -v (peak RSS, CPU time), creates a newsletter
# with merge fields (name, a custom `city` attribute), sends it, polls until it is `sent` (the
# send's time runs from the request to the server's own `finished_at`), then counts what the
# sink received and checks the sink's dump: every recipient exactly once, every
# Message-ID once, and each message greeting its own recipient. Then the ceiling runs against a
# fresh sink: `cargo run --release --example blast_ceiling -- --count COUNT --concurrency
# CONCURRENCY --port PORT`, run here from the binary built once at the start; and once more with
# `--enlace-smtp`, the same messages through Enlace's own SMTP client (pipelined where the server
# allows) with no database, templates or bookkeeping: how close the engine comes to its own
# transport, which is faster than lettre's `send`. The target is a ratio to the first; the
# second is printed alongside. Prints one line per
# run and a Markdown table (also written to target/bench/blast.md, and machine-readable to
# target/bench/blast.tsv; the progress polls go to
# target/bench/blast-progress-BACKEND.tsv) and exits non-zero if any message is missing,
# duplicated or wrongly personalised, or the server logged anything at warn level.
#
# Settings: COUNT (100000), CONCURRENCY (16: ENLACE_SEND_CONCURRENCY and the ceiling's
# connections), POLL_S (1), PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres),
# KEEP_DUMP=FILE keeps the last backend's sink dump, BENCH_BIN=FILE runs that enlace binary.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="${1:-both}"
COUNT="${COUNT:-100000}"
CONCURRENCY="${CONCURRENCY:-16}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
APP_PORT=18090
SINK_PORT=12526
TIMEOUT_S="${TIMEOUT_S:-1800}"
POLL_S="${POLL_S:-1}"   # progress polls count the deliveries table; keep them as rare as a dashboard
case "$MODE" in
  both) BACKENDS="sqlite postgres" ;;
  sqlite | postgres) BACKENDS="$MODE" ;;
  *) echo "usage: $0 [sqlite|postgres|both]" >&2; exit 2 ;;
esac

need=()
[ -x /usr/sbin/smtp-sink ] || need+=(postfix)
command -v sqlite3 >/dev/null || need+=(sqlite3)
[ -x /usr/bin/time ] || need+=(time)
command -v psql >/dev/null || need+=(postgresql-client)
command -v curl >/dev/null || need+=(curl)
if [ "${#need[@]}" -gt 0 ]; then
  .ci/apt-install "${need[@]}"
fi

# BENCH_BIN=FILE runs another build of enlace (one copied aside, for a before/after comparison);
# the ceiling is always built here.
cargo build --release --quiet --example blast_ceiling
if [ -z "${BENCH_BIN:-}" ]; then
  cargo build --release --quiet --bin enlace
fi
BIN="${BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/enlace}"
CEILING="${CARGO_TARGET_DIR:-target}/release/examples/blast_ceiling"
WORK="$(mktemp -d)"
# The sink's dump of every message (≈ 1 GB for 100,000) goes to memory, not disk.
DUMPS="$(mktemp -d /dev/shm/enlace-blast.XXXXXX)"
chmod 777 "$DUMPS"   # smtp-sink drops to `nobody` before writing
OUT=target/bench
mkdir -p "$OUT"
pids=()
db=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$db" ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; fi
  rm -rf "$WORK" "$DUMPS"
}
trap cleanup EXIT

source bench/lib.sh
now() { date +%s.%N; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# CPU ticks (1/100 s): whole machine busy, Enlace, Enlace's main thread (actix's single-threaded
# runtime, where the engine's async side runs), the sink, and PostgreSQL's backends for our database.
# Backends come and go during a send (the outcome writer's connection closes when the send ends),
# so each is sampled at every progress poll: its CPU is the last reading less the one at the
# start (nothing for a backend that started later). `db_sample` runs in this shell, `snap` in a
# subshell that only reads what it recorded.
declare -A db_first=() db_last=()
db_sample() {  # $1 = start: record the starting readings
  [ -n "$db" ] || return 0
  local p t
  for p in $(psql "$PG_ADMIN_URL" -Atc "SELECT pid FROM pg_stat_activity WHERE datname = '$db'"); do
    t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || continue
    [ -n "$t" ] || continue
    if [ "${1:-}" = start ]; then db_first[$p]=$t; fi
    db_last[$p]=$t
  done
}
db_ticks() {
  local p t=0
  for p in "${!db_last[@]}"; do t=$(( t + db_last[$p] - ${db_first[$p]:-0} )); done
  echo "$t"
}
snap() {
  echo "$(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat) $(cpu_ticks "$app")" \
       "$(awk '{print $14 + $15}' "/proc/$app/task/$app/stat") $(cpu_ticks "$sink") $(db_ticks)"
}

# smtp-sink: -c keeps running counters on stdout (mesg= counts every "." it acknowledged),
# -D appends every transaction to one dump file, read afterwards for duplicates.
start_sink() {  # $1 = name
  port_free "$SINK_PORT"
  /usr/sbin/smtp-sink -c -u nobody -D "$DUMPS/$1.dump" "127.0.0.1:$SINK_PORT" 1024 > "$WORK/$1.sink" 2>&1 &
  sink=$!; pids+=("$sink")
  wait_port "$SINK_PORT"
}
stop_sink() { sleep 1; kill "$sink"; wait "$sink" 2>/dev/null || true; }
sink_count() { python3 -c "import re,sys; m=re.findall(r'mesg=(\d+)', open(sys.argv[1], errors='replace').read()); print(m[-1] if m else 0)" "$1"; }

# Reads a sink dump; prints "messages distinct_recipients duplicate_recipients
# distinct_message_ids wrong_personalisation avg_bytes". A message is wrongly personalised unless
# its Subject and the first line of its text part carry its own To's name and that subscriber's
# city ("Supporter N" lives in CITIES[N % 8], in both the seed below and the ceiling).
check_dump() {
  python3 - "$1" <<'PY'
import collections, re, sys
CITIES = [b"Phoenix", b"Tucson", b"Mesa", b"Chandler", b"Tempe", b"Yuma", b"Flagstaff", b"Glendale"]
rcpts, mids = collections.Counter(), collections.Counter()
messages = wrong = size = 0
rcpt = name = greeting = None
subject_ok = greeted = False
def finish():
    global wrong
    if rcpt is not None and not (subject_ok and greeted):
        wrong += 1
with open(sys.argv[1], "rb") as f:
    for line in f:
        if line.startswith(b"X-Client-Addr: "):
            finish()
            messages += 1
            rcpt = name = greeting = None
            subject_ok = greeted = False
            continue
        size += len(line) + 1   # smtp-sink writes LF; on the wire it was CRLF
        if line.startswith(b"X-Rcpt-Args: "):
            rcpt = line[13:].strip().lower()
            rcpts[rcpt] += 1
        elif line.startswith(b"Message-ID: "):
            mids[line[12:].strip()] += 1
        elif name is None and line.startswith(b"To: "):
            m = re.match(rb'To: "?(Supporter (\d+))"? <user\2@example\.org>', line)
            if m:
                name = m.group(1)
                greeting = b"Hello " + name + b" from " + CITIES[int(m.group(2)) % 8] + b","
        elif line.startswith(b"Subject: "):
            subject_ok = name is not None and line.rstrip() == b"Subject: News for " + name
        elif not greeted and greeting and line.rstrip() == greeting:
            greeted = True
    finish()
dups = sum(c - 1 for c in rcpts.values() if c > 1)
print(messages, len(rcpts), dups, len(mids), wrong, size // max(messages, 1))
PY
}

HTML_FILE="$WORK/newsletter.json"
python3 - > "$HTML_FILE" <<'PY'
import json
para = ("This month our volunteers knocked on doors in every neighbourhood, the food bank served "
        "more families than ever, and the youth program opened a second classroom. Thank you for "
        "standing with us: none of it happens without supporters like you.")
sections = "".join(
    f'<h2 style="font-family:Georgia,serif;color:#1a3d5c">Update {i}</h2>\n'
    f'<p style="font-family:Arial,sans-serif;font-size:15px;line-height:1.5">{para}</p>\n'
    for i in range(1, 25))
html = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>News</title></head><body>\n"
        "<p>Hello {{ name }} from {{ attributes.city }},</p>\n" + sections +
        "<p>See you soon, {{ name }}!</p>\n</body></html>\n")
print(json.dumps({
    "subject": "News for {{ name }}",
    "html": html,
    "filter": {"all": [{"language": "en"}, {"not": {"email_domain": "nowhere.invalid"}}]},
}))
PY

seed_sql() {  # $1 = sqlite|postgres; COUNT confirmed subscribers, 8 cities, one transaction
  local id city series
  if [ "$1" = sqlite ]; then
    id="printf('00000000-0000-4000-8000-%012x', i)"
    series="WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $COUNT) "
  else
    id="'00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0')"
    series=""
  fi
  city="CASE i % 8 WHEN 0 THEN 'Phoenix' WHEN 1 THEN 'Tucson' WHEN 2 THEN 'Mesa' WHEN 3 THEN 'Chandler'
        WHEN 4 THEN 'Tempe' WHEN 5 THEN 'Yuma' WHEN 6 THEN 'Flagstaff' ELSE 'Glendale' END"
  echo "BEGIN;"
  echo "${series}INSERT INTO subscribers (id, email, name, language, status, attributes, source,
          created_at, updated_at, confirmed_at, unsubscribed_at)
        SELECT $id, 'user' || i || '@example.org', 'Supporter ' || i, 'en', 'confirmed',
          '{\"city\":\"' || ($city) || '\"}', 'bench',
          '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00', NULL"
  if [ "$1" = sqlite ]; then echo "FROM n;"; else echo "FROM generate_series(1, $COUNT) AS i;"; fi
  echo "COMMIT;"
}

rows=()
problems=()
warnings=()
: > "$OUT/blast.tsv"   # machine-readable: bench, backend, case, unit, value, ceiling, detail
for backend in $BACKENDS; do
  fresh_database "$backend" blast

  start_sink "$backend"
  port_free "$APP_PORT"
  ENLACE_DATABASE_URL="$url" ENLACE_LISTEN="127.0.0.1:$APP_PORT" ENLACE_DATA_DIR="$WORK/data-$backend" \
    ENLACE_SMTP_URL="smtp://127.0.0.1:$SINK_PORT" ENLACE_POSTAL_ADDRESS="Enlace Bench, 1 Main St, Phoenix AZ 85001" \
    ENLACE_SEND_CONCURRENCY="$CONCURRENCY" ENLACE_SECRET_KEY="bench-secret-key-0123456789abcdef0123456789" \
    ENLACE_FROM="News <news@example.org>" ENLACE_LOG=warn \
    /usr/bin/time -v -o "$WORK/time-$backend.txt" "$BIN" serve > "$WORK/serve-$backend.log" 2>&1 &
  timer=$!; pids+=("$timer")
  wait_port "$APP_PORT"
  app=$(pgrep -P "$timer"); pids+=("$app")   # killing `time` alone would orphan the server

  api="http://127.0.0.1:$APP_PORT/api/v1"
  token=$(curl -sf "$api/auth/token" -H 'Content-Type: application/json' \
    -d '{"email":"admin@example.org","password":"bench-password-0123456789"}' | json 'd["access_token"]')
  auth=(-H "Authorization: Bearer $token")
  curl -sf "${auth[@]}" "$api/fields" -H 'Content-Type: application/json' -d '{"key":"city","type":"text"}' >/dev/null
  nl=$(curl -sf "${auth[@]}" "$api/newsletters" -H 'Content-Type: application/json' -d @"$HTML_FILE" | json 'd["id"]')

  echo "== $backend: sending newsletter $nl"
  db_first=(); db_last=()
  db_sample start
  snap0=$(snap)
  t0=$(now)
  code=$(curl -s -o "$WORK/send.json" -w '%{http_code}' -X POST "${auth[@]}" "$api/newsletters/$nl/send")
  [ "$code" = 202 ] || { echo "send answered $code: $(cat "$WORK/send.json")" >&2; exit 1; }
  engine_rate=0
  echo "time status sent failed pending per_second" > "$OUT/blast-progress-$backend.tsv"
  while :; do
    curl -sf "${auth[@]}" "$api/newsletters/$nl" > "$WORK/status.json"
    read -r status sent failed skipped pending per_second < <(json \
      '" ".join(str(x) for x in [d["status"]] + [d["progress"][k] for k in ("sent","failed","skipped","pending","per_second")])' \
      < "$WORK/status.json")
    echo "$(now) $status $sent $failed $pending $per_second" >> "$OUT/blast-progress-$backend.tsv"
    db_sample
    [ "$status" = sent ] && break
    [ "$status" = sending ] && engine_rate="$per_second"
    if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) - float(sys.argv[2]) > $TIMEOUT_S else 1)" "$(now)" "$t0"; then
      echo "not sent after $TIMEOUT_S s: $(cat "$WORK/status.json")" >&2; problems+=("$backend: not sent after $TIMEOUT_S s"); break
    fi
    sleep "$POLL_S"
  done
  t1=$(now)
  db_sample
  snap1=$(snap)
  read -r started finished < <(json 'd["started_at"] + " " + (d["finished_at"] or "")' < "$WORK/status.json")

  kill -TERM "$app"; wait "$timer" 2>/dev/null || true
  stop_sink
  received=$(sink_count "$WORK/$backend.sink")
  read -r d_msgs d_rcpts d_dups d_mids d_wrong d_bytes < <(check_dump "$DUMPS/$backend.dump")
  [ -n "${KEEP_DUMP:-}" ] && cp "$DUMPS/$backend.dump" "$KEEP_DUMP"
  rm -f "$DUMPS/$backend.dump"
  rss_kb=$(awk -F': ' '/Maximum resident set size/{print $2}' "$WORK/time-$backend.txt")
  log_lines=$(grep -cvE '^\s*$' "$WORK/serve-$backend.log" || true)
  if [ "$backend" = postgres ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"; db=""; fi

  echo "== $backend: ceiling (bare lettre, $CONCURRENCY connections)"
  start_sink "ceiling-$backend"
  ceiling_line=$(/usr/bin/time -v -o "$WORK/time-ceiling-$backend.txt" \
    "$CEILING" --count "$COUNT" --concurrency "$CONCURRENCY" --port "$SINK_PORT" | grep '^RESULT')
  stop_sink
  c_received=$(sink_count "$WORK/ceiling-$backend.sink")
  read -r _ c_rcpts _ _ c_wrong c_bytes < <(check_dump "$DUMPS/ceiling-$backend.dump")
  rm -f "$DUMPS/ceiling-$backend.dump"

  echo "== $backend: Enlace's SMTP client alone ($CONCURRENCY connections, pipelined)"
  start_sink "client-$backend"
  client_line=$("$CEILING" --count "$COUNT" --concurrency "$CONCURRENCY" --port "$SINK_PORT" --enlace-smtp | grep '^RESULT')
  stop_sink
  e_received=$(sink_count "$WORK/client-$backend.sink")
  rm -f "$DUMPS/client-$backend.dump"
  [ "$e_received" = "$COUNT" ] || problems+=("Enlace's client alone after $backend: the sink counted $e_received")
  e_rate=$(echo "$client_line" | python3 -c "import sys; print(dict(kv.split('=') for kv in sys.stdin.read().split()[1:])['per_second'])")

  read -r seconds rate c_rate ratio rss_mb engine_span cpu_enlace cpu_main cpu_sink cpu_db cpu_other \
    us_enlace us_ceiling < <(python3 - "$t0" "$t1" "$sent" "$ceiling_line" "$rss_kb" "$started" \
    "$finished" "$snap0" "$snap1" "$WORK/time-$backend.txt" "$WORK/time-ceiling-$backend.txt" <<'PY'
import re, sys
from datetime import datetime, timezone
t0, t1, sent, line, rss, started, finished, snap0, snap1, time_app, time_ceiling = sys.argv[1:]
def utc(text):
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)
# The send ends when the server recorded the newsletter as sent, not at the poll that saw it.
secs = (utc(finished).timestamp() if finished else float(t1)) - float(t0)
rate = int(sent) / secs
c = dict(kv.split("=") for kv in line.split()[1:])
c_rate = float(c["per_second"])
span = "-"
if finished:
    span = f'{(utc(finished) - utc(started)).total_seconds():.1f}'
busy, enlace, main, sink, db = (int(b) - int(a) for a, b in zip(snap0.split(), snap1.split()))
window = float(t1) - float(t0)
cores = lambda ticks: f"{ticks / 100 / window:.2f}"
def cpu_us(path, messages):  # user + system CPU of the whole process, per message
    text = open(path).read()
    total = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", text))
    return f"{total / max(int(messages), 1) * 1e6:.0f}"
print(f"{secs:.1f} {rate:.0f} {c_rate:.0f} {rate / c_rate * 100:.1f} {int(rss) / 1024:.0f} {span}",
      cores(enlace), cores(main), cores(sink), cores(db), cores(busy - enlace - sink - db),
      cpu_us(time_app, sent), cpu_us(time_ceiling, c["messages"]))
PY
  )
  e_ratio=$(python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]) * 100:.1f}')" "$rate" "$e_rate")
  echo "$backend: $sent sent, $failed failed, $skipped skipped in ${seconds} s = ${rate} msg/s" \
       "(engine's own figure ${engine_rate}/s, started→finished ${engine_span} s);" \
       "CPU cores: Enlace ${cpu_enlace} (main thread ${cpu_main}), sink ${cpu_sink}, PostgreSQL ${cpu_db}, everything else ${cpu_other};" \
       "CPU per message: Enlace ${us_enlace} µs, ceiling ${us_ceiling} µs;" \
       "ceiling ${c_rate} msg/s → ${ratio}%; Enlace's SMTP client alone ${e_rate} msg/s → ${e_ratio}%;" \
       "peak RSS ${rss_mb} MB;" \
       "sink: ${received} counted, ${d_msgs} dumped, ${d_rcpts} distinct recipients, ${d_dups} duplicates," \
       "${d_mids} distinct Message-IDs, ${d_wrong} wrongly personalised; ${d_bytes} B/message (ceiling ${c_bytes} B);" \
       "$log_lines server log lines"
  if [ "$log_lines" -gt 0 ]; then echo "-- server log (first 20 lines):"; head -20 "$WORK/serve-$backend.log"; fi
  # Correctness first (each is a failure), then hints that the figure may be off.
  [ "$sent" = "$COUNT" ] || problems+=("$backend: the server reports $sent of $COUNT sent ($failed failed, $skipped skipped)")
  [ "$received" = "$COUNT" ] || problems+=("$backend: the sink counted $received of $COUNT")
  [ "$d_msgs" = "$received" ] || problems+=("$backend: the sink dumped $d_msgs messages but counted $received")
  [ "$d_dups" = 0 ] || problems+=("$backend: $d_dups duplicate recipients at the sink")
  [ "$d_rcpts" = "$COUNT" ] || problems+=("$backend: $d_rcpts distinct recipients of $COUNT")
  [ "$d_mids" = "$d_msgs" ] || problems+=("$backend: $d_mids distinct Message-IDs in $d_msgs messages")
  [ "$d_wrong" = 0 ] || problems+=("$backend: $d_wrong messages not personalised for their own recipient")
  [ "$log_lines" = 0 ] || problems+=("$backend: $log_lines lines in the server log (ENLACE_LOG=warn)")
  [ "$c_received" = "$COUNT" ] && [ "$c_rcpts" = "$COUNT" ] && [ "$c_wrong" = 0 ] \
    || problems+=("ceiling after $backend: the sink counted $c_received, $c_rcpts distinct, $c_wrong wrong")
  python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 0.25 else 1)" "$cpu_other" \
    && warnings+=("$backend: other processes used $cpu_other cores during the send; rerun when the machine is quiet")
  rows+=("| $name | $sent | $seconds | $rate | $c_rate | $ratio % | $e_rate | $e_ratio % | $rss_mb | $us_enlace / $us_ceiling | $received | $engine_rate |")
  printf 'blast\t%s\tnewsletter\tmsg/s\t%s\t%s\tpeak RSS %s MB, CPU %s µs/message (ceiling %s)\n' "$backend" "$rate" "$c_rate" "$rss_mb" "$us_enlace" "$us_ceiling" >> "$OUT/blast.tsv"
done

{
  echo "| backend | messages | seconds | messages/s | ceiling messages/s | of ceiling | Enlace's SMTP client alone, messages/s | of it | peak RSS MB | CPU µs/message (Enlace / ceiling) | sink count | engine's per_second |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$OUT/blast.md"
if [ "${#warnings[@]}" -gt 0 ]; then
  echo "WARNINGS:"; printf '  %s\n' "${warnings[@]}"
fi
if [ "${#problems[@]}" -gt 0 ]; then
  echo "PROBLEMS:"; printf '  %s\n' "${problems[@]}"
  exit 1
fi
