#!/usr/bin/env bash
# Fault: two `enlace serve` processes on one PostgreSQL database send one newsletter together.
# Each talks to its own SMTP sink, so what each process sent can be told apart.
#
# Guarantee (README, "How sending works"): each process claims different deliveries (FOR UPDATE
# SKIP LOCKED under a lease), so with nothing killed nobody gets the newsletter twice: 0
# duplicates, every recipient reached, and both processes took part.
#
#   faults/two-senders.sh                # COUNT=10000 CONCURRENCY=8 RATE=700 (per process)
set -euo pipefail
FL_WANTS_POSTGRES=1
# shellcheck source=faults/lib.sh
source "$(dirname "$0")/lib.sh"

COUNT="${COUNT:-10000}"
CONCURRENCY="${CONCURRENCY:-8}"
RATE="${RATE:-700}"   # per process, so the send lasts long enough for both to join in
LEASE_S="${LEASE_S:-30}"
PORT_A=18231
PORT_B=18232
SINK_A=12631
SINK_B=12632
PG_PORT=15432   # below the ephemeral range (32768–60999), where an outgoing connection may hold it
fl_init two-senders "${BUDGET_S:-180}"

pg_seeded "$PG_PORT" "$COUNT"
url=$DB_URL

settings=(ENLACE_SEND_CONCURRENCY="$CONCURRENCY" ENLACE_SEND_RATE="$RATE" ENLACE_SEND_LEASE_SECONDS="$LEASE_S")
sink_start sink-a "$SINK_A"
sink_a=$SINK_PID
sink_start sink-b "$SINK_B"
sink_b=$SINK_PID
serve a "$PORT_A" "$url" "$SINK_A" "${settings[@]}"
app_a=$SERVE_PID
serve b "$PORT_B" "$url" "$SINK_B" "${settings[@]}"
app_b=$SERVE_PID
key=$(api_key "$PORT_A")
nl=$(newsletter_send "$PORT_A" "$key")
say "newsletter $nl sending to $COUNT through two processes"

final=$(wait_sent "$PORT_A" "$key" "$nl") || true
final_b=$(progress "$PORT_B" "$key" "$nl")
say "newsletter: $final (process b sees: $final_b)"
stop_serve "$app_a"
stop_serve "$app_b"
sink_stop "$sink_a"
sink_stop "$sink_b"

read -r status sent _ _ _ _ <<< "$final"
check=$(dump_check "$WORK/expected.txt" "$DUMPS/sink-a.dump" "$DUMPS/sink-b.dump")
read -r _ distinct dups missing unexpected _ _ <<< "$(awk 'NR == 1' <<< "$check")"
by_a=$(awk '$2 == "sink-a" {print $3}' <<< "$check")
by_b=$(awk '$2 == "sink-b" {print $3}' <<< "$check")
say "sinks: process a sent $by_a, process b sent $by_b; $distinct distinct recipients," \
    "$dups duplicates, $missing missing, $unexpected unexpected"

expect "the newsletter finished (status $status)" test "$status" = sent
expect "the server recorded $COUNT sent ($sent)" test "$sent" = "$COUNT"
expect "every recipient received it ($distinct of $COUNT, $missing missing)" \
  test "$distinct" = "$COUNT" -a "$missing" = 0 -a "$unexpected" = 0
expect "0 duplicates ($dups)" test "$dups" = 0
expect "both processes sent part of it (a $by_a, b $by_b)" test "$by_a" -gt 0 -a "$by_b" -gt 0
expect "no panic in the server logs" test "$(panics "$WORK/a.log" "$WORK/b.log")" = 0

fl_result "$COUNT recipients: a sent $by_a, b sent $by_b; $missing missing, $dups duplicates"
