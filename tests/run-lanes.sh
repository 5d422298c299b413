#!/usr/bin/env bash
# The two lanes of 'make test', side by side: lane 2 (integration tests on a 3-node Apache
# Kafka cluster with SASL and ACLs) runs in the background while lane 1 (unit tests, and
# integration tests on the embedded broker) runs in the foreground; most of either's time
# is waiting on brokers, so together they take little more than the longer one. Lane 2's
# output follows lane 1's; each lane's time is printed; the exit status is non-zero if
# either lane failed.
set -u
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
log="$(mktemp -t gov-exchange-kafka-lane.XXXXXX)"
ended="$log.ended"
began=$(date +%s)

( "$BIN/pytest" --engine kafka tests/integration -p no:cacheprovider >"$log" 2>&1
  status=$?; date +%s >"$ended"; exit "$status" ) &
kafka=$!
trap 'kill "$kafka" 2>/dev/null; rm -f "$log" "$log.lane1" "$ended"' EXIT
trap 'exit 130' INT TERM

echo "== lane 1 of 2: unit tests, and integration tests on the embedded broker"
"$BIN/pytest" 2>&1 | tee "$log.lane1"
lane1=${PIPESTATUS[0]}
lane1_s=$(( $(date +%s) - began ))

wait "$kafka"
lane2=$?
lane2_s=$(( $(cat "$ended" 2>/dev/null || date +%s) - began ))
echo
echo "== lane 2 of 2: integration tests on Apache Kafka (3 nodes, SASL/SCRAM, ACLs), run alongside lane 1"
cat "$log"
echo
# each failed lane's summary again, last: a reader of a cut log still sees what failed
[ "$lane1" -eq 0 ] || { echo "== lane 1's failures, again"; sed -n '/short test summary info/,$p' "$log.lane1" | grep -v '^SKIPPED' | cut -c1-600; }
[ "$lane2" -eq 0 ] || { echo "== lane 2's failures, again"; sed -n '/short test summary info/,$p' "$log" | grep -v '^SKIPPED' | cut -c1-600; }
echo "lane 1 (embedded broker): exit $lane1, ${lane1_s} s; lane 2 (Apache Kafka): exit $lane2, ${lane2_s} s"
[ "$lane1" -eq 0 ] && [ "$lane2" -eq 0 ]
