#!/usr/bin/env bash
# Fault: people stop their mail while a newsletter is going out to them. Two `enlace serve`
# processes share one database (SQLite, then PostgreSQL) and both send a 5,000-recipient
# newsletter to an SMTP server that records when each transaction began (faults/timed_sink.py).
# Meanwhile 60 recipients stop their mail, a tenth of a second apart, each answered by one of the
# two processes: a complaint report, a hard-bounce report, or an erasure.
#
# Guarantee (README, "How sending works"): once a stop has been answered, by either process, no
# message whose SMTP exchange had not yet begun goes to that person. Counted from the sink's
# side: a message to one of them whose MAIL FROM reached the server more than 20 ms after their
# stop was answered (the sink reads a command a moment after it was written) is a violation.
# Also: nobody gets the newsletter twice, and everyone else gets it.
#
#   faults/unsubscribe-mid-send.sh       # COUNT=5000 RATE=150 (per process) VICTIMS=60
set -euo pipefail
# shellcheck source=faults/lib.sh
source "$(dirname "$0")/lib.sh"

COUNT="${COUNT:-5000}"
RATE="${RATE:-150}"
VICTIMS="${VICTIMS:-60}"
BACKENDS="${BACKENDS:-sqlite postgres}"
PORT_A=18261
PORT_B=18262
SINK_PORT=12661
# The keys send the newsletter, report complaints and bounces, and erase people.
STOP_SCOPES=(subscribers:read subscribers:write newsletters:write newsletters:send events:write)
fl_init unsubscribe-mid-send "${BUDGET_S:-240}"

# The timed sink's Python environment (pinned in faults/requirements.txt).
venv=/var/tmp/enlace-faults-venv
if ! "$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
  say "installing the timed SMTP sink's packages"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r faults/requirements.txt
fi

