#!/usr/bin/env bash
# Make sure the servers the test suite starts for itself are installed:
# PostgreSQL and MariaDB from Debian's packages, and Java and Maven for Apache
# Kafka (Maven fetches Kafka's jars from Maven Central once, exchange/dev/kafka.py), the
# tools deploy/ is checked with (promtool and Prometheus, systemd-analyze), Debian's
# Chromium with a Chinese font for the web console's browser tests (Playwright drives
# /usr/bin/chromium: 'playwright install' cannot download one here), and wrk, the load
# generator of the gateway benchmark.
# Nothing here starts a server; the suite starts throwaway ones and stops them.
#
# Installed already: prints nothing and installs nothing.
# Missing, run as root on Debian/Ubuntu: apt-get update once, then installs them.
# Missing otherwise: one sentence saying what to install, exit 1.
# EXCHANGE_NO_APT=1 turns the automatic install off.
set -euo pipefail

missing=()
pg_bin() {
    command -v initdb >/dev/null 2>&1 && return 0
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}
pg_bin || missing+=(postgresql)
{ command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; } &&
    { command -v mariadb-install-db >/dev/null 2>&1 || [ -x /usr/bin/mariadb-install-db ]; } ||
    missing+=(mariadb-server)
{ [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; } || command -v java >/dev/null 2>&1 ||
    missing+=(default-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# the gateway benchmark's load generator (python -m exchange.dev.gateway_bench)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=(fonts-wqy-microhei)
# deploy/ is checked by the real tools: promtool and Prometheus itself (deploy/prometheus,
# deploy/grafana), systemd-analyze (deploy/systemd)
{ command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; } ||
    missing+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ -z "${EXCHANGE_NO_APT:-}" ]; then
    echo "tests need ${missing[*]}: installing from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d 101: the packages must not start their own servers (the suite starts its own).
    policy=/usr/sbin/policy-rc.d
    had_policy=0; [ -e "$policy" ] && had_policy=1
    [ $had_policy = 1 ] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; }
    trap '[ $had_policy = 1 ] || rm -f "$policy"' EXIT
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    exit 0
fi

echo "make test needs the Debian packages ${missing[*]} (the suite starts its own throwaway servers from them; Kafka needs Java 17 or newer): run 'sudo apt-get install --no-install-recommends ${missing[*]}' and try again." >&2
exit 1
