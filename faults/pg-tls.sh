#!/usr/bin/env bash
# TLS to PostgreSQL, as a managed database requires it: a throwaway cluster with ssl=on and a
# server certificate from a certificate authority made here. Runs on a cluster of its own, never
# on a shared one.
#
# Guarantees (README, "Switching to PostgreSQL"): with sslmode=verify-full and the authority's
# certificate (sslrootcert) Enlace connects, over TLS, and serves; a wrong authority, or a host
# name the certificate does not name, stops Enlace at start with an error that says which;
# sslmode=require encrypts without checking, and verify-ca checks the authority but not the name.
# With SMOKE_TESTS=1 (CI) the PostgreSQL suite's smoke tests then run through the verified
# connection.
#
#   faults/pg-tls.sh                     # SMOKE_TESTS=1 to run the suite's smoke tests too
set -euo pipefail
FL_WANTS_POSTGRES=1
# shellcheck source=faults/lib.sh
source "$(dirname "$0")/lib.sh"

APP_PORT=18241
PG_PORT=15451   # below the ephemeral range (32768–60999), where an outgoing connection may hold it
fl_init pg-tls "${BUDGET_S:-600}"
command -v openssl >/dev/null || .ci/apt-install openssl

pg_cluster "$PG_PORT"

# An authority, a server certificate it signed for the name `localhost` only, and a second
# authority that signed nothing of this server's.
tls="$WORK/tls"
mkdir -p "$tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Enlace test authority" \
  -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Someone else's authority" \
  -keyout "$tls/other.key" -out "$tls/other.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' > "$tls/san.ext"
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial \
  -days 2 -extfile "$tls/san.ext" -out "$tls/server.crt" 2>/dev/null
chmod 600 "$tls/server.key"
[ "$(id -u)" = 0 ] && chown -R postgres "$tls"
psql "$PG_URL" -qc "ALTER SYSTEM SET ssl = on" \
  -c "ALTER SYSTEM SET ssl_cert_file = '$tls/server.crt'" \
  -c "ALTER SYSTEM SET ssl_key_file = '$tls/server.key'" >/dev/null
psql "$PG_URL" -qAtc "SELECT pg_reload_conf()" >/dev/null
sleep 1
[ "$(psql "postgres://postgres@localhost:$PG_PORT/postgres?sslmode=require" -Atc 'SHOW ssl')" = on ] \
  || die "the cluster did not turn TLS on"
psql "$PG_URL" -qc "CREATE DATABASE enlace_tls" >/dev/null
say "PostgreSQL on port $PG_PORT with TLS, certificate for localhost from a fresh authority"

base="postgres://postgres@localhost:$PG_PORT"
verified="$base/enlace_tls?sslmode=verify-full&sslrootcert=$tls/ca.crt"

# start_fails NAME URL EXPECTED: `enlace migrate` on URL must fail, saying EXPECTED.
start_fails() {
  local out rc=0
  out="$(ENLACE_DATABASE_URL="$2" ENLACE_LOG=warn "$BIN" migrate 2>&1)" || rc=$?
  if [ "$rc" = 0 ]; then
    FL_FAILED+=("$1: Enlace started")
    say "FAIL: $1: Enlace started"
  elif ! grep -q "$3" <<<"$out"; then
    FL_FAILED+=("$1: unclear error")
    say "FAIL: $1: the error does not say \"$3\": $out"
  else
    say "$1: refused at start: $(grep -o "$3[^\"]*" <<<"$out" | head -n 1)"
  fi
}
# starts NAME URL: `enlace migrate` on URL must succeed.
starts() {
  local out
  if out="$(ENLACE_DATABASE_URL="$2" ENLACE_LOG=warn "$BIN" migrate 2>&1)"; then
    say "$1: connects"
  else
    FL_FAILED+=("$1: refused")
    say "FAIL: $1: $out"
  fi
}

# verify-full with the right authority: Enlace serves, and its connections are encrypted.
serve app "$APP_PORT" "$verified" 0
if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$APP_PORT/readyz")" = 200 ]; then
  say "verify-full: serving (readyz 200)"
else
  FL_FAILED+=("verify-full: not ready")
  say "FAIL: verify-full: /readyz is not 200"
fi
read -r encrypted plain < <(psql "$PG_URL" -Atc "SELECT count(*) FILTER (WHERE s.ssl), \
  count(*) FILTER (WHERE NOT s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
  WHERE a.datname = 'enlace_tls'" | tr '|' ' ')
say "Enlace's connections: $encrypted over TLS, $plain without"
if [ "$encrypted" -lt 1 ] || [ "$plain" -ne 0 ]; then
  FL_FAILED+=("verify-full: a connection without TLS")
fi
stop_serve "$SERVE_PID"

start_fails "wrong authority" "$base/enlace_tls?sslmode=verify-full&sslrootcert=$tls/other.crt" \
  "certificate verify failed"
start_fails "wrong host name" \
  "postgres://postgres@127.0.0.1:$PG_PORT/enlace_tls?sslmode=verify-full&sslrootcert=$tls/ca.crt" \
  "does not match host name"
start_fails "missing authority file" \
  "$base/enlace_tls?sslmode=verify-full&sslrootcert=$tls/absent.crt" "absent.crt"
starts "require" "$base/enlace_tls?sslmode=require"
starts "verify-ca by address" \
  "postgres://postgres@127.0.0.1:$PG_PORT/enlace_tls?sslmode=verify-ca&sslrootcert=$tls/ca.crt"

if [ "${SMOKE_TESTS:-0}" = 1 ]; then
  say "the PostgreSQL suite's smoke tests through verify-full"
  if ENLACE_TEST_POSTGRES_URL="$base/postgres?sslmode=verify-full&sslrootcert=$tls/ca.crt" \
    cargo test --quiet --test api -- subscribe:: confirm:: >"$WORK/smoke.log" 2>&1; then
    say "smoke tests: $(grep -o 'test result: [^;]*; [0-9]* failed' "$WORK/smoke.log" | tail -n 1)"
  else
    FL_FAILED+=("smoke tests over TLS")
    tail -n 30 "$WORK/smoke.log" >&2
  fi
fi

fl_result "verify-full serves over TLS ($encrypted connections, $plain without); wrong authority, wrong host and a missing CA file refused at start; require and verify-ca connect"
