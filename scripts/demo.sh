#!/usr/bin/env bash
# Runs the whole pipeline on this machine with real data files and prints a report.
#
# Starts what is missing (Python environment, cargo-lambda, LocalStack, PostgreSQL, the local
# Data API), builds, creates the template's buckets and queues (`local-pipeline setup`), applies
# the migrations, starts the functions under `cargo lambda watch`, uploads four data files under
# incoming/<dataset>/, runs `local-pipeline run` until the queues drain, and prints per file the
# archive copy's size and ratio, the records sent and rejected, and the rows per table before and
# after. Running it again uploads the same files and adds no rows.
#
# It stops what it started (watch and the pipeline) and leaves the stack up: `make local-down`
# stops that. Logs: .local/logs/{watch,pipeline}.log.
# DEMO_DRAIN_TIMEOUT_SECS bounds the wait for the queues to drain (default 600).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

logs="$root/.local/logs"
state="$root/.local/demo"
mkdir -p "$logs" "$state"

# The SDKs talk only to the local stack on 127.0.0.1, with LocalStack's test credentials.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:4566
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
invoke_port=${PIPELINE_INVOKE_PORT:-9000}
drain_timeout_secs=${DEMO_DRAIN_TIMEOUT_SECS:-600}
pipeline="$root/target/debug/local-pipeline"
journal="$logs/demo-invocations.jsonl"

step() { printf '\n== %s\n' "$*" >&2; }

watch_pid=""
run_pid=""
# Stops the process groups this script started, and nothing else.
stop_started() {
  for pid in "$run_pid" "$watch_pid"; do
    [[ -n "$pid" ]] || continue
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
}
trap stop_started EXIT

step "Python environment (LocalStack, data files)"
scripts/python-env.sh

step "cargo-lambda"
PATH="$(scripts/lambda-env.sh):$PATH"
export PATH

step "Local stack"
scripts/local-stack.sh up

step "Build"
cargo build --quiet -p local-pipeline -p pipeline-admin -p compress-on-upload -p s3-to-sqs -p transform-to-rds

step "Buckets, queues and notifications from template.yaml"
"$pipeline" setup

step "Migrations"
scripts/migrate.sh
"$pipeline" counts --save "$state/counts-before.json"

step "Functions under cargo lambda watch (log: $logs/watch.log)"
if curl -s -o /dev/null "http://127.0.0.1:$invoke_port/"; then
  echo "demo: port $invoke_port is taken; stop the other \`make watch\` or set PIPELINE_INVOKE_PORT" >&2
  exit 1
fi
# --ignore-changes: edits made while the demo runs must not restart the functions mid-run.
setsid scripts/watch.sh --ignore-changes >"$logs/watch.log" 2>&1 &
watch_pid=$!
for _ in $(seq 120); do
  curl -s -o /dev/null "http://127.0.0.1:$invoke_port/" && break
  kill -0 "$watch_pid" 2>/dev/null || { echo "demo: cargo lambda watch exited; see $logs/watch.log" >&2; exit 1; }
  sleep 1
done

step "Upload"
data=$(echo "$root"/.local/venv/lib/python3.*/site-packages)
gzip -9 -c "$data/vega_datasets/_data/seattle-weather.csv" >"$state/seattle-weather.csv.gz"
started_ns=$(date +%s%N)
"$pipeline" upload "$data/palmerpenguins/data/penguins-raw.csv" --key "incoming/penguins/penguins-raw.csv"
"$pipeline" upload "$data/vega_datasets/_data/airports.csv" --key "incoming/airports/US airports — été.csv"
"$pipeline" upload "$data/vega_datasets/_data/cars.json" --key "incoming/cars/cars.json"
"$pipeline" upload "$state/seattle-weather.csv.gz" --key "incoming/seattle_weather/seattle-weather.csv.gz"

step "Pipeline, until the queues drain (at most ${drain_timeout_secs}s; log: $logs/pipeline.log)"
: >"$journal"
setsid "$pipeline" run --invoke-url "http://127.0.0.1:$invoke_port" --journal "$journal" \
  --drain-timeout-secs "$drain_timeout_secs" >"$logs/pipeline.log" 2>&1 &
run_pid=$!
status=0
wait "$run_pid" || status=$?
run_pid=""
elapsed=$(awk -v now="$(date +%s%N)" -v start="$started_ns" 'BEGIN { printf "%.1f", (now - start) / 1e9 }')
if ((status != 0)); then
  echo "demo: the pipeline did not drain; last lines of $logs/pipeline.log:" >&2
  tail -n 20 "$logs/pipeline.log" >&2
fi

step "Report"
if ((status == 0)); then
  "$pipeline" report --journal "$journal" --before "$state/counts-before.json" --elapsed-secs "$elapsed"
  cat <<'EOF'

Run `make demo` again: it uploads the same files, and the row counts stay the same, because
each record's id comes from its bucket, key, ETag and position. The stack stays up;
`make local-down` stops it.
EOF
else
  "$pipeline" report --journal "$journal" --before "$state/counts-before.json"
  echo
  echo "The queues had not drained after ${elapsed}s; see $logs/pipeline.log and $logs/watch.log."
  echo "The stack stays up; 'make local-down' stops it."
fi
exit "$status"
