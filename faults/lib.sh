# shellcheck shell=bash
# shellcheck disable=SC2034  # PG_URL, SERVE_PID, SINK_PID… are read by the scripts that source this
# Shared shell functions of the fault scripts in faults/ (sourced, not run).
#
# Each script sources this file, calls fl_init NAME BUDGET_SECONDS, and ends with fl_result. What
# it starts (Enlace processes, SMTP sinks, a throwaway PostgreSQL cluster) is registered here and
# stopped by the EXIT trap, and its temporary folders are removed. Everything listens on loopback.
#
# Settings read here: ENLACE_BIN (a built `enlace`; default: `cargo build --bin enlace` in the
# debug profile, under CARGO_TARGET_DIR), FAULTS_RESULTS (a file the summary line is appended to;
# run-all.sh sets it), KEEP_WORK=1 (keep the work folder: logs, sink dumps, databases).

FL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FL_PIDS=()
FL_PG_DATA=""
FL_PG_BIN=""
FL_FAILED=()
STAFF_EMAIL="admin@example.org"
STAFF_PASSWORD="fault-password-0123456789"
POSTAL_ADDRESS="Enlace Faults, 1 Main St, Phoenix AZ 85001"
SECRET_KEY="fault-secret-key-0123456789abcdef0123456789"

say() { printf '[%s %5ss] %s\n' "$FL_NAME" "$((SECONDS - FL_T0))" "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

# fl_init NAME BUDGET_SECONDS: work folder, cleanup trap, tools, the binary, a deadline.
fl_init() {
  FL_NAME="$1"
  FL_T0=$SECONDS
  FL_DEADLINE=$((SECONDS + $2))
  cd "$FL_ROOT" || exit 1
  WORK="$(mktemp -d "/tmp/enlace-faults-$1.XXXXXX")"
  # Sink dumps hold every message; memory is faster than disk when there is room.
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    DUMPS="$(mktemp -d "/dev/shm/enlace-faults-$1.XXXXXX")"
  else
    DUMPS="$WORK/dumps"; mkdir -p "$DUMPS"
  fi
  chmod 777 "$DUMPS"   # smtp-sink drops to `nobody` before it writes
  trap fl_cleanup EXIT
  trap 'exit 130' INT TERM
  fl_need_tools
  if [ -z "${ENLACE_BIN:-}" ]; then
    cargo build --quiet --bin enlace
    ENLACE_BIN="${CARGO_TARGET_DIR:-$FL_ROOT/target}/debug/enlace"
  fi
  [ -x "$ENLACE_BIN" ] || die "no enlace binary at $ENLACE_BIN"
  BIN="$ENLACE_BIN"
}

fl_cleanup() {
  local rc=$? p
  trap - EXIT
  for p in "${FL_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${FL_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$FL_PG_DATA" ]; then
    fl_as_postgres "$FL_PG_BIN/pg_ctl" -D "$FL_PG_DATA" -m fast -w -t 20 stop >/dev/null 2>&1 \
      || fl_as_postgres "$FL_PG_BIN/pg_ctl" -D "$FL_PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ "${KEEP_WORK:-0}" = 1 ]; then
    echo "work folder kept: $WORK (dumps: $DUMPS)"
  else
    rm -rf "$WORK" "$DUMPS"
  fi
  exit "$rc"
}

