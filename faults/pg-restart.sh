#!/usr/bin/env bash
# Fault: PostgreSQL restarted (fast shutdown, DOWN_S seconds away, started again) in the middle
# of a newsletter send. Runs on a throwaway cluster of its own, never on a shared one.
#
# Guarantee (README, "How sending works"): the engine waits for the database (outcomes are held
# and written when it returns, and no new message takes an in-flight slot meanwhile) and the send
# continues on its own: every recipient gets the newsletter. The process is not killed, so the
# only messages that could go twice are ones in flight whose lease ran out before their outcomes
# could be written: at most ENLACE_SEND_CONCURRENCY.
#
#   faults/pg-restart.sh                 # COUNT=6000 DOWN_S=8 CONCURRENCY=8 RATE=400 LEASE_S=30
set -euo pipefail
FL_WANTS_POSTGRES=1
# shellcheck source=faults/lib.sh
source "$(dirname "$0")/lib.sh"

COUNT="${COUNT:-6000}"
DOWN_S="${DOWN_S:-8}"
CONCURRENCY="${CONCURRENCY:-8}"
RATE="${RATE:-400}"   # messages per second, so the send is still running when the database goes
LEASE_S="${LEASE_S:-30}"
APP_PORT=18221
SINK_PORT=12621
PG_PORT=15431   # below the ephemeral range (32768–60999), where an outgoing connection may hold it
fl_init pg-restart "${BUDGET_S:-180}"

pg_seeded "$PG_PORT" "$COUNT"
url=$DB_URL

sink_start newsletter "$SINK_PORT"
serve app "$APP_PORT" "$url" "$SINK_PORT" ENLACE_SEND_CONCURRENCY="$CONCURRENCY" \
  ENLACE_SEND_RATE="$RATE" ENLACE_SEND_LEASE_SECONDS="$LEASE_S"
key=$(api_key "$APP_PORT")
nl=$(newsletter_send "$APP_PORT" "$key")
say "newsletter $nl sending to $COUNT at up to $RATE/s"

target=$((COUNT / 4))
while [ "$(sink_count newsletter)" -lt "$target" ]; do
  check_deadline "waiting for $target messages"
  sleep 0.05
done
before=$(sink_count newsletter)
pg_down
stopped=$(sink_count newsletter)
say "PostgreSQL stopped at $before messages received; down for $DOWN_S s"
# While it is down: not ready, and a signup is told to come back (503 with Retry-After), not 500.
sleep 1
down_ready=$(curl -s -o /dev/null -w '%{http_code}' --max-time 15 "http://127.0.0.1:$APP_PORT/readyz" || true)
down_signup=$(curl -s -D "$WORK/signup-down.headers" -o /dev/null -w '%{http_code}' --max-time 15 \
  -H 'Content-Type: application/json' -d '{"email":"while-down@example.org"}' \
  "http://127.0.0.1:$APP_PORT/api/v1/subscribe" || true)
down_retry=$(grep -ci '^retry-after:' "$WORK/signup-down.headers" 2>/dev/null || true)
say "while down: /readyz $down_ready, signup $down_signup (Retry-After headers: $down_retry)"
sleep $((DOWN_S > 4 ? DOWN_S - 4 : 1))
during=$(( $(sink_count newsletter) - stopped ))
kill -0 "$SERVE_PID" 2>/dev/null || die "enlace serve exited while the database was down"
pg_up
say "PostgreSQL back; $during messages went out while it was down"
back=$SECONDS

final=$(wait_sent "$APP_PORT" "$key" "$nl") || true
say "newsletter: $final ($((SECONDS - back)) s after the database returned)"
ready=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$APP_PORT/readyz" || true)
stop_serve "$SERVE_PID"
sink_stop "$SINK_PID"

read -r status sent failed skipped _ _ <<< "$final"
read -r messages distinct dups missing unexpected mismatched _ \
  < <(dump_check "$WORK/expected.txt" "$DUMPS/newsletter.dump" | awk 'NR == 1')
say "sink: $messages messages, $distinct distinct recipients, $dups duplicates (bound $CONCURRENCY)," \
    "$missing missing, $unexpected unexpected"

expect "the send continued and finished (status $status)" test "$status" = sent
expect "the server recorded $COUNT sent ($sent sent, $failed failed, $skipped skipped)" test "$sent" = "$COUNT"
expect "every recipient received it ($distinct of $COUNT, $missing missing)" \
  test "$distinct" = "$COUNT" -a "$missing" = 0 -a "$unexpected" = 0
expect "duplicates $dups <= in-flight bound $CONCURRENCY" test "$dups" -le "$CONCURRENCY"
expect "copies of one delivery share their Message-ID" test "$mismatched" = 0
expect "/readyz answered 503 while the database was down ($down_ready)" test "$down_ready" = 503
expect "a signup while the database was down answered 503 with Retry-After ($down_signup)" \
  test "$down_signup" = 503 -a "${down_retry:-0}" -ge 1
expect "/readyz answers 200 again ($ready)" test "$ready" = 200
expect "no panic in the server log" test "$(panics "$WORK/app.log")" = 0

fl_result "down ${DOWN_S} s at $before; $COUNT recipients, $distinct received, $missing missing, $dups duplicates (bound $CONCURRENCY)"
