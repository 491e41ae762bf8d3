#!/usr/bin/env bash
# Idempotent set-up of the SDK CPU-path benchmark:
#   - Python venv at bench/.venv with facebook-business 26.0.3 (requirements.txt)
#   - npm install in bench/sdk/ of facebook-nodejs-business-sdk 24.0.1 (package-lock.json)
# Re-running is cheap: nothing is reinstalled when the pinned versions are present.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$(cd "$here/.." && pwd)/.venv"
py_version="26.0.3"
node_version="24.0.1"

python_bin="${PYTHON:-}"
if [[ -z "$python_bin" ]]; then
  if command -v python3.11 >/dev/null 2>&1; then python_bin=python3.11; else python_bin=python3; fi
fi

installed_py_version() {
  "$venv/bin/python" - <<'PY' 2>/dev/null || true
from importlib.metadata import version
print(version("facebook_business"))
PY
}

if [[ ! -x "$venv/bin/python" ]]; then
  echo "setup: creating venv $venv" >&2
  "$python_bin" -m venv "$venv"
fi
if [[ "$(installed_py_version)" != "$py_version" ]]; then
  echo "setup: installing facebook-business $py_version" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements.txt"
fi
[[ "$(installed_py_version)" == "$py_version" ]] || {
  echo "setup: facebook-business $py_version missing after install" >&2; exit 1; }

installed_node_version() {
  node -p "require('$here/node_modules/facebook-nodejs-business-sdk/package.json').version" \
    2>/dev/null || true
}
if [[ "$(installed_node_version)" != "$node_version" ]]; then
  echo "setup: installing facebook-nodejs-business-sdk $node_version" >&2
  # npm ci installs exactly the lock file; the project .npmrc keeps host URLs out of it.
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
[[ "$(installed_node_version)" == "$node_version" ]] || {
  echo "setup: facebook-nodejs-business-sdk $node_version missing after install" >&2; exit 1; }

echo "ready: python $("$venv/bin/python" -V 2>&1 | cut -d' ' -f2), facebook-business $py_version;" \
  "node $(node --version), facebook-nodejs-business-sdk $node_version"
