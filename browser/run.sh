#!/usr/bin/env bash
# Headless Chromium walks the signup flow in English and Spanish against a fresh Enlace on SQLite:
# the README's signup form → thank-you page → confirmation mail → confirm → welcome mail →
# preferences → unsubscribe, then the staff API; then the staff console (browser/console.mjs): the main
# flows in both languages by clicking and typing (browser/console-flows.mjs: people, interests and
# fields, an import, an export, staff, API keys and webhooks; a viewer and an editor meet the forbidden
# page; browser/console-newsletters.mjs: newsletters written in English and Spanish, autosaved, a
# colleague's save not overwritten, previewed, test-sent, sent to the SMTP sink with the page following
# its progress, scheduled in the member's time zone and cancelled, duplicated, paused and resumed, and
# a viewer offered none of it), axe-core on every page for each role in both languages, phone and
# desktop screenshots, and keyboard-only walks (sign-in and account; browser/console-keyboard.mjs: a
# people search and adding a person, an import, an API key; a newsletter draft to its preview). One
# line per flow with its time. Last, the public archive (browser/archive.mjs): two newsletters published
# and sent, the list and their pages in both languages on a phone and a computer, with axe-core.
# Screenshots go to target/browser-screenshots/ (the console's to target/browser-screenshots/console/,
# the archive's to target/browser-screenshots/archive/).
#
#   bash browser/run.sh
#
# Installs Debian's chromium when /usr/bin/chromium is missing and the npm packages when
# browser/node_modules is missing. Everything listens on loopback only; the Enlace, the SMTP sink and
# their temporary folder are removed on exit. The console's webhook flow runs its own receiver on a
# free loopback port (so webhooks may reach loopback here: ENLACE_WEBHOOK_ALLOW_PRIVATE).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
started=$(date +%s)

HTTP_PORT="${BROWSER_HTTP_PORT:-18300}"  # Enlace
PAGE_PORT="${BROWSER_PAGE_PORT:-18301}"  # the website page with the README's form
SMTP_PORT="${BROWSER_SMTP_PORT:-12700}"  # the SMTP sink
shots="$root/target/browser-screenshots"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

say() { printf '== %s\n' "$*"; }
die() { printf 'browser test: %s\n' "$*" >&2; exit 1; }

for port in "$HTTP_PORT" "$PAGE_PORT" "$SMTP_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then die "port $port is already in use"; fi
done

if [ ! -x /usr/bin/chromium ]; then
  say "installing Debian's chromium and chromium-driver"
  .ci/apt-install chromium chromium-driver
fi
if [ ! -d browser/node_modules ]; then
  say "npm ci"
  (cd browser && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
fi

# ENLACE_BIN runs a binary built elsewhere (a release build, say) instead of the debug build.
enlace="${ENLACE_BIN:-}"
if [ -z "$enlace" ]; then
  say "cargo build --bin enlace"
  cargo build --quiet --bin enlace
  enlace="$CARGO_TARGET_DIR/debug/enlace"
fi
[ -x "$enlace" ] || die "no enlace binary at $enlace"

# A fresh Enlace: its own SQLite file, key and working folder (so no enlace.toml is picked up).
export ENLACE_DATABASE_URL="sqlite://$tmp/enlace.db"
export ENLACE_DATA_DIR="$tmp/data"
export ENLACE_CONFIG="$tmp/none.toml"
export ENLACE_LISTEN="127.0.0.1:$HTTP_PORT"
export ENLACE_PUBLIC_URL="http://127.0.0.1:$HTTP_PORT"
export ENLACE_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT?tls=none"
export ENLACE_SECRET_KEY="browser-test-key-0123456789abcdef-0123456789abcdef"
export ENLACE_ORG_NAME="Our Group"   # the name in the README's consent sentence
export ENLACE_FROM="Our Group <hello@example.org>"
export ENLACE_POSTAL_ADDRESS="1 Main St, Phoenix, AZ"  # required in newsletters: the console's send step shows its form
export ENLACE_LOG="warn"
export ENLACE_WEBHOOK_ALLOW_PRIVATE=true  # the console's webhook flow posts to a receiver on loopback
# One newsletter message a second per From address: a send of a few people lasts a few seconds, so
# the console's newsletter flow sees its progress and can pause it before it is over.
export ENLACE_SEND_RATE_PER_SENDER=1
mkdir -p "$tmp/data" "$tmp/mail"
rm -rf "$shots"
mkdir -p "$shots"

node browser/smtp-sink.mjs "$SMTP_PORT" "$tmp/mail" >"$tmp/sink.log" 2>&1 &
pids+=($!)
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 1 100); do listening "$SMTP_PORT" && break; sleep 0.1; done
listening "$SMTP_PORT" || { cat "$tmp/sink.log" >&2; die "the SMTP sink did not start"; }

staff_email="browser-admin@example.org"
staff_password="browser test passphrase $RANDOM$RANDOM"
(cd "$tmp" && ENLACE_STAFF_PASSWORD="$staff_password" "$enlace" staff create --email "$staff_email" --role admin >/dev/null) \
  || die "enlace staff create failed"
