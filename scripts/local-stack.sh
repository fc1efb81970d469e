#!/usr/bin/env bash
# Starts and stops the local stack that the tests and the demo run against:
#   LocalStack (S3 and SQS) on 127.0.0.1:4566, unless AWS_ENDPOINT_URL names one already running;
#   a throwaway PostgreSQL cluster on 127.0.0.1:$PIPELINE_PG_PORT;
#   the local RDS Data API on 127.0.0.1:$PIPELINE_DATA_API_PORT, in front of that cluster.
# Usage: scripts/local-stack.sh up|down|status
# Everything lives under .local/ (ignored by git): the Python virtual environment, the
# PostgreSQL data directory, logs in .local/logs and the process ids of what `up` started.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.local"
logs="$state/logs"
pids="$state/pids"
venv="$state/venv"
pg_port=${PIPELINE_PG_PORT:-54329}
data_api_port=${PIPELINE_DATA_API_PORT:-8089}
localstack_url="http://127.0.0.1:4566"
wait_secs=${PIPELINE_WAIT_SECS:-180}

mkdir -p "$logs" "$pids"

log() { printf 'local-stack: %s\n' "$*" >&2; }

# Waits until "$@" succeeds, for at most $wait_secs seconds.
wait_for() {
  local what=$1 deadline=$((SECONDS + wait_secs))
  shift
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "$what did not become ready within ${wait_secs}s; see $logs"
      return 1
    fi
    sleep 1
  done
  log "$what is ready"
}

# Returns 0 when the process whose id is in pids/$1 is alive.
running() {
  [[ -f "$pids/$1" ]] && kill -0 "$(cat "$pids/$1")" 2>/dev/null
}

localstack_healthy() {
  curl -fsS "$1/_localstack/health" | python3 -c '
import json, sys
services = json.load(sys.stdin).get("services", {})
sys.exit(0 if all(services.get(name) in ("available", "running") for name in ("s3", "sqs")) else 1)'
}

up_localstack() {
  if [[ -n "${AWS_ENDPOINT_URL:-}" && "${AWS_ENDPOINT_URL%/}" != "$localstack_url" ]]; then
    log "using the LocalStack at AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
    wait_for "LocalStack at $AWS_ENDPOINT_URL" localstack_healthy "${AWS_ENDPOINT_URL%/}"
    return
  fi
  if localstack_healthy "$localstack_url" 2>/dev/null; then
    log "LocalStack already runs on $localstack_url"
    return
  fi
  "$root/scripts/python-env.sh" >&2
  log "starting LocalStack (log: $logs/localstack.log)"
  # DISABLE_EVENTS turns off usage reporting; SQS_ENDPOINT_STRATEGY=path and LOCALSTACK_HOST
  # make queue URLs point at 127.0.0.1 instead of a host name that needs public DNS.
  (
    cd "$state"
    env RUNTIME_COMPONENTS=aws GATEWAY_LISTEN=127.0.0.1:4566 DNS_ADDRESS=0 DISABLE_EVENTS=1 \
      SKIP_SSL_CERT_DOWNLOAD=1 SQS_ENDPOINT_STRATEGY=path LOCALSTACK_HOST=127.0.0.1:4566 \
      SERVICES=s3,sqs,sns,events,sts LOCALSTACK_VOLUME_DIR="$state/localstack" \
      nohup "$venv/bin/python" -m localstack.runtime.main >"$logs/localstack.log" 2>&1 &
    echo $! >"$pids/localstack"
  )
  wait_for "LocalStack" localstack_healthy "$localstack_url"
}

# PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user.
as_pg_user() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [[ -x "$dir/pg_ctl" ]] && { echo "$dir"; return; }
  done
  dirname "$(command -v pg_ctl)"
}

up_postgres() {
  local data="$state/pg" bin
  bin=$(pg_bin)
  if pg_isready -q -h 127.0.0.1 -p "$pg_port"; then
    log "PostgreSQL already runs on port $pg_port"
    return
  fi
  if [[ ! -f "$data/PG_VERSION" ]]; then
    mkdir -p "$data"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$data"
    as_pg_user "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$logs/initdb.log" 2>&1
  fi
  touch "$logs/postgres.log"
  [[ $(id -u) -eq 0 ]] && chown postgres: "$logs/postgres.log"
  log "starting PostgreSQL on port $pg_port (log: $logs/postgres.log)"
  as_pg_user "$bin/pg_ctl" -D "$data" -l "$logs/postgres.log" -w -t "$wait_secs" \
    -o "-p $pg_port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
  echo "$data" >"$pids/postgres"
  wait_for "PostgreSQL" pg_isready -h 127.0.0.1 -p "$pg_port"
  psql -h 127.0.0.1 -p "$pg_port" -U postgres -tAc "select 1 from pg_database where datname = 'pipeline'" | grep -q 1 ||
    psql -h 127.0.0.1 -p "$pg_port" -U postgres -qc "create database pipeline"
}

up_data_api() {
  if curl -fsS "http://127.0.0.1:$data_api_port/_local/health" >/dev/null 2>&1; then
    log "the local Data API already runs on port $data_api_port"
    return
  fi
  local binary="$root/target/debug/local-data-api"
  (cd "$root" && cargo build --quiet -p local-data-api)
  log "starting the local Data API on port $data_api_port (log: $logs/data-api.log)"
  DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/pipeline" \
    nohup "$binary" --listen "127.0.0.1:$data_api_port" >"$logs/data-api.log" 2>&1 &
  echo $! >"$pids/data-api"
  wait_for "the local Data API" curl -fsS "http://127.0.0.1:$data_api_port/_local/health"
}

down() {
  if running data-api; then
    log "stopping the local Data API"
    kill "$(cat "$pids/data-api")" 2>/dev/null || true
  fi
  rm -f "$pids/data-api"
  if [[ -f "$pids/postgres" ]]; then
    log "stopping PostgreSQL"
    as_pg_user "$(pg_bin)/pg_ctl" -D "$(cat "$pids/postgres")" -m fast -w stop >/dev/null 2>&1 || true
    rm -f "$pids/postgres"
  fi
  if running localstack; then
    log "stopping LocalStack"
    local pid
    pid=$(cat "$pids/localstack")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pids/localstack"
}

# Reports each part; exits 0 only when all three are up.
status() {
  local down=0
  if localstack_healthy "${AWS_ENDPOINT_URL:-$localstack_url}" 2>/dev/null; then log "LocalStack: up"; else log "LocalStack: down"; down=1; fi
  if pg_isready -q -h 127.0.0.1 -p "$pg_port"; then log "PostgreSQL: up"; else log "PostgreSQL: down"; down=1; fi
  if curl -fsS "http://127.0.0.1:$data_api_port/_local/health" >/dev/null 2>&1; then log "Data API: up"; else log "Data API: down"; down=1; fi
  return "$down"
}

case "${1:-}" in
  up) up_localstack; up_postgres; up_data_api ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
