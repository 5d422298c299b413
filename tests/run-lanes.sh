#!/usr/bin/env bash
# The three lanes of 'make test', side by side:
#   lane 1: unit tests, and integration tests on the embedded broker (one per test module);
#   lane 2: the integration tests again, on a 3-node Apache Kafka cluster with SASL and ACLs;
#   lane 3: the tests that start Apache Kafka clusters of their own (marker own_clusters:
#           the engine's start, stop and failures, the bench on Kafka, topic configuration).
# Lanes 2 and 3 run in the background while lane 1 runs in the foreground: much of each
# lane's time is waiting on brokers and processes, so together they take little more than
# the longest. Their output follows lane 1's; each lane's time is printed; the exit status
# is non-zero if any lane failed.
set -u
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
tmp="$(mktemp -d -t gov-exchange-lanes.XXXXXX)"
began=$(date +%s)

# background_lane N ARGS...: pytest ARGS, output to $tmp/N.log, end time to $tmp/N.ended
background_lane() {
  local n=$1
  shift
  ( "$BIN/pytest" -p no:cacheprovider "$@" >"$tmp/$n.log" 2>&1
    status=$?; date +%s >"$tmp/$n.ended"; exit "$status" ) &
}

background_lane 2 --engine kafka tests/integration
lane2_pid=$!
background_lane 3 -m own_clusters tests/integration
lane3_pid=$!
trap 'kill "$lane2_pid" "$lane3_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

echo "== lane 1 of 3: unit tests, and integration tests on the embedded broker"
"$BIN/pytest" -m "not own_clusters" 2>&1 | tee "$tmp/1.log"
lane1=${PIPESTATUS[0]}
lane1_s=$(( $(date +%s) - began ))

wait "$lane2_pid"
lane2=$?
wait "$lane3_pid"
lane3=$?
lane2_s=$(( $(cat "$tmp/2.ended" 2>/dev/null || date +%s) - began ))
lane3_s=$(( $(cat "$tmp/3.ended" 2>/dev/null || date +%s) - began ))
echo
echo "== lane 2 of 3: integration tests on Apache Kafka (3 nodes, SASL/SCRAM, ACLs), run alongside lane 1"
cat "$tmp/2.log"
echo
echo "== lane 3 of 3: tests that start Apache Kafka clusters of their own, run alongside lane 1"
cat "$tmp/3.log"
echo
# each failed lane's summary again, last: a reader of a cut log still sees what failed
for n in 1 2 3; do
  eval "status=\$lane$n"
  # shellcheck disable=SC2154
  [ "$status" -eq 0 ] || {
    echo "== lane $n's failures, again"
    sed -n '/short test summary info/,$p' "$tmp/$n.log" | grep -v '^SKIPPED' | cut -c1-600
  }
done
echo "lane 1 (embedded broker): exit $lane1, ${lane1_s} s; lane 2 (Apache Kafka): exit $lane2, ${lane2_s} s; lane 3 (own Kafka clusters): exit $lane3, ${lane3_s} s"
[ "$lane1" -eq 0 ] && [ "$lane2" -eq 0 ] && [ "$lane3" -eq 0 ]