# The console's checks sign in as each role; the keyboard walk changes its own account's password.
console_password="console test passphrase $RANDOM$RANDOM"
for who in admin editor viewer keyboard flows-en flows-es walker newsletters-en newsletters-es newsletters-viewer newsletters-keyboard; do
  case "$who" in
    keyboard|newsletters-keyboard) role=editor ;; newsletters-viewer) role=viewer ;;
    flows-*|walker|newsletters-*) role=admin ;; *) role="$who" ;;
  esac
  (cd "$tmp" && ENLACE_STAFF_PASSWORD="$console_password" "$enlace" staff create --email "console-$who@example.org" --role "$role" >/dev/null) \
    || die "enlace staff create ($who) failed"
done

(cd "$tmp" && exec "$enlace") >"$tmp/enlace.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null || { cat "$tmp/enlace.log" >&2; die "Enlace did not become ready"; }

say "interests from the README's form (news, events)"
token=$(curl -fsS "http://127.0.0.1:$HTTP_PORT/api/v1/auth/token" -H 'Content-Type: application/json' \
  -d "{\"email\":\"$staff_email\",\"password\":\"$staff_password\"}" |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).access_token))')
[ -n "$token" ] || die "staff sign-in gave no token"
create_interest() {
  curl -fsS -o /dev/null "http://127.0.0.1:$HTTP_PORT/api/v1/interests" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d "$1" || die "creating an interest failed"
}
create_interest '{"slug":"news","name":{"en":"News and updates","es":"Noticias y novedades"},
  "description":{"en":"A short update every month.","es":"Un breve resumen cada mes."}}'
create_interest '{"slug":"events","name":{"en":"Events and actions","es":"Eventos y acciones"},
  "description":{"en":"Marches, meetings and volunteer days near you.","es":"Marchas, reuniones y jornadas de voluntariado cerca de ti."}}'
# A draft newsletter in both languages, so the crawl reaches its page, editor, preview and send step.
curl -fsS -o /dev/null "http://127.0.0.1:$HTTP_PORT/api/v1/newsletters" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d '{"subject":"Rally on Saturday","html":"<p>Hello {{ name }}, join us at noon.</p>",
  "variants":{"es":{"subject":"Marcha el sábado","html":"<p>Hola {{ name }}, acompáñanos al mediodía.</p>"}},
  "filter":{"any":[{"language":"en"},{"language":"es"}]}}' || die "creating a draft newsletter failed"

status=0
# BROWSER_ONLY=console skips the signup walk (to check console changes quickly); BROWSER_ONLY=archive
# runs the archive's walk alone.
if [ -z "${BROWSER_ONLY:-}" ]; then
say "headless Chromium walks the signup flow (English, Spanish)"
ENLACE_URL="http://127.0.0.1:$HTTP_PORT" PAGE_PORT="$PAGE_PORT" MAIL_DIR="$tmp/mail" SHOT_DIR="$shots" \
  ORG="$ENLACE_ORG_NAME" STAFF_EMAIL="$staff_email" STAFF_PASSWORD="$staff_password" \
  timeout 180 node browser/signup.mjs || status=$?
fi

# The staff console: axe-core on every page each role reaches in English and Spanish, phone and
# desktop screenshots, a keyboard-only walk. Runs even when the signup walk failed.
console_status=0
if [ "${BROWSER_ONLY:-}" != archive ]; then
say "headless Chromium checks the staff console (axe-core, phone and desktop, keyboard alone)"
ENLACE_URL="http://127.0.0.1:$HTTP_PORT" CONSOLE_PATH="${ENLACE_CONSOLE_PATH:-/admin}" SHOT_DIR="$shots/console" \
  STAFF_PASSWORD="$console_password" ADMIN_EMAIL="console-admin@example.org" EDITOR_EMAIL="console-editor@example.org" \
  VIEWER_EMAIL="console-viewer@example.org" KEYBOARD_EMAIL="console-keyboard@example.org" \
  FLOWS_EN_EMAIL="console-flows-en@example.org" FLOWS_ES_EMAIL="console-flows-es@example.org" \
  WALKER_EMAIL="console-walker@example.org" MAIL_DIR="$tmp/mail" \
  NEWSLETTERS_EN_EMAIL="console-newsletters-en@example.org" NEWSLETTERS_ES_EMAIL="console-newsletters-es@example.org" \
  NEWSLETTERS_VIEWER_EMAIL="console-newsletters-viewer@example.org" NEWSLETTERS_KEYBOARD_EMAIL="console-newsletters-keyboard@example.org" \
  timeout 400 node browser/console.mjs || console_status=$?
fi
[ "$status" -ne 0 ] || status=$console_status

# Last, as it publishes newsletters the console's checks do not expect.
say "headless Chromium reads the public archive (axe-core, phone and desktop, both languages)"
archive_status=0
ENLACE_URL="http://127.0.0.1:$HTTP_PORT" SHOT_DIR="$shots/archive" ORG="$ENLACE_ORG_NAME" \
  STAFF_EMAIL="$staff_email" STAFF_PASSWORD="$staff_password" \
  timeout 180 node browser/archive.mjs || archive_status=$?
[ "$status" -ne 0 ] || status=$archive_status
if [ "$status" -ne 0 ]; then
  echo "--- Enlace log (last 40 lines)" >&2
  tail -n 40 "$tmp/enlace.log" >&2
  echo "--- SMTP sink log" >&2
  cat "$tmp/sink.log" >&2
fi
echo "browser test: $(( $(date +%s) - started )) s wall; screenshots in target/browser-screenshots/"
exit "$status"
