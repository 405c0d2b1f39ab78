#!/usr/bin/env bash
# Fault: the disk that holds the SQLite database fills up while people sign up and their
# confirmations go out, and is freed again. The data folder is a 64 MiB tmpfs of its own (this
# needs root, as CI runs), filled with a file until nothing more fits.
#
# Guarantees (README, "No signup is lost" and "Health checks"): while the database cannot be
# written, signups are answered 503 with Retry-After (never 500, never a 202 that is not kept)
# and /readyz says not ready; once space is back, /readyz is ready again within seconds and
# signups are accepted; every signup answered 202, before, during or after, gets exactly one
# confirmation (an outcome that could not be written is written later, not sent again).
#
#   faults/disk-full.sh                  # BEFORE=200 DURING=60 AFTER=100
set -euo pipefail
# shellcheck source=faults/lib.sh
source "$(dirname "$0")/lib.sh"

BEFORE="${BEFORE:-200}"
DURING="${DURING:-60}"
AFTER="${AFTER:-100}"
APP_PORT=18271
SINK_PORT=12671
fl_init disk-full "${BUDGET_S:-180}"

disk="$WORK/disk"
mkdir -p "$disk"
mount -t tmpfs -o size=64m,mode=0700 tmpfs "$disk" || die "cannot mount a tmpfs (run as root)"
trap 'rc=$?; umount -l "$disk" 2>/dev/null || true; (exit $rc); fl_cleanup' EXIT

# signups FIRST LAST: one after another, sign{FIRST..LAST}@example.org; prints one line per
# signup: "<address> <status> <Retry-After or ->".
signups() {
  python3 - "$APP_PORT" "$@" <<'PY'
import http.client, json, sys
port, first, last = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for i in range(first, last + 1):
    email = f"sign{i}@example.org"
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", "/api/v1/subscribe", json.dumps({"email": email}),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        print(email, r.status, r.getheader("Retry-After") or "-")
    except OSError as e:
        print(email, "error", "-")
    c.close()
PY
}
ready() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$APP_PORT/readyz" || echo 000; }

url="sqlite://$disk/enlace.db"
db_prepare sqlite "$url" 0
sink_start confirm "$SINK_PORT"
serve app "$APP_PORT" "$url" "$SINK_PORT" ENLACE_DATA_DIR="$disk/data"

signups 1 "$BEFORE" > "$WORK/before.txt"
say "before: $(awk '{print $2}' "$WORK/before.txt" | sort | uniq -c | xargs)"

# Fill the disk: large blocks, then small ones, until nothing more fits.
dd if=/dev/zero of="$disk/filler" bs=1M status=none 2>/dev/null || true
dd if=/dev/zero of="$disk/filler-small" bs=4k status=none 2>/dev/null || true
say "disk full: $(df -h --output=avail "$disk" | tail -n 1 | xargs) left"
signups $((BEFORE + 1)) $((BEFORE + DURING)) > "$WORK/during.txt"
say "while full: $(awk '{print $2}' "$WORK/during.txt" | sort | uniq -c | xargs)"
not_ready=""
for _ in $(seq 1 50); do
  code=$(ready)
  if [ "$code" = 503 ]; then not_ready=yes; break; fi
  sleep 0.1
done
say "readyz while full: $code"

rm -f "$disk/filler" "$disk/filler-small"
freed=$SECONDS
until [ "$(ready)" = 200 ]; do
  [ $((SECONDS - freed)) -lt 30 ] || break
  sleep 0.2
done
back_s=$((SECONDS - freed))
say "readyz 200 again ${back_s} s after space came back"
signups $((BEFORE + DURING + 1)) $((BEFORE + DURING + AFTER)) > "$WORK/after.txt"
say "after: $(awk '{print $2}' "$WORK/after.txt" | sort | uniq -c | xargs)"

cat "$WORK/before.txt" "$WORK/during.txt" "$WORK/after.txt" | awk '$2 == 202 {print $1}' > "$WORK/accepted.txt"
accepted=$(wc -l < "$WORK/accepted.txt")
# Wait for the confirmations (the mail worker retries what the full disk held up).
until [ "$(sink_count confirm)" -ge "$accepted" ] || [ "$(left)" -le 20 ]; do sleep 0.5; done
sleep 2
stop_serve "$SERVE_PID"
sink_stop "$SINK_PID"
read -r messages distinct dups missing unexpected _ _ < \
  <(dump_check "$WORK/accepted.txt" "$DUMPS/confirm.dump" | awk 'NR == 1')
bad_during=$(awk '$2 != 202 && !($2 == 503 && $3 != "-")' "$WORK/during.txt" | wc -l)
refused_during=$(awk '$2 == 503' "$WORK/during.txt" | wc -l)
say "sink: $messages confirmations, $distinct addresses, $dups duplicates, $missing accepted signups without one"

expect "every signup before the disk filled was accepted" test "$(awk '$2 != 202' "$WORK/before.txt" | wc -l)" = 0
expect "while full, signups were refused with 503 and Retry-After ($refused_during of $DURING)" test "$refused_during" -gt 0
expect "while full, no other answer than 202 or 503 with Retry-After ($bad_during)" test "$bad_during" = 0
expect "readyz said not ready while the disk was full" test "$not_ready" = yes
expect "readyz ready within 10 s of space coming back (${back_s} s)" test "$back_s" -le 10
expect "every signup after space came back was accepted" test "$(awk '$2 != 202' "$WORK/after.txt" | wc -l)" = 0
expect "every accepted signup got its confirmation ($missing missing)" test "$missing" = 0
expect "no confirmation went twice ($dups)" test "$dups" = 0
expect "no panic in the server log" test "$(panics "$WORK/app.log")" = 0
fl_result "$accepted signups accepted, $refused_during refused with 503 while full; $dups duplicates, $missing missing"
