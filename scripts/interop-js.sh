#!/usr/bin/env bash
# JavaScript interop: the reference against the JS Yjs and Automerge libraries
# (interop/js/README.md). Installs the pinned packages from package-lock.json, then runs
# the Node test runner; exits non-zero if any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

npm ci --prefix interop/js --no-audit --no-fund --loglevel=error >/dev/null
node --test interop/js/
