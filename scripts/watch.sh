#!/usr/bin/env bash
# Runs the three functions under `cargo lambda watch`, which serves every binary of the
# workspace at http://127.0.0.1:9000/2015-03-31/functions/<name>/invocations and rebuilds
# a function when its code changes. Each function's environment (the local stack's
# endpoints, bucket, queue URL, database ARNs) comes from [package.metadata.lambda.env]
# in its Cargo.toml; `local-pipeline env --check` checks that it still matches
# template.yaml. Extra arguments go to `cargo lambda watch`.
set -euo pipefail
cd "$(dirname "$0")/.."

PATH="$(scripts/lambda-env.sh):$PATH"
export PATH

# Listen on loopback only; cargo-lambda's default address is every interface.
exec cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "${PIPELINE_INVOKE_PORT:-9000}" "$@"
