#!/usr/bin/env bash
# The lanes of 'make test', side by side: lane 2 (integration tests on a 3-node Apache
# Kafka cluster with SASL and ACLs) and the unit tests run in the background while lane 1
# (integration tests on the embedded broker) runs in the foreground; most of the
# integration lanes' time is waiting on brokers (the suite kept about 1.4 of the 2 cores
# busy), so together they take little more than the longest. The unit tests' and lane 2's
# output follow lane 1's, each lane's time is printed, and the exit status is non-zero if
# any lane failed.
set -u
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
log="$(mktemp -t gov-exchange-kafka-lane.XXXXXX)"
ended="$log.ended"
began=$(date +%s)

( "$BIN/pytest" --engine kafka tests/integration -p no:cacheprovider >"$log" 2>&1
  status=$?; date +%s >"$ended"; exit "$status" ) &
kafka=$!
( "$BIN/pytest" tests/unit -p no:cacheprovider >"$log.unit" 2>&1
  status=$?; date +%s >"$ended.unit"; exit "$status" ) &
unit=$!
trap 'kill "$kafka" "$unit" 2>/dev/null; rm -f "$log" "$log.lane1" "$log.unit" "$ended" "$ended.unit"' EXIT
trap 'exit 130' INT TERM

echo "== lane 1 of 2: integration tests on the embedded broker (the unit tests run alongside)"
"$BIN/pytest" tests/integration 2>&1 | tee "$log.lane1"
lane1=${PIPESTATUS[0]}
lane1_s=$(( $(date +%s) - began ))

wait "$unit"
units=$?
units_s=$(( $(cat "$ended.unit" 2>/dev/null || date +%s) - began ))
echo
echo "== unit tests, run alongside lane 1"
cat "$log.unit"
wait "$kafka"
lane2=$?
lane2_s=$(( $(cat "$ended" 2>/dev/null || date +%s) - began ))
echo
echo "== lane 2 of 2: integration tests on Apache Kafka (3 nodes, SASL/SCRAM, ACLs), run alongside lane 1"
cat "$log"
echo
# each failed lane's summary again, last: a reader of a cut log still sees what failed
[ "$lane1" -eq 0 ] || { echo "== lane 1's failures, again"; sed -n '/short test summary info/,$p' "$log.lane1" | grep -v '^SKIPPED' | cut -c1-600; }
[ "$units" -eq 0 ] || { echo "== the unit tests' failures, again"; sed -n '/short test summary info/,$p' "$log.unit" | grep -v '^SKIPPED' | cut -c1-600; }
[ "$lane2" -eq 0 ] || { echo "== lane 2's failures, again"; sed -n '/short test summary info/,$p' "$log" | grep -v '^SKIPPED' | cut -c1-600; }
echo "lane 1 (embedded broker): exit $lane1, ${lane1_s} s; unit tests: exit $units, ${units_s} s; lane 2 (Apache Kafka): exit $lane2, ${lane2_s} s"
[ "$lane1" -eq 0 ] && [ "$units" -eq 0 ] && [ "$lane2" -eq 0 ]
