#!/usr/bin/env bash
# Idempotent setup for the sluice.js browser tests, from a fresh clone:
#   - Debian's `chromium` package (gives /usr/bin/chromium) via apt-get when missing;
#     playwright's own browser download is not used;
#   - playwright-core, exactly as pinned in package-lock.json (npm ci), when missing.
#
# Exit codes (last stdout line is "ready" on success):
#   0  installed (or already present)
#   3  package registries unreachable and something is still missing
#   1  anything else (no root/sudo for apt-get, install failed although the registry answered, ...)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
chromium_bin="${CHROMIUM:-/usr/bin/chromium}"

die() { echo "browser-tests setup: $*" >&2; exit 1; }
unreachable() {
  echo "browser-tests setup: package registries unreachable ($1); cannot install what the browser tests need" >&2
  exit 3
}

command -v node >/dev/null 2>&1 || die "node not found on PATH"
command -v npm >/dev/null 2>&1 || die "npm not found on PATH"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
(( node_major >= 20 )) || die "node >= 20 needed (node --test, playwright-core); found $(node --version)"

# Serialize concurrent runs.
exec 9>"$here/.setup.lock"
flock 9

if [[ ! -x "$chromium_bin" ]]; then
  [[ "$chromium_bin" == /usr/bin/chromium ]] || die "CHROMIUM=$chromium_bin is not an executable"
  command -v apt-get >/dev/null 2>&1 || die "/usr/bin/chromium missing and apt-get not available: install Chromium yourself"
  sudo=()
  if (( EUID != 0 )); then
    command -v sudo >/dev/null 2>&1 || die "/usr/bin/chromium missing: run as root (apt-get install chromium) or install it yourself"
    sudo=(sudo -n)
  fi
  echo "browser-tests setup: installing Debian chromium (apt-get)" >&2
  apt_log="$(mktemp)"
  trap 'rm -f "$apt_log"' EXIT
  if ! "${sudo[@]}" apt-get update >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    unreachable "apt-get update failed"
  fi
  # apt-get update exits 0 even when every source failed to download.
  if grep -qE '^(Err|W: Failed to fetch)' "$apt_log" && ! apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    cat "$apt_log" >&2
    unreachable "apt-get update could not reach the package sources"
  fi
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    if grep -qE 'Could not resolve|Failed to fetch|Temporary failure|Unable to connect|Unable to locate package' "$apt_log"; then
      unreachable "apt-get install chromium could not download"
    fi
    die "apt-get install chromium failed"
  fi
  [[ -x "$chromium_bin" ]] || die "chromium installed but $chromium_bin is missing"
fi

want="$(node -p "require('$here/package.json').devDependencies['playwright-core']")"
have="$(node -p "require('$here/node_modules/playwright-core/package.json').version" 2>/dev/null || true)"
if [[ "$have" != "$want" ]]; then
  if ! (cd "$here" && npm view "playwright-core@$want" version --fetch-timeout=20000 --fetch-retries=1 >/dev/null 2>&1); then
    unreachable "npm could not look up playwright-core@$want"
  fi
  echo "browser-tests setup: installing playwright-core $want (npm ci)" >&2
  # npm ci installs exactly the lock file; .npmrc keeps registry host URLs out of it.
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed"
  have="$(node -p "require('$here/node_modules/playwright-core/package.json').version" 2>/dev/null || true)"
  [[ "$have" == "$want" ]] || die "playwright-core $want missing after npm ci"
fi

echo "ready"
