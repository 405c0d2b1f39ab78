#!/usr/bin/env bash
# Fault: `enlace serve` killed with SIGKILL three times while signups arrive and their
# confirmation mails go out, restarted each time; on SQLite and on PostgreSQL.
#
# Guarantees (README, "What Enlace is for" and "Mail delivery"): every signup answered 202 gets
# its confirmation; a kill can send again only the confirmations in their SMTP exchange at that
# moment, at most ENLACE_MAIL_CONCURRENCY per kill; everything else goes out as soon as the
# process is back, without waiting for the lease (ENLACE_MAIL_LEASE_SECONDS), which only the
# few held by a killed process wait for.
#
#   faults/kill-signups.sh               # COUNT=2000 KILLS=3 CONCURRENCY=8 LEASE_S=90
#   BACKENDS=sqlite faults/kill-signups.sh
set -euo pipefail
# shellcheck source=faults/lib.sh
source "$(dirname "$0")/lib.sh"

COUNT="${COUNT:-2000}"
KILLS="${KILLS:-3}"
CONCURRENCY="${CONCURRENCY:-8}"
LEASE_S="${LEASE_S:-90}"
BACKENDS="${BACKENDS:-sqlite postgres}"
# Seconds after the last restart by which everything not held by a killed process is out.
PROMPT_S="${PROMPT_S:-30}"
APP_PORT=18231
SINK_PORT=12631
fl_init kill-signups "${BUDGET_S:-420}"

# load PORT FIRST LAST OUT: posts signups sign{FIRST..LAST}@example.org from 16 threads, as a
# web form's visitor would: a request that got no answer (the server was down) is sent again,
# for up to 30 s. Appends the address of every one answered 202 to OUT.
load() {
  python3 - "$@" <<'PY'
import concurrent.futures, http.client, json, sys, time
port, first, last, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def post(i):
    email = f"sign{i}@example.org"
    give_up = time.monotonic() + 30
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("POST", "/api/v1/subscribe", json.dumps({"email": email}),
                      {"Content-Type": "application/json"})
            ok = c.getresponse().status == 202
            c.close()
            return email if ok else None
        except OSError:
            if time.monotonic() > give_up:
                return None
            time.sleep(0.2)
with concurrent.futures.ThreadPoolExecutor(16) as pool, open(out, "a") as f:
    for email in pool.map(post, range(first, last + 1)):
        if email:
            f.write(email + "\n")
PY
}

run_backend() {
  local backend="$1" url settings kills_done=0 half at restarted
  say "[$backend] preparing"
  url=$(fresh_db "$backend" "enlace_faults_signups_$$")
  rm -f "$DUMPS/confirm-$backend.dump"
  sink_start "confirm-$backend" "$SINK_PORT"
  settings=(ENLACE_MAIL_CONCURRENCY="$CONCURRENCY" ENLACE_MAIL_LEASE_SECONDS="$LEASE_S")
  serve "app-$backend" "$APP_PORT" "$url" "$SINK_PORT" "${settings[@]}"
  : > "$WORK/accepted-$backend.txt"

  # Kill 1: in the middle of the signups (only those answered 202 are promised anything).
  half=$((COUNT / 2))
  load "$APP_PORT" 1 "$half" "$WORK/accepted-$backend.txt" &
  local loader=$!
  FL_PIDS+=("$loader")
  load "$APP_PORT" $((half + 1)) "$COUNT" "$WORK/accepted-$backend.txt" &
  local loader2=$!
  FL_PIDS+=("$loader2")
  while [ "$(wc -l < "$WORK/accepted-$backend.txt")" -lt $((COUNT / 3)) ]; do
    check_deadline "[$backend] waiting for signups"
    sleep 0.05
  done
  kill -9 "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true
  kills_done=1
  say "[$backend] kill -9 #1 during signups ($(wc -l < "$WORK/accepted-$backend.txt") accepted); restarting"
  serve "app-$backend" "$APP_PORT" "$url" "$SINK_PORT" "${settings[@]}"
  wait "$loader" "$loader2" || true
  local accepted
  accepted=$(sort -u "$WORK/accepted-$backend.txt" | wc -l)
  say "[$backend] $accepted signups accepted"

  # Kills 2..KILLS: while the confirmations go out.
  for k in $(seq 2 "$KILLS"); do
    local target=$((accepted * (k - 1) / KILLS))
    while [ "$(sink_count "confirm-$backend")" -lt "$target" ]; do
      check_deadline "[$backend] waiting for $target confirmations before kill $k"
      kill -0 "$SERVE_PID" 2>/dev/null || die "enlace serve exited by itself"
      sleep 0.02
    done
    at=$(sink_count "confirm-$backend")
    kill -9 "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true
    kills_done=$k
    say "[$backend] kill -9 #$k at $at confirmations received; restarting"
    serve "app-$backend" "$APP_PORT" "$url" "$SINK_PORT" "${settings[@]}"
  done
  restarted=$SECONDS

  # Everything but what the killed processes held goes out promptly.
  local bound=$((kills_done * CONCURRENCY))
  received() {
    dump_check "$WORK/accepted-$backend.txt" "$DUMPS/confirm-$backend.dump" \
      | awk -v accepted="$accepted" 'NR == 1 {print accepted - $4}'
  }
  while [ "$(received)" -lt $((accepted - bound)) ] && [ $((SECONDS - restarted)) -lt "$PROMPT_S" ]; do
    sleep 0.5
  done
  local prompt_s=$((SECONDS - restarted))
  # Then the held ones, after their lease.
  while [ "$(received)" -lt "$accepted" ]; do
    check_deadline "[$backend] waiting for the held confirmations"
    sleep 1
  done
  stop_serve "$SERVE_PID"
  sink_stop "$SINK_PID"

  local messages distinct dups missing
  read -r messages distinct dups missing _ < \
    <(dump_check "$WORK/accepted-$backend.txt" "$DUMPS/confirm-$backend.dump" | awk 'NR == 1')
  # Confirmations for signups that were committed but whose answer a kill cut off are extra
  # recipients, not duplicates; dump_check counts copies per address either way.
  say "[$backend] sink: $messages confirmations, $distinct addresses, $dups duplicates (bound $bound)," \
      "$missing accepted signups without one; all but the held ones out ${prompt_s} s after the restart"
  expect "[$backend] every accepted signup got its confirmation ($missing missing)" test "$missing" = 0
  expect "[$backend] duplicates $dups <= $kills_done kills x ENLACE_MAIL_CONCURRENCY $CONCURRENCY" \
    test "$dups" -le "$bound"
  expect "[$backend] all but the held ones out within ${PROMPT_S} s of the restart (${prompt_s} s)" \
    test "$prompt_s" -lt "$PROMPT_S"
  expect "[$backend] no panic in the server log" test "$(panics "$WORK/app-$backend.log")" = 0
  RESULTS+=("$backend: $accepted accepted, $missing missing, $dups duplicates (bound $bound), rest out in ${prompt_s} s")
  drop_db "$backend" "enlace_faults_signups_$$"
}

RESULTS=()
for backend in $BACKENDS; do
  run_backend "$backend"
done
fl_result "$KILLS kills each; $(IFS=';'; echo "${RESULTS[*]}")"
