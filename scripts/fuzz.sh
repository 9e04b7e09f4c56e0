#!/usr/bin/env bash
# Runs every fuzz target under libFuzzer (cargo-fuzz, nightly toolchain) for a given time or
# number of executions, seeded from the golden bytes and the recordings, and prints a table of
# executions, time, coverage and crashes per target. A benchmark run, not part of CI: CI
# replays the seeds and the committed regressions (cargo test -p devtel-fuzz-targets).
#
#   scripts/fuzz.sh [--runs N | --seconds S] [target ...]
#
# Defaults: 10,000,000 executions per target, all targets, one process (a core) at a time. A crash stops the target
# and leaves its input in fuzz/artifacts/{target}/; copy it to
# fuzz-targets/regressions/{target}/ with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=10000000
seconds=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --seconds) seconds="$2"; runs=0; shift 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io" >&2
  cargo install --locked cargo-fuzz
fi
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: cargo-fuzz needs the nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
# Seeds: written by the targets crate from the golden bytes and ../shared/corpus.
cargo run -q -p devtel-fuzz-targets --bin devtel-fuzz-seeds -- fuzz/corpus
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
mkdir -p target/fuzz-logs
printf '%-22s %12s %9s %8s %8s %s\n' target executions seconds cov ft crashes
for t in "${targets[@]}"; do
  log="target/fuzz-logs/$t.log"
  limit=(-runs="$runs")
  [ "$seconds" -gt 0 ] && limit=(-max_total_time="$seconds")
  # Inputs no larger than the target reads: a config of a few KB, a recording's 10-30 lines
  # (a line is 30-100 bytes; parsing is per line, and 4 KB inputs ran at a fifth of the
  # speed for about the same coverage), 32 readings (and one byte more: the length's parity
  # picks the aggregator's second comparison).
  # AddressSanitizer everywhere but in the aggregator's differential target: that one checks
  # a property of safe code (its assertions are the finding), and it is the slowest target.
  sanitizer=address
  case "$t" in
    aggregator_order) max_len=193; sanitizer=none ;;
    snmprec_parse) max_len=1024 ;;
    collector_config|gateway_config) max_len=4096 ;;
    *) max_len=16384 ;;
  esac
  start=$(date +%s)
  set +e
  (cd fuzz && cargo +nightly fuzz run --release --sanitizer "$sanitizer" "$t" "corpus/$t" -- \
      "${limit[@]}" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1
  rc=$?
  set -e
  took=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  crashes=0
  [ $rc -ne 0 ] && crashes=1
  printf '%-22s %12s %9s %8s %8s %s\n' "$t" "${execs:-?}" "$took" "${cov:-?}" "${ft:-?}" "$crashes"
done
