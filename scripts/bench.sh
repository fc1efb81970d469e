#!/usr/bin/env bash
# Runs the benchmarks against the local stack and prints their figures. They are not tests:
# they time things, and these machines are noisy, so each prints medians and ratios against a
# baseline measured in the same run. BENCH_RUNS sets the repetitions.
set -euo pipefail
cd "$(dirname "$0")/.."

export AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_REGION=${AWS_REGION:-us-east-1}

scripts/python-env.sh
cargo build --profile bench -p pipeline-bench -p local-data-api
scripts/local-stack.sh up
scripts/migrate.sh

# The writer is measured against an optimised build of the local Data API, on a port of its
# own, because the debug build that local-up starts is itself the bottleneck.
bench_port=${PIPELINE_BENCH_DATA_API_PORT:-8095}
target/release/local-data-api --listen "127.0.0.1:$bench_port" \
  --database-url "postgres://postgres@127.0.0.1:${PIPELINE_PG_PORT:-54329}/pipeline" \
  >.local/logs/bench-data-api.log 2>&1 &
data_api_pid=$!
trap 'kill $data_api_pid 2>/dev/null || true' EXIT
for _ in $(seq 30); do
  curl -fsS "http://127.0.0.1:$bench_port/_local/health" >/dev/null 2>&1 && break
  sleep 1
done

for bench in compress s3_to_sqs transform; do
  echo
  echo "== $bench"
  PIPELINE_DATA_API_URL="http://127.0.0.1:$bench_port" "target/release/$bench"
done
