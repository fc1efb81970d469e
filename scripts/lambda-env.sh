#!/usr/bin/env bash
# Creates .local/venv-lambda with the pinned cargo-lambda and ziglang, unless it is already
# complete, and prints the folder to put first on PATH.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.local/venv-lambda"
requirements="$root/scripts/requirements-lambda.txt"
stamp="$venv/.requirements"

if ! { [[ -f "$stamp" ]] && cmp -s "$stamp" "$requirements"; }; then
  echo "lambda-env: installing $requirements into $venv" >&2
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi
echo "$venv/bin"
