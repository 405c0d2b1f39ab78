#!/usr/bin/env bash
# Fault: staff work as hard as they can while the public signs up. On SQLite and on PostgreSQL,
# with 20,000 subscribers and a newsletter going out to all of them, four staff clients save
# the largest drafts the template rules allow, preview them as real people and send test copies,
# one counts segments over the whole list, one streams exports and one imports a CSV file of
# 5,000 people, all at once and without pause.
#
# Guarantee (README, "Newsletter content"): templates are compiled and rendered on worker
# threads of their own, outside any transaction and without holding a database connection, so
# no staff activity makes the public wait: signups and health checks from the public answer as
# fast as before the load (worst within 5x, or 250 ms), none fails, and the newsletter is sent.
#
#   faults/staff-load.sh                 # COUNT=20000 HOLD_S=20
set -euo pipefail
# shellcheck source=faults/lib.sh
source "$(dirname "$0")/lib.sh"

COUNT="${COUNT:-20000}"
HOLD_S="${HOLD_S:-20}"
BACKENDS="${BACKENDS:-sqlite postgres}"
APP_PORT=18251
SINK_PORT=12651
fl_init staff-load "${BUDGET_S:-240}"

# staff PORT KEY SECONDS: the staff load, until SECONDS have passed; prints what each kind of
# work got done ("kind=count" …) and exits non-zero if any request was refused or failed.
staff() {
  python3 - "$@" <<'PY'
import http.client, json, sys, threading, time
port, key, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
until = time.monotonic() + seconds
auth = {"Authorization": f"Bearer {key}"}
done, errors, lock = {}, [], threading.Lock()

def call(method, path, body=None, headers=None, stream=False):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    h = dict(auth, **(headers or {}))
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        h["Content-Type"] = "application/json"
    c.request(method, path, body, h)
    r = c.getresponse()
    data = b""
    while chunk := r.read(1 << 16):
        if not stream:
            data += chunk
    c.close()
    if r.status >= 500:
        with lock:
            errors.append(f"{method} {path}: {r.status}")
    return r.status, data

def count(kind, status=200):
    if status >= 300:
        kind = f"{kind} answered {status}"
    with lock:
        done[kind] = done.get(kind, 0) + 1

# About the heaviest draft the rules take (each printed merge field counts as up to 2 KiB of
# text for one person; 16 MiB in all): 1,500 lines with four merge fields each.
line = '<p>{% if name %}Hola {{ name }}{% else %}Hola{% endif %} ({{ email }}): {{ name or "amiga" }}, te esperamos el sábado.</p>\n'
big = line * 1500

def editor(n):
    status, data = call("POST", "/api/v1/newsletters", {"subject": f"Draft {n} for {{{{ name }}}}", "html": big})
    if status != 201:
        with lock:
            errors.append(f"create draft: {status} {data[:200]!r}")
        return
    nl = json.loads(data)["id"]
    version = 0
    while time.monotonic() < until:
        status, _ = call("PATCH", f"/api/v1/newsletters/{nl}", {"html": big + f"<p>{version}</p>"})
        version += 1
        count("draft saves", status)
        status, _ = call("POST", f"/api/v1/newsletters/{nl}/preview", {"language": "es"})
        count("previews", status)
        if version % 5 == 0:
            status, _ = call("POST", f"/api/v1/newsletters/{nl}/test", {"to": [f"staff{n}@example.org"]})
            count("test sends", status)

def counter():
    while time.monotonic() < until:
        status, _ = call("POST", "/api/v1/segments/preview", {"filter": {"all": [{"language": "en"}, {"not": {"email_domain": "nowhere.invalid"}}]}})
        count("segment counts", status)

def exporter():
    while time.monotonic() < until:
        status, _ = call("GET", "/api/v1/exports/subscribers?format=csv", stream=True)
        count("exports", status)

def importer():
    rows = "email,name,language\n" + "".join(f"imported{i}@example.net,Persona {i},es\n" for i in range(5000))
    status, data = call("POST", "/api/v1/imports?mode=consented&source=faults&consent_note=signed+the+sheet", rows, {"Content-Type": "text/csv"})
    count("imports", status)

threads = [threading.Thread(target=editor, args=(n,)) for n in range(4)]
threads += [threading.Thread(target=f) for f in (counter, exporter, importer)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(" ".join(f"{k.replace(' ', '_')}={v}" for k, v in sorted(done.items())))
if any("answered" in k for k in done):
    errors.append("a staff request was refused")
for e in errors[:10]:
    print(e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
}

run_backend() {
  local backend="$1" url name="enlace_faults_staff_$$"
  say "[$backend] seeding $COUNT confirmed subscribers"
  url=$(fresh_db "$backend" "$name" "$COUNT")
  sink_start "staff-$backend" "$SINK_PORT"
  serve "app-$backend" "$APP_PORT" "$url" "$SINK_PORT" ENLACE_SEND_RATE=1000
  local key before during work staff_rc=0 nl final
  key=$(api_key "$APP_PORT")
  before=$(probe "$APP_PORT" "before")
  say "[$backend] before the load: worst ${before% *} ms, ${before#* } failures"
  nl=$(newsletter_send "$APP_PORT" "$key")
  staff "$APP_PORT" "$(api_key "$APP_PORT" subscribers:read subscribers:write newsletters:write newsletters:send exports:read)" "$HOLD_S" > "$WORK/staff-$backend.out" 2> "$WORK/staff-$backend.err" &
  local load=$!
  FL_PIDS+=("$load")
  sleep 3
  during=$(probe "$APP_PORT" "during")
  say "[$backend] during the load: worst ${during% *} ms, ${during#* } failures"
  wait "$load" || staff_rc=$?
  work=$(cat "$WORK/staff-$backend.out")
  say "[$backend] staff work done meanwhile: $work"
  [ "$staff_rc" = 0 ] || say "[$backend] staff answers: $(head -c 600 "$WORK/staff-$backend.err")"
  final=$(wait_sent "$APP_PORT" "$key" "$nl" || true)
  say "[$backend] newsletter: $final"
  stop_serve "$SERVE_PID"
  sink_stop "$SINK_PID"
  expect "[$backend] no failed health check or signup from the public during the staff load" test "${during#* }" = 0
  expect "[$backend] worst public answer during the load (${during% *} ms) within 5x before (${before% *} ms) or 250 ms" \
    test "${during% *}" -le $(( ${before% *} * 5 > 250 ? ${before% *} * 5 : 250 ))
  expect "[$backend] every staff request succeeded" test "$staff_rc" = 0
  expect "[$backend] every kind of staff work got done" \
    bash -c '[[ "$1" == *draft_saves=* && "$1" == *previews=* && "$1" == *segment_counts=* && "$1" == *exports=* && "$1" == *imports=1* ]]' _ "$work"
  expect "[$backend] the newsletter went to all $COUNT subscribers" test "${final% *}" = "sent $COUNT 0 0 0"
  expect "[$backend] no panic in the server log" test "$(panics "$WORK/app-$backend.log")" = 0
  RESULTS+=("$backend: worst ${before% *} ms before, ${during% *} ms during")
  drop_db "$backend" "$name"
}

RESULTS=()
for backend in $BACKENDS; do
  run_backend "$backend"
done
fl_result "staff load on $COUNT subscribers; $(IFS=';'; echo "${RESULTS[*]}")"
