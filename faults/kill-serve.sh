#!/usr/bin/env bash
# Fault: `enlace serve` killed with SIGKILL three times during a 20,000-recipient newsletter,
# restarted each time; on SQLite and on PostgreSQL.
#
# Guarantee (README, "How sending works"): every recipient gets the newsletter, and a kill can
# only send again the messages that were in flight, at most ENLACE_SEND_CONCURRENCY per process
# (a message is in flight from its hand-over to SMTP until its outcome is committed). So over
# KILLS kills: duplicates <= KILLS x CONCURRENCY, and every copy of one delivery carries the same
# Message-ID. Claimed but unsent deliveries of a killed process come back after the lease
# (LEASE_S); the restarted process takes them over.
#
#   faults/kill-serve.sh                 # COUNT=20000 KILLS=3 CONCURRENCY=8 LEASE_S=10
#   BACKENDS=sqlite faults/kill-serve.sh
set -euo pipefail
# shellcheck source=faults/lib.sh
source "$(dirname "$0")/lib.sh"

COUNT="${COUNT:-20000}"
KILLS="${KILLS:-3}"
CONCURRENCY="${CONCURRENCY:-8}"
LEASE_S="${LEASE_S:-10}"
BACKENDS="${BACKENDS:-sqlite postgres}"
APP_PORT=18201
SINK_PORT=12601
fl_init kill-serve "${BUDGET_S:-360}"

run_backend() {
  local backend="$1" url name="enlace_faults_kill_$$"
  say "[$backend] seeding $COUNT confirmed subscribers"
  url=$(fresh_db "$backend" "$name" "$COUNT")
  expected_users "$COUNT" "$WORK/expected.txt"

  settings=(ENLACE_SEND_CONCURRENCY="$CONCURRENCY" ENLACE_SEND_LEASE_SECONDS="$LEASE_S")
  sink_start "newsletter-$backend" "$SINK_PORT"
  serve "app-$backend" "$APP_PORT" "$url" "$SINK_PORT" "${settings[@]}"
  key=$(api_key "$APP_PORT")
  nl=$(newsletter_send "$APP_PORT" "$key")
  say "[$backend] newsletter $nl sending to $COUNT"

  kills_done=0
  for k in $(seq 1 "$KILLS"); do
    # Kill points spread over the send: at k/(KILLS+1) of the recipients.
    target=$((COUNT * k / (KILLS + 1)))
    while [ "$(sink_count "newsletter-$backend")" -lt "$target" ]; do
      check_deadline "waiting for $target messages before kill $k"
      kill -0 "$SERVE_PID" 2>/dev/null || die "enlace serve exited by itself (see $WORK/app-$backend.log)"
      sleep 0.05
    done
    at=$(sink_count "newsletter-$backend")
    kill -9 "$SERVE_PID"
    wait "$SERVE_PID" 2>/dev/null || true
    kills_done=$k
    say "[$backend] kill -9 #$k at $at messages received; restarting"
    serve "app-$backend" "$APP_PORT" "$url" "$SINK_PORT" "${settings[@]}"
  done

  final=$(wait_sent "$APP_PORT" "$key" "$nl") || true
  say "[$backend] newsletter: $final"
  stop_serve "$SERVE_PID"
  sink_stop "$SINK_PID"

  read -r status sent _ _ _ _ <<< "$final"
  sent_sql="SELECT count(*) FROM deliveries WHERE newsletter_id = '$nl' AND state = 'sent'"
  if [ "$backend" = sqlite ]; then
    db_sent=$(sqlite3 "${url#sqlite://}" "$sent_sql")
  else
    db_sent=$(psql "$url" -Atc "$sent_sql")
  fi
  read -r messages distinct dups missing unexpected mismatched _ \
    < <(dump_check "$WORK/expected.txt" "$DUMPS/newsletter-$backend.dump" | awk 'NR == 1')
  bound=$((kills_done * CONCURRENCY))
  say "[$backend] sink: $messages messages, $distinct distinct recipients, $dups duplicates (bound $bound)," \
      "$missing missing, $unexpected unexpected, $mismatched with differing Message-IDs"

  expect "[$backend] the newsletter finished (status sent)" test "$status" = sent
  expect "[$backend] the server recorded $COUNT sent (API $sent, database $db_sent)" \
    test "$sent" = "$COUNT" -a "$db_sent" = "$COUNT"
  expect "[$backend] every recipient received it ($distinct of $COUNT, $missing missing)" \
    test "$distinct" = "$COUNT" -a "$missing" = 0 -a "$unexpected" = 0
  expect "[$backend] duplicates $dups <= in-flight bound $bound ($kills_done kills x ENLACE_SEND_CONCURRENCY $CONCURRENCY)" \
    test "$dups" -le "$bound"
  expect "[$backend] copies of one delivery share their Message-ID" test "$mismatched" = 0
  expect "[$backend] no panic in the server log" test "$(panics "$WORK/app-$backend.log")" = 0
  RESULTS+=("$backend: $kills_done kills, $distinct of $COUNT received, $missing missing, $dups duplicates (bound $bound)")
  drop_db "$backend" "$name"
}

RESULTS=()
for backend in $BACKENDS; do
  run_backend "$backend"
done
fl_result "$(IFS=';'; echo "${RESULTS[*]}")"
