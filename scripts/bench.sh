#!/usr/bin/env bash
# Runs the benchmarks against the local stack and prints their figures. They are not tests:
# they time things, and these machines are noisy, so each prints medians and ratios against a
# baseline measured in the same run. BENCH_RUNS sets the repetitions.
set -euo pipefail
cd "$(dirname "$0")/.."

export AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}

scripts/python-env.sh
cargo build --profile bench -p pipeline-bench
scripts/local-stack.sh up

for bench in compress s3_to_sqs transform; do
  echo
  echo "== $bench"
  "target/release/$bench"
done
