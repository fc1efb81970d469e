#!/usr/bin/env bash
# Applies migrations/*.sql through the RDS Data API with pipeline-admin (safe to rerun).
#
# Local stack (default): the local Data API on 127.0.0.1:$PIPELINE_DATA_API_PORT with the fixed
# local ARNs and database `pipeline`. Start it first with `make local-up`.
# Deployed stack: set DB_CLUSTER_ARN and DB_SECRET_ARN (and DB_NAME), or set STACK_NAME to read
# them from the CloudFormation stack's outputs DbClusterArn and DbSecretArn with the aws CLI.
# Extra arguments go to `pipeline-admin migrate`, for example --dir or --migrations-table.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [[ -z "${DB_CLUSTER_ARN:-}" && -n "${STACK_NAME:-}" ]]; then
  if ! command -v aws >/dev/null; then
    echo "migrate: STACK_NAME is set but the aws CLI is not installed; set DB_CLUSTER_ARN and DB_SECRET_ARN instead" >&2
    exit 1
  fi
  output() {
    aws cloudformation describe-stacks --stack-name "$STACK_NAME" \
      --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
  }
  DB_CLUSTER_ARN=$(output DbClusterArn)
  DB_SECRET_ARN=$(output DbSecretArn)
  if [[ -z "$DB_CLUSTER_ARN" || "$DB_CLUSTER_ARN" == "None" || -z "$DB_SECRET_ARN" || "$DB_SECRET_ARN" == "None" ]]; then
    echo "migrate: stack $STACK_NAME has no DbClusterArn or DbSecretArn output" >&2
    exit 1
  fi
  export DB_CLUSTER_ARN DB_SECRET_ARN
fi

if [[ -z "${DB_CLUSTER_ARN:-}" ]]; then
  # The local stack: fixed ARNs that the local Data API accepts, test credentials.
  port=${PIPELINE_DATA_API_PORT:-8089}
  if ! curl -fsS "http://127.0.0.1:$port/_local/health" >/dev/null 2>&1; then
    echo "migrate: no local Data API on 127.0.0.1:$port; run make local-up first" >&2
    exit 1
  fi
  export AWS_ENDPOINT_URL_RDS_DATA="http://127.0.0.1:$port"
  export AWS_REGION=${AWS_REGION:-us-east-1}
  export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test}
  export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
  export DB_CLUSTER_ARN="arn:aws:rds:us-east-1:000000000000:cluster:local"
  export DB_SECRET_ARN="arn:aws:secretsmanager:us-east-1:000000000000:secret:local"
  export DB_NAME=${DB_NAME:-pipeline}
  echo "migrate: local Data API at $AWS_ENDPOINT_URL_RDS_DATA, database $DB_NAME" >&2
else
  if [[ -z "${DB_SECRET_ARN:-}" ]]; then
    echo "migrate: DB_CLUSTER_ARN is set but DB_SECRET_ARN is not" >&2
    exit 1
  fi
  echo "migrate: cluster $DB_CLUSTER_ARN, database ${DB_NAME:-pipeline}" >&2
fi

cargo run --quiet -p pipeline-admin -- migrate --dir "$root/migrations" "$@"