# Installs what the scripts use when it is missing: postfix for its smtp-sink binary (the daemon
# is stopped again), sqlite3, curl, the PostgreSQL client and, when $1 is `postgres`, the server.
fl_need_tools() {
  local need=()
  [ -x /usr/sbin/smtp-sink ] || need+=(postfix)
  command -v sqlite3 >/dev/null || need+=(sqlite3)
  command -v curl >/dev/null || need+=(curl)
  command -v python3 >/dev/null || need+=(python3)
  command -v psql >/dev/null || need+=(postgresql-client)
  if [ "${FL_WANTS_POSTGRES:-0}" = 1 ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    need+=(postgresql)
  fi
  if [ "${#need[@]}" -gt 0 ]; then
    say "installing ${need[*]}"
    "$(dirname "${BASH_SOURCE[0]}")/../.ci/apt-install" "${need[@]}"
  fi
}

left() { echo $((FL_DEADLINE - SECONDS)); }
check_deadline() { [ "$(left)" -gt 0 ] || die "out of time ($*)"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# wait_port PORT [SECONDS]: until something listens on the port.
wait_port() {
  local until=$((SECONDS + ${2:-30}))
  while ! port_open "$1"; do
    [ "$SECONDS" -lt "$until" ] || die "port $1 did not open"
    sleep 0.1
  done
}
port_free() {
  local until=$((SECONDS + 10))
  while port_open "$1"; do
    [ "$SECONDS" -lt "$until" ] || die "port $1 is in use"
    sleep 0.1
  done
}

# ---- SMTP sink -------------------------------------------------------------------------------

# sink_start NAME PORT: postfix's smtp-sink on 127.0.0.1:PORT. Each message it accepted (only
# after the final ".", so a transaction cut off mid-way is not there) is appended to
# $DUMPS/NAME.dump; -c keeps running counters (mesg=N) in $WORK/NAME.sink. Sets SINK_PID.
sink_start() {
  local user=()
  [ "$(id -u)" = 0 ] && user=(-u nobody)
  port_free "$2"
  /usr/sbin/smtp-sink -c "${user[@]}" -D "$DUMPS/$1.dump" "127.0.0.1:$2" 1024 >> "$WORK/$1.sink" 2>&1 &
  SINK_PID=$!
  FL_PIDS+=("$SINK_PID")
  wait_port "$2"
}
# sink_stop PID: a moment for the last transactions, then stop it.
sink_stop() { sleep 0.5; kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
# sink_count NAME: messages the sink acknowledged so far (its own counter).
sink_count() {
  local n
  n=$(tail -c 300 "$WORK/$1.sink" 2>/dev/null | tr '\r' '\n' | grep -o 'mesg=[0-9]*' | tail -n 1 | cut -d= -f2)
  echo "${n:-0}"
}

# dump_check EXPECTED_FILE DUMP...: what the sinks received, against the addresses in
# EXPECTED_FILE (one a line). Prints "messages distinct duplicates missing unexpected
# mismatched_ids max_copies", then one "per-dump NAME messages" line per dump. A duplicate is
# every copy after the first to one address; mismatched_ids counts addresses whose copies carry
# different Message-IDs (newsletter copies of one delivery must share it).
dump_check() {
  python3 - "$@" <<'PY'
import collections, os, sys
expected = set(l.strip().lower() for l in open(sys.argv[1]) if l.strip())
copies, ids = collections.Counter(), collections.defaultdict(set)
per_dump = []
for path in sys.argv[2:]:
    n = 0
    rcpt = None
    if os.path.exists(path):
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(b"X-Client-Addr: "):
                    n += 1
                    rcpt = None
                elif line.startswith(b"X-Rcpt-Args: "):
                    rcpt = line[13:].strip().strip(b"<>").lower().decode()
                    copies[rcpt] += 1
                elif rcpt is not None and line.lower().startswith(b"message-id:"):
                    ids[rcpt].add(line.split(b":", 1)[1].strip())
    per_dump.append((os.path.basename(path).rsplit(".", 1)[0], n))
messages = sum(copies.values())
dups = sum(c - 1 for c in copies.values() if c > 1)
missing = len(expected - set(copies))
unexpected = len(set(copies) - expected)
mismatched = sum(1 for r, c in copies.items() if c > 1 and len(ids[r]) > 1)
print(messages, len(copies), dups, missing, unexpected, mismatched, max(copies.values(), default=0))
for name, n in per_dump:
    print("per-dump", name, n)
PY
}

# ---- Databases -------------------------------------------------------------------------------

# seed_sql sqlite|postgres COUNT: COUNT confirmed English subscribers user1..userCOUNT@example.org
# in one transaction (the rows an import or years of signups would leave).
seed_sql() {
  local id series
  if [ "$1" = sqlite ]; then
    id="printf('00000000-0000-4000-8000-%012x', i)"
    series="WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2) "
  else
    id="'00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0')"
    series=""
  fi
  echo "BEGIN;"
  echo "${series}INSERT INTO subscribers (id, email, name, language, status, attributes, source,
          created_at, updated_at, confirmed_at, unsubscribed_at)
        SELECT $id, 'user' || i || '@example.org', 'Supporter ' || i, 'en', 'confirmed', '{}',
          'faults', '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00', NULL"
  if [ "$1" = sqlite ]; then echo "FROM n;"; else echo "FROM generate_series(1, $2) AS i;"; fi
  echo "COMMIT;"
  [ "$1" = postgres ] && echo "ANALYZE;"
  return 0
}
# expected_users COUNT FILE: the addresses seed_sql creates.
expected_users() { seq 1 "$1" | sed 's/.*/user&@example.org/' > "$2"; }

PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

# fresh_db sqlite|postgres NAME [COUNT]: a database of its own (SQLite in $WORK, PostgreSQL on the
# machine's server at PG_ADMIN_URL), migrated, with the admin account and COUNT confirmed
# subscribers (seed_sql; none by default); prints its URL.
fresh_db() {
  local url
  if [ "$1" = sqlite ]; then
    url="sqlite://$WORK/$2.db"
  else
    PGOPTIONS=--client-min-messages=warning psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $2" \
      -c "CREATE DATABASE $2" >/dev/null
    url="${PG_ADMIN_URL%/*}/$2"
  fi
  db_prepare "$1" "$url" "${3:-0}" >&2
  echo "$url"
}
# drop_db sqlite|postgres NAME: removes what fresh_db made on PostgreSQL.
drop_db() {
  if [ "$1" = postgres ]; then
    PGOPTIONS=--client-min-messages=warning psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $2" >/dev/null || true
  fi
}

# db_prepare sqlite|postgres URL COUNT: migrations, COUNT subscribers, the admin account.
db_prepare() {
  ENLACE_DATABASE_URL="$2" ENLACE_LOG=warn "$BIN" migrate
  if [ "$3" -gt 0 ]; then
    if [ "$1" = sqlite ]; then
      seed_sql sqlite "$3" | sqlite3 "${2#sqlite://}"
    else
      seed_sql postgres "$3" | psql "$2" -q -v ON_ERROR_STOP=1 >/dev/null
    fi
  fi
  ENLACE_DATABASE_URL="$2" ENLACE_STAFF_PASSWORD="$STAFF_PASSWORD" ENLACE_LOG=warn \
    "$BIN" staff create --email "$STAFF_EMAIL" --role admin >/dev/null
}

# fl_as_postgres CMD...: PostgreSQL's tools refuse to run as root.
fl_as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# pg_cluster PORT: a throwaway PostgreSQL cluster of its own (trust, loopback) on PORT, removed
# at exit. Sets PG_URL (its `postgres` database).
pg_cluster() {
  FL_PG_BIN="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  [ -x "$FL_PG_BIN/initdb" ] || die "no PostgreSQL server binaries"
  port_free "$1"
  mkdir -p "$WORK/pg"
  [ "$(id -u)" = 0 ] && chown postgres "$WORK" "$WORK/pg"
  fl_as_postgres "$FL_PG_BIN/initdb" -D "$WORK/pg/data" -A trust -U postgres --no-sync >/dev/null
  FL_PG_DATA="$WORK/pg/data"
  FL_PG_PORT="$1"
  pg_up
  PG_URL="postgres://postgres@127.0.0.1:$1/postgres"
}
# A throwaway cluster on port $1 whose database `enlace` holds $2 confirmed subscribers
# (user1…userN@example.org, listed in $WORK/expected.txt); sets DB_URL to it.
pg_seeded() {
  pg_cluster "$1"
  psql "$PG_URL" -qc "CREATE DATABASE enlace" >/dev/null
  DB_URL="${PG_URL%/*}/enlace"
  say "seeding $2 confirmed subscribers (PostgreSQL on port $1)"
  db_prepare postgres "$DB_URL" "$2"
  expected_users "$2" "$WORK/expected.txt"
}

# pg_up: starts the cluster; if it does not come up, shows its log and tries once more.
pg_up() {
  local attempt
  for attempt in 1 2; do
    if fl_as_postgres "$FL_PG_BIN/pg_ctl" -D "$FL_PG_DATA" -l "$WORK/pg/server.log" -w -t 60 \
      -o "-p $FL_PG_PORT -c listen_addresses=127.0.0.1 -k $WORK/pg -c max_connections=60" start >/dev/null; then
      return 0
    fi
    say "PostgreSQL did not start (attempt $attempt); the end of its log:"
    tail -n 20 "$WORK/pg/server.log" >&2 || true
    sleep 2
  done
  die "PostgreSQL did not start on port $FL_PG_PORT"
}
# pg_down: a clean, fast shutdown (what a restart for an upgrade or a settings change does);
# open connections are cut.
pg_down() { fl_as_postgres "$FL_PG_BIN/pg_ctl" -D "$FL_PG_DATA" -m fast -w -t 60 stop >/dev/null; }

# ---- Enlace ----------------------------------------------------------------------------------

# serve NAME PORT DB_URL SMTP_PORT [VAR=VALUE...]: `enlace serve` on 127.0.0.1:PORT, logging
# (warnings and up) to $WORK/NAME.log. Sets SERVE_PID.
serve() {
  local name="$1" port="$2" url="$3" smtp="$4"
  shift 4
  port_free "$port"
  env ENLACE_DATABASE_URL="$url" ENLACE_LISTEN="127.0.0.1:$port" \
    ENLACE_PUBLIC_URL="http://127.0.0.1:$port" ENLACE_DATA_DIR="$WORK/data-$name" \
    ENLACE_SMTP_URL="smtp://127.0.0.1:$smtp" ENLACE_POSTAL_ADDRESS="$POSTAL_ADDRESS" \
    ENLACE_SECRET_KEY="$SECRET_KEY" ENLACE_FROM="News <news@example.org>" \
    ENLACE_PUBLIC_RATE_LIMIT=0 ENLACE_LOG=warn "$@" \
    "$BIN" serve >> "$WORK/$name.log" 2>&1 &
  SERVE_PID=$!
  FL_PIDS+=("$SERVE_PID")
  wait_port "$port" 60
}
# stop_serve PID: SIGTERM, as an orderly shutdown.
stop_serve() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
# panics LOG...: lines where a thread panicked.
panics() { cat "$@" 2>/dev/null | grep -c 'panicked' || true; }

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {'d': d}))" "$1"; }

