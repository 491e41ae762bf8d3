#!/usr/bin/env bash
# Runs the sluice.js browser tests in headless Chromium (installs what is missing first).
#   ./run.sh                         against the built-in fake gateway (script-level tests)
#   SLUICE_BASE_URL=http://127.0.0.1:8080 EVENTS_URL=http://127.0.0.1:9090/... ./run.sh
#                                    against a running gateway (see README.md)
# Extra arguments go to `node --test` (e.g. --test-name-pattern=consent).
# Exit code 3: registries unreachable and Chromium/playwright-core not installed yet.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/setup.sh" >/dev/null
cd "$here"
exec node --test --test-reporter=spec "$@" sluice.test.mjs gateway.test.mjs
