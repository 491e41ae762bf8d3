#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine. Idempotent: a second
# run only checks. The official-SDK and browser tests call their own setup
# scripts too, so a developer running `cargo test --workspace` gets the same.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup component add rustfmt clippy >/dev/null 2>&1 || true

# The official SDKs used by the end-to-end tests (PyPI and npm).
bash tests/sdk-clients/setup.sh
