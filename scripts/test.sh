#!/usr/bin/env bash
# The project's test command (README, CI): installs what the tests need, builds, runs every test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup-test-env.sh
if [ ! -d ../shared/corpus ] && [ -z "${DEVTEL_CORPUS:-}" ]; then
    echo "error: ../shared/corpus not found beside the project (set DEVTEL_CORPUS to its path)" >&2
    exit 1
fi

cargo fmt --all --check
# The protocol crate must build without std.
cargo build --locked -p devtel-protocol --no-default-features
# End-to-end tests start the real binaries.
cargo build --locked --workspace --bins
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
# The broker-agnostic end-to-end tests once more, on the gateway's embedded broker: the
# harness refuses to start Mosquitto in this run (tests/tests/util.rs, `embedded()`).
# `--workspace` keeps the features of the build above (with `-p` cargo rebuilt much of it).
DEVTEL_TEST_BROKER=embedded cargo test --locked --workspace --test e2e -- pipeline:: dashboard:: zero_loss::no_message_can_stop_ingest