# api_key PORT [SCOPE...]: signs in as the admin and prints a new API key with these scopes; by
# default one that can write and send newsletters and read their progress, which counts people
# and so takes subscribers:read too (a key, unlike a 15-minute access token, outlives every
# restart in a script).
api_key() {
  local api="http://127.0.0.1:$1/api/v1" token scopes
  shift
  [ "$#" -gt 0 ] || set -- subscribers:read newsletters:write newsletters:send
  scopes=$(printf '"%s",' "$@")
  token=$(curl -sf --max-time 10 "$api/auth/token" -H 'Content-Type: application/json' \
    -d "{\"email\":\"$STAFF_EMAIL\",\"password\":\"$STAFF_PASSWORD\"}" | json 'd["access_token"]')
  curl -sf --max-time 10 "$api/api-keys" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"name\":\"fault script\",\"scopes\":[${scopes%,}]}" | json 'd["key"]'
}

# probe PORT LABEL [SOURCE_ADDRESS]: 20 health checks and 20 signups from the public, one after
# another a tenth of a second apart (from SOURCE_ADDRESS, a loopback address, if given); prints
# "worst_ms failures".
probe() {
  python3 - "$@" <<'PY'
import http.client, json, sys, time
port, label = int(sys.argv[1]), sys.argv[2]
source = (sys.argv[3], 0) if len(sys.argv) > 3 else None
worst, failures = 0.0, 0
for i in range(40):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=source)
    t = time.monotonic()
    try:
        if i % 2:
            c.request("GET", "/healthz")
            ok = c.getresponse().status == 200
        else:
            c.request("POST", "/api/v1/subscribe", json.dumps({"email": f"{label}{i}@public.example"}),
                      {"Content-Type": "application/json"})
            ok = c.getresponse().status == 202
    except OSError:
        ok = False
    worst = max(worst, time.monotonic() - t)
    failures += not ok
    c.close()
    time.sleep(0.1)
