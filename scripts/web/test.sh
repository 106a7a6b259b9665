#!/usr/bin/env bash
# The browser tests: installs what is missing (the wasm toolchain, Debian's chromium, the
# npm packages pinned by packages/web/package-lock.json), builds the module
# (scripts/web/build.sh) and runs the Node test runner over packages/web/test/, which
# drives real headless Chromium. Exits non-zero if any test fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

chromium=$(bash scripts/services/chromium.sh | tail -n 1)
export CLIENTFUL_CHROMIUM="$chromium"
bash scripts/web/build.sh
npm ci --prefix packages/web --no-audit --no-fund --loglevel=error >/dev/null
# The TypeScript bindings (packages/web/src, strict) into packages/web/dist.
(cd packages/web && ./node_modules/.bin/tsc -p .)
# Two test files at a time: each starts its own servers, brokers and Chromium on free ports.
node --test --test-concurrency=2 packages/web/test/*.test.mjs
