#!/usr/bin/env bash
# Runs every fault script and prints a summary table (fault, outcome, counts, seconds); exits
# non-zero when any guarantee failed or a script did not finish.
#
#   faults/run-all.sh                    # all of them
#   faults/run-all.sh kill-serve pg-restart
#
# The SMTP outage mostly waits (60 s down, then the retry backoff), so it runs alongside the
# others; they use separate ports, folders and databases. Each script has a hard time limit.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL=(kill-serve kill-signups unsubscribe-mid-send clicks-crash disk-full slow-clients staff-load pg-restart two-senders two-instances pg-tls)   # one after another
BACKGROUND=smtp-down                      # alongside them
LIMIT_S="${LIMIT_S:-300}"                 # per script, then it is stopped
if [ "$#" -gt 0 ]; then
  ALL=()
  BACKGROUND=""
  for f in "$@"; do
    [ -x "faults/$f.sh" ] || { echo "no fault script faults/$f.sh" >&2; exit 2; }
    if [ "$f" = smtp-down ]; then BACKGROUND=$f; else ALL+=("$f"); fi
  done
fi

start=$SECONDS
work="$(mktemp -d /tmp/enlace-faults-run.XXXXXX)"
bg_pid=""
cleanup() {
  if [ -n "$bg_pid" ]; then kill -TERM "$bg_pid" 2>/dev/null || true; wait "$bg_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export FAULTS_RESULTS="$work/results.tsv"
: > "$FAULTS_RESULTS"

if [ -z "${ENLACE_BIN:-}" ]; then
  echo "== building enlace (debug)"
  cargo build --quiet --bin enlace
  export ENLACE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/enlace"
fi

declare -A code
if [ -n "$BACKGROUND" ]; then
  echo "== $BACKGROUND (in the background; its output follows at the end)"
  timeout -k 10 "$LIMIT_S" "faults/$BACKGROUND.sh" > "$work/$BACKGROUND.out" 2>&1 &
  bg_pid=$!
fi
for f in "${ALL[@]}"; do
  echo "== $f"
  rc=0
  timeout -k 10 "$LIMIT_S" "faults/$f.sh" || rc=$?
  code[$f]=$rc
done
if [ -n "$BACKGROUND" ]; then
  rc=0
  wait "$bg_pid" || rc=$?
  bg_pid=""
  code[$BACKGROUND]=$rc
  echo "== $BACKGROUND"
  cat "$work/$BACKGROUND.out"
fi

echo
echo "| fault | outcome | counts | seconds |"
echo "|---|---|---|---|"
failed=0
for f in "${ALL[@]}" $BACKGROUND; do
  line=$(awk -F'\t' -v f="$f" '$1 == f' "$FAULTS_RESULTS" | tail -n 1)
  if [ -n "$line" ]; then
    IFS=$'\t' read -r _ outcome counts secs <<< "$line"
  else
    outcome="ERROR"; secs="-"
    if [ "${code[$f]}" = 124 ]; then counts="stopped after $LIMIT_S s"; else counts="exited ${code[$f]} before its checks"; fi
  fi
  [ "$outcome" = pass ] && [ "${code[$f]}" = 0 ] || failed=$((failed + 1))
  echo "| $f | $outcome | $counts | $secs |"
done
echo
echo "faults: $failed failed; $((SECONDS - start)) s in all"
[ "$failed" = 0 ]
