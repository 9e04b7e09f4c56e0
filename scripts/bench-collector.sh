#!/usr/bin/env bash
# The collector's CPU and memory against Prometheus snmp_exporter, in one run (a benchmark, not
# part of CI): installs Debian's prometheus-snmp-exporter (without starting its service) and
# what the tests need, builds the collector as packaged (the `site` profile) and runs
# `cargo bench -p devtel-collector --bench exporter` on it.
# Knobs: DEVTEL_BENCH_DEVICES (5000), DEVTEL_BENCH_SMALL (100), DEVTEL_BENCH_CONCURRENCY (64).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup-test-env.sh
if [ ! -x /usr/bin/prometheus-snmp-exporter ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    # The package starts its service on install; a policy-rc.d that refuses keeps it from
    # taking port 9116 (the bench starts its own exporter on a free port).
    created_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    echo "bench: installing prometheus-snmp-exporter"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-snmp-exporter >/dev/null
    [ -z "$created_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d
fi
/usr/bin/prometheus-snmp-exporter --version 2>&1 | head -1
# The collector as packaged for the site box: the `site` profile, linked statically
# (scripts/package-deb.sh).
HOST="$(rustc -vV | sed -n 's/^host: //p')"
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --locked --profile site --target "$HOST" -p devtel-collector
DEVTEL_BENCH_COLLECTOR="${DEVTEL_BENCH_COLLECTOR:-$ROOT/${CARGO_TARGET_DIR:-target}/$HOST/site/devtel-collector}" \
    cargo bench -p devtel-collector --bench exporter
