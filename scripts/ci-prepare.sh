#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine. Idempotent: a second
# run only checks. The official-SDK and browser tests call their own setup
# scripts too, so a developer running `cargo test --workspace` gets the same.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup component add rustfmt clippy >/dev/null 2>&1 || true

# PostgreSQL for the scale-out tests: this kind of machine starts it before the
# session; start it again if it has stopped (harmless when it runs).
if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -q 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
fi

# The official SDKs used by the end-to-end tests (PyPI and npm).
bash tests/sdk-clients/setup.sh

# Debian's Chromium and playwright-core for the browser tests (which run from
# `cargo test`: crates/sluice/tests/browser.rs).
if [ -f tests/browser/setup.sh ]; then
  bash tests/browser/setup.sh
fi

# sluice.js: the minified build the gateway embeds (js/dist/sluice.min.js) and the
# sizes in js/README.md must match the source (terser from js/package-lock.json).
bash js/build.sh --check
