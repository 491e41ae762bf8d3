#!/usr/bin/env bash
# Idempotent install of the official Meta SDKs used by python_send.py / node_send.js:
#   - Python venv at tests/sdk-clients/.venv with facebook-business 26.0.3 (requirements.txt)
#   - npm install in tests/sdk-clients/ of facebook-nodejs-business-sdk 24.0.1 (package-lock.json)
#
# Exit codes (last stdout line is "ready" on success):
#   0  installed (or already present)
#   3  the package registries are unreachable and the SDKs are not installed yet
#      (a test may skip with this message)
#   1  anything else (install failed although the registries answered, missing tools, ...)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
py_version="26.0.3"
node_version="24.0.1"

die() { echo "sdk-clients setup: $*" >&2; exit 1; }
unreachable() {
  echo "sdk-clients setup: package registries unreachable ($1); cannot install the official SDKs" >&2
  exit 3
}

command -v node >/dev/null 2>&1 || die "node not found on PATH"
command -v npm >/dev/null 2>&1 || die "npm not found on PATH"
python_bin="${PYTHON:-}"
if [[ -z "$python_bin" ]]; then
  if command -v python3.11 >/dev/null 2>&1; then python_bin=python3.11; else python_bin=python3; fi
fi
command -v "$python_bin" >/dev/null 2>&1 || die "$python_bin not found on PATH"

# Serialize concurrent runs (several tests may call this at once).
exec 9>"$here/.setup.lock"
flock 9

installed_py_version() {
  [[ -x "$venv/bin/python" ]] || return 0
  "$venv/bin/python" - <<'PY' 2>/dev/null || true
from importlib.metadata import version
print(version("facebook_business"))
PY
}
installed_node_version() {
  node -p "require('$here/node_modules/facebook-nodejs-business-sdk/package.json').version" \
    2>/dev/null || true
}

need_py=0; need_node=0
[[ "$(installed_py_version)" == "$py_version" ]] || need_py=1
[[ "$(installed_node_version)" == "$node_version" ]] || need_node=1

if (( need_py )); then
  if [[ ! -x "$venv/bin/python" ]]; then
    "$python_bin" -m venv "$venv" || die "cannot create venv $venv"
  fi
  probe_dir="$(mktemp -d)"
  trap 'rm -rf "$probe_dir"' EXIT
  if ! "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
      --timeout 20 --retries 1 --dest "$probe_dir" "facebook_business==$py_version" >/dev/null 2>&1; then
    unreachable "pip could not fetch facebook_business==$py_version"
  fi
  echo "sdk-clients setup: installing facebook-business $py_version" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --timeout 60 --retries 2 -r "$here/requirements.txt" >&2 || die "pip install failed"
  [[ "$(installed_py_version)" == "$py_version" ]] || die "facebook-business $py_version missing after install"
fi

if (( need_node )); then
  if ! (cd "$here" && npm view "facebook-nodejs-business-sdk@$node_version" version \
      --fetch-timeout=20000 --fetch-retries=1 >/dev/null 2>&1); then
    unreachable "npm could not look up facebook-nodejs-business-sdk@$node_version"
  fi
  echo "sdk-clients setup: installing facebook-nodejs-business-sdk $node_version" >&2
  # npm ci installs exactly the lock file; the project .npmrc keeps host URLs out of it.
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed"
  [[ "$(installed_node_version)" == "$node_version" ]] || \
    die "facebook-nodejs-business-sdk $node_version missing after install"
fi

echo "ready"
