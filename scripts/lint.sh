#!/usr/bin/env bash
# Checks template.yaml with sam validate --lint, cfn-lint and checkov (make lint). The pinned
# tools are installed on first use: SAM CLI and cfn-lint into .local/venv-sam
# (scripts/requirements-sam.txt), checkov into .local/venv-checkov
# (scripts/requirements-checkov.txt). A suppressed check carries its reason in template.yaml.
# Nothing here sends a request: SAM CLI's telemetry and update check are off (scripts/sam.sh),
# and checkov neither downloads policies nor checks for updates.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

checkov_venv="$root/.local/venv-checkov"
checkov_requirements="$root/scripts/requirements-checkov.txt"
checkov_stamp="$checkov_venv/.requirements"

install_checkov() {
  if ! { [[ -f "$checkov_stamp" ]] && cmp -s "$checkov_stamp" "$checkov_requirements"; }; then
    echo "lint: installing $checkov_requirements into $checkov_venv" >&2
    "${PYTHON:-python3}" -m venv "$checkov_venv"
    "$checkov_venv/bin/pip" install --quiet --disable-pip-version-check -r "$checkov_requirements"
    cp "$checkov_requirements" "$checkov_stamp"
  fi
}

# The two installs take a few minutes each on a first run, mostly waiting on downloads, so
# they run at the same time.
install_checkov &
checkov_install=$!
sam_bin=$(scripts/sam.sh env)
wait "$checkov_install"

echo "lint: sam validate --lint" >&2
scripts/sam.sh validate

echo "lint: cfn-lint" >&2
"$sam_bin/cfn-lint" template.yaml

echo "lint: checkov" >&2
CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE \
  "$checkov_venv/bin/checkov" -f template.yaml --framework cloudformation --skip-download --quiet --compact

echo "lint: template.yaml is clean" >&2
