#!/usr/bin/env bash
# Fault: the SMTP server is down (connection refused) for DOWN_S seconds (60) while a burst of
# SIGNUPS (300) people sign up through the public endpoint; then it comes back.
#
# Guarantee (README, "Mail delivery"): a confirmation is queued in the same transaction as the
# signup and retried with backoff (30 s, doubling) until the relay takes it, so once the relay is
# back every signup's confirmation arrives, exactly once, in the person's language.
#
#   faults/smtp-down.sh                  # SIGNUPS=300 DOWN_S=60
set -euo pipefail
# shellcheck source=faults/lib.sh
source "$(dirname "$0")/lib.sh"

SIGNUPS="${SIGNUPS:-300}"
DOWN_S="${DOWN_S:-60}"
APP_PORT=18211
SINK_PORT=12611
fl_init smtp-down "${BUDGET_S:-$((DOWN_S + 180))}"

url="sqlite://$WORK/enlace.db"
db_prepare sqlite "$url" 0
seq 1 "$SIGNUPS" | sed 's/.*/signup&@example.org/' > "$WORK/expected.txt"

port_free "$SINK_PORT"   # nothing listens there: every connection is refused
serve app "$APP_PORT" "$url" "$SINK_PORT"
down_from=$SECONDS
say "SMTP down; $SIGNUPS signups through POST /api/v1/subscribe"
accepted=$(python3 - "$APP_PORT" "$SIGNUPS" <<'PY'
import concurrent.futures, json, sys, urllib.request
port, n = int(sys.argv[1]), int(sys.argv[2])
def signup(i):
    body = json.dumps({"email": f"signup{i}@example.org", "name": f"Signup {i}",
                       "language": "es" if i % 2 else "en", "source": "faults"}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/subscribe", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    codes = list(pool.map(signup, range(1, n + 1)))
print(sum(1 for c in codes if c == 202))
PY
)
say "$accepted of $SIGNUPS signups answered 202"

# The worker tries meanwhile and is refused; keep the relay away for the whole DOWN_S.
while [ $((SECONDS - down_from)) -lt "$DOWN_S" ]; do
  check_deadline "SMTP outage"
  sleep 1
done
refused=$(sqlite3 "$WORK/enlace.db" "SELECT count(*) FROM jobs WHERE kind LIKE 'mail.%' AND state = 'queued' AND attempts > 0")
sink_start confirmations "$SINK_PORT"
up_at=$SECONDS
say "SMTP back after $((SECONDS - down_from)) s; $refused confirmations waiting to be retried"

# Wait for every confirmation (the next retry is up to one backoff step away), then for the
# queue to hold nothing more, so late duplicates would be counted too.
while :; do
  messages=$(dump_check "$WORK/expected.txt" "$DUMPS/confirmations.dump" | awk 'NR == 1 {print $1}')
  open=$(sqlite3 "$WORK/enlace.db" "SELECT count(*) FROM jobs WHERE kind LIKE 'mail.%' AND state IN ('queued', 'running')")
  [ "$messages" -ge "$SIGNUPS" ] && [ "$open" = 0 ] && break
  if [ "$(left)" -le 0 ]; then say "deadline: $messages confirmations, $open jobs still open"; break; fi
  sleep 1
done
arrived_after=$((SECONDS - up_at))
sink_stop "$SINK_PID"

read -r messages distinct dups missing unexpected _ max_copies \
  < <(dump_check "$WORK/expected.txt" "$DUMPS/confirmations.dump" | awk 'NR == 1')
# Each message in its person's language (odd numbers signed up in Spanish), and its link works:
# every token is confirmed through POST /api/v1/confirm.
read -r right_language confirmed < <(python3 - "$DUMPS/confirmations.dump" "$APP_PORT" <<'PY'
import json, re, sys, urllib.request
right, tokens, rcpt = 0, [], None
for line in open(sys.argv[1], "rb"):
    if line.startswith(b"X-Rcpt-Args: "):
        rcpt = int(re.search(rb"signup(\d+)@", line).group(1))
    elif rcpt is not None and line.lower().startswith(b"content-language:"):
        right += line.split(b":", 1)[1].strip() == (b"es" if rcpt % 2 else b"en")
    else:
        m = re.search(rb"/confirm/([A-Za-z0-9_-]+)\s*$", line)
        if m and rcpt is not None:
            tokens.append(m.group(1).decode())
            rcpt = None
confirmed = 0
for token in tokens:
    req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[2]}/api/v1/confirm",
                                 data=json.dumps({"token": token}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            confirmed += json.load(r).get("status") == "confirmed"
    except urllib.error.HTTPError:
        pass
print(right, confirmed)
PY
)
stop_serve "$SERVE_PID"
failed_jobs=$(sqlite3 "$WORK/enlace.db" "SELECT count(*) FROM jobs WHERE state = 'failed'")
say "sink: $messages confirmations to $distinct addresses, $dups duplicates, $missing missing," \
    "$right_language in the right language, $confirmed links confirmed;" \
    "all in within ${arrived_after} s of SMTP returning"

expect "every signup was accepted ($accepted of $SIGNUPS)" test "$accepted" = "$SIGNUPS"
expect "the worker was refused during the outage ($refused retries pending)" test "$refused" -gt 0
expect "every confirmation arrived ($distinct of $SIGNUPS, $missing missing)" \
  test "$distinct" = "$SIGNUPS" -a "$missing" = 0 -a "$unexpected" = 0
expect "each address received exactly one ($dups duplicates)" test "$dups" = 0 -a "$max_copies" = 1
expect "each in its person's language ($right_language of $SIGNUPS)" test "$right_language" = "$SIGNUPS"
expect "each confirmation link works ($confirmed of $SIGNUPS confirmed)" test "$confirmed" = "$SIGNUPS"
expect "no confirmation given up on ($failed_jobs failed jobs)" test "$failed_jobs" = 0
expect "no panic in the server log" test "$(panics "$WORK/app.log")" = 0

fl_result "down ${DOWN_S} s; $SIGNUPS signups, $distinct confirmations, $missing missing, $dups duplicates; in ${arrived_after} s after SMTP returned"