print(int(worst * 1000), failures)
PY
}

# newsletter_send PORT KEY: creates a newsletter to every English subscriber, sends it, prints
# its id.
newsletter_send() {
  local api="http://127.0.0.1:$1/api/v1" id code
  id=$(curl -sf --max-time 10 "$api/newsletters" -H "Authorization: Bearer $2" \
    -H 'Content-Type: application/json' \
    -d '{"subject":"News for {{ name }}","html":"<p>Hello {{ name }},</p><p>The food bank opens on Saturday at 10:00.</p>","filter":{"language":"en"}}' \
    | json 'd["id"]')
  code=$(curl -s --max-time 10 -o "$WORK/send.json" -w '%{http_code}' -X POST \
    -H "Authorization: Bearer $2" -H "Idempotency-Key: fault-$id" "$api/newsletters/$id/send")
  [ "$code" = 202 ] || die "send answered $code: $(cat "$WORK/send.json")"
  echo "$id"
}
# progress PORT KEY ID: "status sent failed skipped pending total", or "unreachable".
progress() {
  curl -sf --max-time 5 -H "Authorization: Bearer $2" "http://127.0.0.1:$1/api/v1/newsletters/$3" 2>/dev/null \
    | json '" ".join(str(x) for x in [d["status"]] + [d["progress"][k] for k in ("sent","failed","skipped","pending","total")])' \
    2>/dev/null || echo unreachable
}
# wait_sent PORT KEY ID: polls until the newsletter is `sent` (or the deadline); prints the last
# progress line.
wait_sent() {
  local p
  while :; do
    p=$(progress "$@")
    case "$p" in sent\ *) echo "$p"; return 0 ;; esac
    if [ "$(left)" -le 0 ]; then echo "$p"; return 1; fi
    sleep 0.5
  done
}

# ---- Outcome ---------------------------------------------------------------------------------

# expect CONDITION_TEXT TEST...: records a failed guarantee when the test command fails.
expect() {
  local what="$1"
  shift
  if "$@"; then say "ok: $what"; else say "FAILED: $what"; FL_FAILED+=("$what"); fi
}
# fl_result COUNTS: prints the outcome line, appends it to $FAULTS_RESULTS, exits 1 on a failure.
fl_result() {
  local outcome=pass secs=$((SECONDS - FL_T0))
  [ "${#FL_FAILED[@]}" -eq 0 ] || outcome=FAIL
  say "RESULT $outcome: $1 (${secs} s)"
  if [ -n "${FAULTS_RESULTS:-}" ]; then
    printf '%s\t%s\t%s\t%s\n' "$FL_NAME" "$outcome" "$1" "$secs" >> "$FAULTS_RESULTS"
  fi
  [ "$outcome" = pass ]
}
