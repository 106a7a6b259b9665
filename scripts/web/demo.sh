#!/usr/bin/env bash
# The web demo in one command: builds the browser module (scripts/web/build.sh, the dev
# profile the tests use), installs the npm packages pinned by packages/web/package-lock.json
# if they are missing, compiles the TypeScript package into packages/web/dist, then runs
# `clientful demo --web` (the embedded broker, WebDAV storage with CORS and the demo app's
# static server on loopback) and prints the URL to open in two tabs. Nothing is fetched at
# run time; the first build needs the crates and npm registries (or their caches).
#
#   bash scripts/web/demo.sh [--port N] [--dir DIR]
#
# A script rather than `cargo run -p clientful-cli -- demo --web` alone because the
# module's JS glue comes from the wasm-bindgen CLI and the package from tsc, which cargo
# does not run; `clientful demo --web` itself serves an already built package.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash scripts/web/build.sh
if [ ! -d packages/web/node_modules/yjs ] || [ ! -x packages/web/node_modules/.bin/tsc ]; then
  npm ci --prefix packages/web --no-audit --no-fund --loglevel=error >/dev/null
fi
(cd packages/web && ./node_modules/.bin/tsc -p .)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clientful/target}"
cargo build --locked -q -p clientful-cli --bin clientful
exec "$CARGO_TARGET_DIR/debug/clientful" demo --web --web-root packages/web "$@"
