#!/usr/bin/env bash
# Runs every test: formatting and lints, unit tests, then the integration tests
# against the local stack, which this script starts and, if it started it, stops.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

scripts/python-env.sh
cargo build --workspace --all-targets
scripts/local-stack.sh up
trap 'scripts/local-stack.sh down' EXIT

cargo test --workspace --no-fail-fast -- --test-threads="${TEST_THREADS:-4}"