# stops PORT_A PORT_B KEY_A KEY_B NEWSLETTER: stops VICTIMS people mid-send; prints one line per
# stop: "<answered, Unix seconds> <address> <how>".
stops() {
  python3 - "$@" "$COUNT" "$VICTIMS" <<'PY'
import http.client, json, random, sys, time
port_a, port_b, key_a, key_b, newsletter, count, victims = sys.argv[1:]
count, victims = int(count), int(victims)
ports = {"a": (int(port_a), key_a), "b": (int(port_b), key_b)}

def call(which, method, path, body=None):
    port, key = ports[which]
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {key}"}
    if body is not None:
        body = json.dumps(body)
        headers["Content-Type"] = "application/json"
    c.request(method, path, body, headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data

def sent():
    status, data = call("a", "GET", f"/api/v1/newsletters/{newsletter}")
    return json.loads(data)["progress"]["sent"] if status == 200 else 0

# Wait until the send is well under way, then stop people it has not reached yet (most of them).
while sent() < count // 10:
    time.sleep(0.05)
rng = random.Random(7)
chosen = rng.sample(range(1, count + 1), victims)
for n, i in enumerate(chosen):
    email = f"user{i}@example.org"
    which = "ab"[n % 2]
    how = ("complaint", "hard_bounce", "erasure")[n % 3]
    if how == "erasure":
        status, data = call(which, "DELETE", f"/api/v1/subscribers/00000000-0000-4000-8000-{i:012x}")
        ok = status == 204
    else:
        status, data = call(which, "POST", "/api/v1/events",
                            [{"id": f"stop-{i}", "type": how, "email": email}])
        ok = status == 200
    answered = time.time()
    if not ok:
        print(f"stop of {email} by {how} answered {status}: {data[:200]!r}", file=sys.stderr)
        sys.exit(1)
    print(f"{answered:.6f} {email} {how}")
    time.sleep(0.1)
PY
}

# judge STOPS SINK_LOG: prints "violations stopped_in_time got_before duplicates missing".
judge() {
  python3 - "$@" "$COUNT" <<'PY'
import collections, sys
stops_path, log_path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
stopped = {}
for line in open(stops_path):
    at, email, how = line.split()
    stopped[email] = float(at)
began = collections.defaultdict(list)
for line in open(log_path):
    at, rcpt = line.split()
    began[rcpt].append(float(at))
violations, before = 0, 0
for email, at in stopped.items():
    for t in began.get(email, []):
        if t > at + 0.020:
            violations += 1
            print(f"violation: a message began {t - at:.3f} s after the stop was answered", file=sys.stderr)
        else:
            before += 1
duplicates = sum(len(v) - 1 for v in began.values())
missing = sum(1 for i in range(1, count + 1)
              if f"user{i}@example.org" not in stopped and f"user{i}@example.org" not in began)
print(violations, len(stopped) - before, before, duplicates, missing)
PY
}

run_backend() {
  local backend="$1" url name="enlace_faults_stop_$$"
  say "[$backend] seeding $COUNT confirmed subscribers"
  url=$(fresh_db "$backend" "$name" "$COUNT")
  local log="$WORK/began-$backend.log"
  : > "$log"
  port_free "$SINK_PORT"
  "$venv/bin/python" faults/timed_sink.py "$SINK_PORT" "$log" >> "$WORK/sink-$backend.out" 2>&1 &
  local sink=$!
  FL_PIDS+=("$sink")
  wait_port "$SINK_PORT"
  local settings=(ENLACE_SEND_RATE="$RATE" ENLACE_SEND_CONCURRENCY=8)
  serve "a-$backend" "$PORT_A" "$url" "$SINK_PORT" "${settings[@]}"
  local app_a=$SERVE_PID
  serve "b-$backend" "$PORT_B" "$url" "$SINK_PORT" "${settings[@]}"
  local app_b=$SERVE_PID
  local key_a key_b nl verdict final stops_rc=0
  key_a=$(api_key "$PORT_A" "${STOP_SCOPES[@]}")
  key_b=$(api_key "$PORT_B" "${STOP_SCOPES[@]}")
  nl=$(newsletter_send "$PORT_A" "$key_a")
  say "[$backend] newsletter $nl sending to $COUNT through two processes"
  stops "$PORT_A" "$PORT_B" "$key_a" "$key_b" "$nl" > "$WORK/stops-$backend.txt" 2> "$WORK/stops-$backend.err" || stops_rc=$?
  final=$(wait_sent "$PORT_A" "$key_a" "$nl" || true)
  say "[$backend] newsletter: $final"
  stop_serve "$app_a"
  stop_serve "$app_b"
  sleep 0.5
  kill "$sink" 2>/dev/null || true
  wait "$sink" 2>/dev/null || true
  verdict=$(judge "$WORK/stops-$backend.txt" "$log" 2> "$WORK/judge-$backend.err")
  read -r violations in_time before duplicates missing <<< "$verdict"
  say "[$backend] $(wc -l < "$WORK/stops-$backend.txt") people stopped their mail mid-send: $in_time before their message began, $before after (their message had begun); $violations messages began after a stop was answered"
  [ "$stops_rc" = 0 ] || say "[$backend] $(head -c 400 "$WORK/stops-$backend.err")"
  head -n 5 "$WORK/judge-$backend.err" >&2 || true
  expect "[$backend] every stop was answered" test "$stops_rc" = 0
  expect "[$backend] no message began after its recipient's stop was answered ($violations)" test "$violations" = 0
  expect "[$backend] at least a quarter of the stops came before the person's message (${in_time} of $VICTIMS)" test "$in_time" -ge $((VICTIMS / 4))
  expect "[$backend] nobody got the newsletter twice ($duplicates)" test "$duplicates" = 0
  expect "[$backend] everyone else got it ($missing missing)" test "$missing" = 0
  expect "[$backend] the send finished" test "${final%% *}" = sent
  expect "[$backend] no panic in the servers' logs" test "$(panics "$WORK/a-$backend.log" "$WORK/b-$backend.log")" = 0
  RESULTS+=("$backend: $in_time stopped in time, $violations violations, $duplicates duplicates")
  drop_db "$backend" "$name"
}

RESULTS=()
for backend in $BACKENDS; do
  run_backend "$backend"
done
fl_result "$VICTIMS stops mid-send; $(IFS=';'; echo "${RESULTS[*]}")"
