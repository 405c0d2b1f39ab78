#!/usr/bin/env bash
# Fault: `enlace serve` stopped (SIGTERM) and killed (SIGKILL) while readers click a newsletter's
# counted links; on SQLite and on PostgreSQL.
#
# Guarantee (README, "Counting clicks, and never who clicked"): clicks are counted in memory and
# written every 2 seconds; a stop writes them first, and a crash loses at most the last ~4
# seconds of them. So: clicks made just before a SIGTERM are all counted after the restart; clicks
# made 6 seconds before a SIGKILL are all counted; of clicks made just before a SIGKILL, none is
# counted twice (the count never exceeds the clicks made).
#
#   faults/clicks-crash.sh               # CLICKS=40
#   BACKENDS=sqlite faults/clicks-crash.sh
set -euo pipefail
# shellcheck source=faults/lib.sh
source "$(dirname "$0")/lib.sh"

CLICKS="${CLICKS:-40}"
BACKENDS="${BACKENDS:-sqlite postgres}"
APP_PORT=18241
SINK_PORT=12641
fl_init clicks-crash "${BUDGET_S:-180}"

# click LINK N TAG: N clicks on LINK, each from a different reader's browser.
click() {
  local i
  for i in $(seq 1 "$2"); do
    curl -s -o /dev/null --max-time 5 -A "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0 $3-$i" "$1"
  done
}
# counted PORT KEY ID: the newsletter's clicks as its results give them.
counted() {
  curl -sf --max-time 5 -H "Authorization: Bearer $2" "http://127.0.0.1:$1/api/v1/newsletters/$3/results" \
    | json 'd["clicks"]["clicks"]'
}

run_backend() {
  local backend="$1" url name="enlace_faults_clicks_$$"
  url=$(fresh_db "$backend" "$name" 3)
  sink_start "clicks-$backend" "$SINK_PORT"
  serve "app-$backend" "$APP_PORT" "$url" "$SINK_PORT" ENLACE_RESULTS_MIN_COUNT=1
  key=$(api_key "$APP_PORT")
  api="http://127.0.0.1:$APP_PORT/api/v1"
  nl=$(curl -sf --max-time 10 "$api/newsletters" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d '{"subject":"Town hall","count_clicks":true,"filter":{"language":"en"},"html":"<p><a href=\"https://example.org/town-hall\">Town hall</a></p>"}' \
    | json 'd["id"]')
  curl -sf --max-time 10 -o /dev/null -X POST -H "Authorization: Bearer $key" "$api/newsletters/$nl/send"
  final=$(wait_sent "$APP_PORT" "$key" "$nl") || die "the newsletter did not finish: $final"
  # The link every recipient got (the preview renders the message as it is sent).
  link=$(curl -sf --max-time 10 -X POST -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    "$api/newsletters/$nl/preview" -d '{}' | python3 -c 'import json,re,sys; print(re.findall(r"href=\"([^\"]*/l/[^\"]*)\"", json.load(sys.stdin)["html"])[0])')
  say "[$backend] counted link $link"

  click "$link" "$CLICKS" stop
  stop_serve "$SERVE_PID"
  serve "app-$backend" "$APP_PORT" "$url" "$SINK_PORT" ENLACE_RESULTS_MIN_COUNT=1
  after_stop=$(counted "$APP_PORT" "$key" "$nl")
  expect "[$backend] clicks made just before a stop are all counted ($after_stop of $CLICKS)" \
    test "$after_stop" = "$CLICKS"

  click "$link" "$CLICKS" settled
  sleep 6
  kill -9 "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true
  serve "app-$backend" "$APP_PORT" "$url" "$SINK_PORT" ENLACE_RESULTS_MIN_COUNT=1
  after_crash=$(counted "$APP_PORT" "$key" "$nl")
  expect "[$backend] clicks made 6 s before a crash are all counted ($after_crash of $((2 * CLICKS)))" \
    test "$after_crash" = $((2 * CLICKS))

  click "$link" "$CLICKS" lost
  kill -9 "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true
  serve "app-$backend" "$APP_PORT" "$url" "$SINK_PORT" ENLACE_RESULTS_MIN_COUNT=1
  last=$(counted "$APP_PORT" "$key" "$nl")
  say "[$backend] of $CLICKS clicks made just before a crash, $((last - after_crash)) were counted"
  expect "[$backend] no click is counted twice after a crash ($last of at most $((3 * CLICKS)))" \
    test "$last" -ge "$after_crash" -a "$last" -le $((3 * CLICKS))
  stop_serve "$SERVE_PID"
  sink_stop "$SINK_PID"
  expect "[$backend] no panic in the server's log" test "$(panics "$WORK/app-$backend.log")" = 0
  RESULTS+=("$backend: $after_stop/$CLICKS after a stop, $after_crash/$((2 * CLICKS)) after a crash")
  drop_db "$backend" "$name"
}

RESULTS=()
for backend in $BACKENDS; do
  run_backend "$backend"
done
fl_result "$(IFS=';'; echo "${RESULTS[*]}")"
