#!/usr/bin/env bash
# Runs every test: clippy, unit tests, integration tests against the local stack, and the
# template checks. Starts the local stack if it is not running, and then stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# The tests talk only to the local stack on 127.0.0.1.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1

scripts/python-env.sh
cargo build --workspace --all-targets
cargo clippy --workspace --all-targets --quiet -- -D warnings

if scripts/local-stack.sh status 2>/dev/null; then
  echo "test: using the local stack that is already running" >&2
else
  scripts/local-stack.sh up
  trap 'scripts/local-stack.sh down' EXIT
fi

cargo test --workspace --no-fail-fast -- --test-threads="${TEST_THREADS:-4}"

scripts/lint.sh
