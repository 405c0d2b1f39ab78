#!/usr/bin/env bash
# Fault: one client opens 1,100 connections that send their request headers and then trickle
# the body (one byte, then nothing), against `enlace serve` started with a 1,024 open-file limit
# (a common service default); on SQLite and on PostgreSQL.
#
# Guarantee (README, "Abuse protection"): the attacker holds at most ENLACE_CLIENT_MAX_REQUESTS
# requests; the rest are refused at once and disconnected; bodies that stop arriving are cut off
# (408) after ENLACE_BODY_IDLE_SECONDS; meanwhile health checks and signups from other clients
# answer as fast as before the attack.
#
#   faults/slow-clients.sh               # CONNECTIONS=1100 IDLE_S=10
set -euo pipefail
# shellcheck source=faults/lib.sh
source "$(dirname "$0")/lib.sh"

CONNECTIONS="${CONNECTIONS:-1100}"
IDLE_S="${IDLE_S:-10}"
BACKENDS="${BACKENDS:-sqlite postgres}"
APP_PORT=18241
SINK_PORT=12641
fl_init slow-clients "${BUDGET_S:-180}"

run_backend() {
  local backend="$1" url
  url=$(fresh_db "$backend" "enlace_faults_slow_$$")
  sink_start "slow-$backend" "$SINK_PORT"
  serve "app-$backend" "$APP_PORT" "$url" "$SINK_PORT" ENLACE_BODY_IDLE_SECONDS="$IDLE_S"
  # The service's own file limit: 1,024, soft and hard, as many service managers set it.
  prlimit --nofile=1024:1024 --pid "$SERVE_PID"
  local before during attacker_out
  # Probes come from 127.0.0.9, another client than the attacker's 127.0.0.5.
  before=$(probe "$APP_PORT" "before" 127.0.0.9)
  say "[$backend] before the attack: worst ${before% *} ms, ${before#* } failures"
  # The attack, from 127.0.0.5: holds its connections for IDLE_S + 5 s, then reports what
  # each connection was answered.
  python3 - "$APP_PORT" "$CONNECTIONS" "$((IDLE_S + 5))" > "$WORK/attack-$backend.out" <<'PY' &
import collections, resource, select, socket, sys, time
port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * n)), hard))
socks = []
for _ in range(n):
    s = socket.socket()
    s.bind(("127.0.0.5", 0))
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"POST /api/v1/subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{")
        socks.append(s)
    except OSError:
        s.close()
time.sleep(hold)
# A connection the server answered or closed is readable; one it still waits on is not.
answers = collections.Counter()
poller = select.poll()
for s in socks:
    poller.register(s, select.POLLIN)
readable = {fd for fd, _ in poller.poll(500)}
for s in socks:
    if s.fileno() not in readable:
        answers["silent"] += 1
        continue
    try:
        answers[s.recv(12).decode(errors="replace")[9:12] or "closed"] += 1
    except ConnectionResetError:
        answers["reset"] += 1
print(len(socks), dict(answers))
PY
  local attack=$!
  FL_PIDS+=("$attack")
  sleep 2
  during=$(probe "$APP_PORT" "during" 127.0.0.9)
  say "[$backend] during the attack: worst ${during% *} ms, ${during#* } failures"
  wait "$attack" || true
  attacker_out=$(cat "$WORK/attack-$backend.out")
  say "[$backend] the attacker's connections: $attacker_out"
  stop_serve "$SERVE_PID"
  sink_stop "$SINK_PID"
  local held
  held=$(python3 -c "import ast,sys; n, a = sys.argv[1].split(' ', 1); a = ast.literal_eval(a); print(a.get('silent', 0))" "$attacker_out")
  expect "[$backend] no failed health check or signup from another client during the attack" test "${during#* }" = 0
  expect "[$backend] worst answer during the attack (${during% *} ms) within 5x before (${before% *} ms) or 250 ms" \
    test "${during% *}" -le $(( ${before% *} * 5 > 250 ? ${before% *} * 5 : 250 ))
  expect "[$backend] no attacker connection still waiting after the idle limit ($held)" test "$held" = 0
  expect "[$backend] no panic in the server log" test "$(panics "$WORK/app-$backend.log")" = 0
  RESULTS+=("$backend: worst ${before% *} ms before, ${during% *} ms during")
  drop_db "$backend" "enlace_faults_slow_$$"
}

RESULTS=()
for backend in $BACKENDS; do
  run_backend "$backend"
done
fl_result "$CONNECTIONS slow connections; $(IFS=';'; echo "${RESULTS[*]}")"
