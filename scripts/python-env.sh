#!/usr/bin/env bash
# Creates .local/venv with the pinned Python packages the local stack, the demo and the
# benchmarks use, unless it is already complete. Needs Python 3.11 (LocalStack 4.12 is the
# last release that runs on it without an auth token).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.local/venv"
requirements="$root/scripts/requirements.txt"
stamp="$venv/.requirements"

if [[ -f "$stamp" ]] && cmp -s "$stamp" "$requirements"; then
  exit 0
fi
python=${PYTHON:-python3}
echo "python-env: installing $requirements into $venv" >&2
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
# The data set packages ship the files the demo and the tests use; their pandas
# dependency is not needed to read them.
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps palmerpenguins==0.1.6 vega_datasets==0.9.0
cp "$requirements" "$stamp"
