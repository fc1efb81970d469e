#!/usr/bin/env bash
# Runs the pinned SAM CLI from .local/venv-sam, which it creates from
# scripts/requirements-sam.txt unless it is already complete.
#
#   scripts/sam.sh build      sam build of the three functions through cargo-lambda (make build)
#   scripts/sam.sh validate   sam validate --lint of template.yaml
#   scripts/sam.sh env        create the virtual environment and print its bin folder
#   scripts/sam.sh ARGS...    any other sam command, such as deploy --guided
#
# Telemetry and SAM CLI's weekly update check are off, so that build and validate send
# nothing anywhere. cargo-lambda and ziglang come from scripts/lambda-env.sh.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.local/venv-sam"
requirements="$root/scripts/requirements-sam.txt"
stamp="$venv/.requirements"

sam_env() {
  if ! { [[ -f "$stamp" ]] && cmp -s "$stamp" "$requirements"; }; then
    echo "sam: installing $requirements into $venv" >&2
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$stamp"
  fi

  export SAM_CLI_TELEMETRY=0
  # SAM CLI keeps its settings in the folder that __SAM_CLI_APP_DIR names. A last update check
  # in the far future (2100-01-01) stops it from asking PyPI for a newer version.
  export __SAM_CLI_APP_DIR="$root/.local/sam-cli"
  if [[ ! -f "$__SAM_CLI_APP_DIR/metadata.json" ]]; then
    mkdir -p "$__SAM_CLI_APP_DIR"
    echo '{"telemetryEnabled": false, "lastVersionCheck": 4102444800}' >"$__SAM_CLI_APP_DIR/metadata.json"
  fi
}

command=${1:-}
case "$command" in
  env)
    sam_env
    echo "$venv/bin"
    ;;
  build)
    sam_env
    lambda_bin=$("$root/scripts/lambda-env.sh")
    export PATH="$lambda_bin:$PATH"
    # The template's default architecture is arm64, and cross-compiling needs that target's
    # standard library.
    arm64_target=aarch64-unknown-linux-gnu
    if [[ $(uname -m) != aarch64 ]] && command -v rustup >/dev/null &&
      ! rustup target list --installed | grep -qx "$arm64_target"; then
      rustup target add "$arm64_target"
    fi
    shift
    cd "$root"
    started=$(date +%s)
    # The rust-cargolambda build method is a beta feature of SAM CLI. samconfig.toml turns it
    # on too, and the flag keeps it on with any other config environment.
    "$venv/bin/sam" build --beta-features "$@"
    echo "sam: build took $(($(date +%s) - started)) s" >&2
    ;;
  validate)
    sam_env
    shift
    cd "$root"
    # sam validate needs a region for the translated template, but it sends no request.
    "$venv/bin/sam" validate --lint --region "${AWS_REGION:-us-east-1}" "$@"
    ;;
  "")
    echo "usage: scripts/sam.sh build|validate|env|<sam arguments>" >&2
    exit 2
    ;;
  *)
    sam_env
    cd "$root"
    exec "$venv/bin/sam" "$@"
    ;;
esac
