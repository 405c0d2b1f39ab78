# Shared by the benchmark scripts in bench/: `source bench/lib.sh` after setting BIN, WORK,
# PG_ADMIN_URL and COUNT, and defining `seed_sql sqlite|postgres` (the script's own data).

# Installs, from Debian's packages, whichever of the given command=package pairs is missing.
install_missing() {
  local need=() pair
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null || need+=("${pair#*=}")
  done
  if [ "${#need[@]}" -gt 0 ]; then
    "$(dirname "${BASH_SOURCE[0]}")/../.ci/apt-install" "${need[@]}"
  fi
}

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; exit 1; }
port_free() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null || return 0; sleep 0.1; done; echo "port $1 still in use" >&2; exit 1; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {'d': d}))" "$1"; }

# A fresh, migrated database seeded with `seed_sql`, and an admin (admin@example.org, password
# bench-password-0123456789). $1 = sqlite|postgres, $2 = a short name for the database.
# Sets `url`, `db` (the PostgreSQL database to drop afterwards; empty on SQLite) and `name`
# (the backend as the tables show it).
fresh_database() {
  local t0
  t0=$(date +%s.%N)
  echo "== $1: seeding $COUNT subscribers"
  case "$1" in
    sqlite)
      url="sqlite://$WORK/$2.db"
      db=""
      ENLACE_DATABASE_URL="$url" ENLACE_LOG=warn "$BIN" migrate
      seed_sql sqlite | sqlite3 "$WORK/$2.db"
      name=SQLite ;;
    postgres)
      db="enlace_$2_$$"
      psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
      url="${PG_ADMIN_URL%/*}/$db"
      ENLACE_DATABASE_URL="$url" ENLACE_LOG=warn "$BIN" migrate
      # ANALYZE: what autovacuum would have done by now on a list that grew over time.
      { seed_sql postgres; echo "ANALYZE;"; } | psql "$url" -q -v ON_ERROR_STOP=1
      name="PostgreSQL $(psql "$PG_ADMIN_URL" -Atc 'SHOW server_version' | cut -d. -f1)" ;;
    *) echo "unknown backend $1" >&2; exit 2 ;;
  esac
  echo "   seeded in $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)") s"
  ENLACE_DATABASE_URL="$url" ENLACE_STAFF_PASSWORD="bench-password-0123456789" ENLACE_LOG=warn \
    "$BIN" staff create --email admin@example.org --role admin >/dev/null
}
