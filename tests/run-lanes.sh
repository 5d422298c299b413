#!/usr/bin/env bash
# The lanes of 'make test', side by side. The embedded broker's tests run in two lanes, each
# starting its own brokers and databases: lane 1a (the unit tests, and every other
# integration module) in the foreground, lane 1b (the integration modules between them) in
# the background; lane 2 (the integration tests on a 3-node Apache Kafka cluster with SASL
# and ACLs) in the background too. Most of each lane's time is waiting on brokers: on 2
# cores the two lanes of before left a third of the CPU idle (29 min of CPU in 26 min), so
# together they take little more than the longest. The background lanes' output follows
# lane 1a's; each lane's time is printed; the exit status is non-zero if any lane failed.
# With EXCHANGE_BOOTSTRAP_SERVERS set (the embedded lanes against a Kafka of one's own)
# lane 1 is not split: two lanes on one cluster would share its topics and groups.
set -u
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
log="$(mktemp -t gov-exchange-lanes.XXXXXX)"
began=$(date +%s)

# lane 1b: every second integration module, in name order (the heavy ones are spread
# over the list, so the halves take about as long; lane 1a has the unit tests besides)
mapfile -t modules < <(ls tests/integration/test_*.py | sort)
half_a=() half_b=()
for i in "${!modules[@]}"; do
  if (( i % 2 )); then half_b+=("${modules[$i]}"); else half_a+=("${modules[$i]}"); fi
done
if [ -n "${EXCHANGE_BOOTSTRAP_SERVERS:-}" ]; then
  half_a=(tests/integration) half_b=()
fi

# a background lane: its output to "$log.<name>", its end time to "$log.<name>.ended"
lane() {
  local name=$1; shift
  ( "$BIN/pytest" "$@" -p no:cacheprovider >"$log.$name" 2>&1
    status=$?; date +%s >"$log.$name.ended"; exit "$status" ) &
}
lane kafka --engine kafka tests/integration
kafka=$!
embedded_b=""
if [ "${#half_b[@]}" -gt 0 ]; then
  lane 1b "${half_b[@]}"
  embedded_b=$!
fi
trap 'kill $kafka $embedded_b 2>/dev/null; rm -f "$log" "$log".*' EXIT
trap 'exit 130' INT TERM

echo "== lane 1a: unit tests, and half of the integration tests on the embedded broker"
"$BIN/pytest" tests/unit "${half_a[@]}" 2>&1 | tee "$log.1a"
lane1a=${PIPESTATUS[0]}
lane1a_s=$(( $(date +%s) - began ))

# a background lane's end: its exit status and seconds into "<var>" and "<var>_s", its output
finish() {
  local pid=$1 name=$2 var=$3 title=$4 status seconds
  wait "$pid"
  status=$?
  seconds=$(( $(cat "$log.$name.ended" 2>/dev/null || date +%s) - began ))
  printf -v "$var" %s "$status"
  printf -v "${var}_s" %s "$seconds"
  echo
  echo "== $title, run alongside"
  cat "$log.$name"
}
lane1b=0 lane1b_s=0
if [ -n "$embedded_b" ]; then
  finish "$embedded_b" 1b lane1b "lane 1b: the other half of the integration tests on the embedded broker"
fi
finish "$kafka" kafka lane2 "lane 2: integration tests on Apache Kafka (3 nodes, SASL/SCRAM, ACLs)"
echo
# each failed lane's summary again, last: a reader of a cut log still sees what failed
again() {
  echo "== lane $1's failures, again"
  sed -n '/short test summary info/,$p' "$2" | grep -v '^SKIPPED' | cut -c1-600
}
[ "$lane1a" -eq 0 ] || again 1a "$log.1a"
[ "$lane1b" -eq 0 ] || again 1b "$log.1b"
[ "$lane2" -eq 0 ] || again 2 "$log.kafka"
echo "lane 1a (unit tests, embedded broker): exit $lane1a, ${lane1a_s} s;" \
  "lane 1b (embedded broker): exit $lane1b, ${lane1b_s} s;" \
  "lane 2 (Apache Kafka): exit $lane2, ${lane2_s} s"
[ "$lane1a" -eq 0 ] && [ "$lane1b" -eq 0 ] && [ "$lane2" -eq 0 ]
