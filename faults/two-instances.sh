#!/usr/bin/env bash
# Fault: two `enlace serve` processes on one PostgreSQL database behind a round-robin load
# balancer (faults/round_robin.py), one of them killed with SIGKILL while signups arrive.
#
# Guarantee (README, "Several instances"): a signup answered 202 by either process is committed
# in the shared database with everything it causes, so losing a process loses nothing it
# acknowledged: every acknowledged address has its subscriber row, its consent record and its
# confirmation mail queued or sent. The balancer sends new connections to the survivor, and the
# signups cut off by the kill, sent again by their visitors, are acknowledged by it.
#
#   faults/two-instances.sh              # COUNT=3000 CLIENTS=16
set -euo pipefail
FL_WANTS_POSTGRES=1
# shellcheck source=faults/lib.sh
source "$(dirname "$0")/lib.sh"

COUNT="${COUNT:-3000}"
CLIENTS="${CLIENTS:-16}"
PROXY_PORT=18280
PORT_A=18281
PORT_B=18282
SINK_PORT=12681
PG_PORT=15481   # below the ephemeral range (32768–60999), where an outgoing connection may hold it
fl_init two-instances "${BUDGET_S:-120}"

# load PORT COUNT CLIENTS OUT: posts signups multi1..multiCOUNT@example.org through the balancer
# from CLIENTS threads, one connection per request, as visitors of a web form would: a request
# that got no answer, or an answer other than 202, is sent again a moment later, for up to 30 s.
# Appends the address of every one answered 202 to OUT as it comes; at the end prints
# "failed_attempts gave_up".
load() {
  python3 - "$@" <<'PY'
import concurrent.futures, http.client, json, sys, threading, time
port, count, clients, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lock = threading.Lock()
failed = 0
acknowledged = open(out, "a")
def post(i):
    global failed
    email = f"multi{i}@example.org"
    give_up = time.monotonic() + 30
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("POST", "/api/v1/subscribe", json.dumps({"email": email}),
                      {"Content-Type": "application/json"})
            ok = c.getresponse().status == 202
            c.close()
        except OSError:
            ok = False
        with lock:
            if ok:
                acknowledged.write(email + "\n")
                acknowledged.flush()
                return True
            failed += 1
        if time.monotonic() > give_up:
            return False
        time.sleep(0.1)
with concurrent.futures.ThreadPoolExecutor(clients) as pool:
    given_up = sum(not ok for ok in pool.map(post, range(1, count + 1)))
print(failed, given_up)
PY
}

pg_cluster "$PG_PORT"
psql "$PG_URL" -qc "CREATE DATABASE enlace" >/dev/null
url="${PG_URL%/*}/enlace"
db_prepare postgres "$url" 0

sink_start confirm "$SINK_PORT"
sink=$SINK_PID
serve a "$PORT_A" "$url" "$SINK_PORT"
app_a=$SERVE_PID
serve b "$PORT_B" "$url" "$SINK_PORT"
app_b=$SERVE_PID
python3 faults/round_robin.py "$PROXY_PORT" "$PORT_A" "$PORT_B" > "$WORK/proxy.out" 2>&1 &
proxy=$!
FL_PIDS+=("$proxy")
wait_port "$PROXY_PORT"
say "two processes (ports $PORT_A, $PORT_B) behind the balancer (port $PROXY_PORT); $COUNT signups from $CLIENTS clients"

: > "$WORK/acknowledged.txt"
load "$PROXY_PORT" "$COUNT" "$CLIENTS" "$WORK/acknowledged.txt" > "$WORK/load.out" &
loader=$!
FL_PIDS+=("$loader")
while [ "$(wc -l < "$WORK/acknowledged.txt")" -lt $((COUNT / 3)) ]; do
  check_deadline "waiting for signups before the kill"
  kill -0 "$loader" 2>/dev/null || die "the signup load ended early"
  sleep 0.05
done
kill -9 "$app_b"
wait "$app_b" 2>/dev/null || true
at_kill=$(wc -l < "$WORK/acknowledged.txt")
say "kill -9 of process b after $at_kill acknowledged signups; the load goes on through a"
while kill -0 "$loader" 2>/dev/null; do
  check_deadline "waiting for the signup load"
  kill -0 "$app_a" 2>/dev/null || die "process a exited by itself (see $WORK/a.log)"
  sleep 0.2
done
wait "$loader" || die "the signup load failed"
read -r failed gave_up < "$WORK/load.out"
stop_serve "$app_a"
kill -TERM "$proxy"
wait "$proxy" 2>/dev/null || true
sink_stop "$sink"

acknowledged=$(sort -u "$WORK/acknowledged.txt" | wc -l)
after_kill=$((acknowledged - at_kill))
read -r _ _ _ a_connected _ _ < <(grep "^backend $PORT_A " "$WORK/proxy.out")
read -r _ _ _ b_connected _ b_refused < <(grep "^backend $PORT_B " "$WORK/proxy.out")
say "balancer: process a took $a_connected connections, process b $b_connected; b refused $b_refused after the kill (passed to a)"
say "load: $acknowledged acknowledged ($after_kill after the kill); $failed requests got no 202 (cut off by the kill) and were sent again; $gave_up given up"

# What the shared database holds for every acknowledged address: the person, the consent record
# of the signup, and the confirmation mail queued, being sent or sent.
sort -u "$WORK/acknowledged.txt" > "$WORK/acknowledged-sorted.txt"
counts=$(psql "$url" -qAt -F ' ' -v ON_ERROR_STOP=1 <<SQL
CREATE TEMP TABLE acknowledged (email TEXT PRIMARY KEY);
\\copy acknowledged FROM '$WORK/acknowledged-sorted.txt'
WITH found AS (
  SELECT a.email,
    s.id IS NOT NULL AS person,
    EXISTS (SELECT 1 FROM consent_events c WHERE c.subscriber_id = s.id AND c.action = 'signup') AS consent,
    EXISTS (SELECT 1 FROM jobs j WHERE j.subscriber_id = s.id AND j.kind = 'mail.confirmation'
            AND j.state IN ('queued', 'running', 'done')) AS mail
  FROM acknowledged a LEFT JOIN subscribers s ON s.email = a.email
)
SELECT count(*) FILTER (WHERE person), count(*) FILTER (WHERE consent),
       count(*) FILTER (WHERE mail), count(*) FILTER (WHERE person AND consent AND mail)
FROM found;
SQL
)
read -r found consented mailed complete <<< "$counts"
lost=$((acknowledged - complete))
say "database: $found of $acknowledged acknowledged addresses found, $consented with their consent record," \
    "$mailed with their confirmation queued or sent; $lost lost"

expect "every acknowledged signup is in the database with its consent record and confirmation ($lost lost)" \
  test "$lost" = 0
expect "both processes served signups before the kill (a $a_connected, b $b_connected connections)" \
  test "$a_connected" -gt 0 -a "$b_connected" -gt 0
expect "the survivor acknowledged signups after the kill ($after_kill)" test "$after_kill" -gt 0
expect "every signup was acknowledged in the end, through the survivor ($gave_up given up)" \
  test "$gave_up" = 0 -a "$acknowledged" = "$COUNT"
expect "no panic in the server logs" test "$(panics "$WORK/a.log" "$WORK/b.log")" = 0

fl_result "$acknowledged acknowledged ($after_kill after the kill), $found found, $lost lost; $failed requests without a 202 (cut off by the kill) sent again, $b_refused connections refused by the dead process and passed to the survivor"
