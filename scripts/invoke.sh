#!/usr/bin/env bash
# Invokes one function running under `make watch` with an event file.
# Usage: scripts/invoke.sh FUNCTION EVENT_FILE
#   FUNCTION    compress-on-upload, s3-to-sqs or transform-to-rds
#   EVENT_FILE  JSON event, for example events/s3-to-sqs/<name>.json
set -euo pipefail
cd "$(dirname "$0")/.."

function=${1:-}
event=${2:-}
if [[ -z "$function" || -z "$event" ]]; then
  echo "usage: make invoke FUNCTION=<name> EVENT=<file>" >&2
  echo "functions: compress-on-upload s3-to-sqs transform-to-rds; events under events/<function>/" >&2
  exit 2
fi
if [[ ! -f "$event" ]]; then
  echo "invoke: event file $event not found" >&2
  exit 2
fi

PATH="$(scripts/lambda-env.sh):$PATH"
export PATH
exec cargo lambda invoke "$function" --data-file "$event" \
  --invoke-address 127.0.0.1 --invoke-port "${PIPELINE_INVOKE_PORT:-9000}"
