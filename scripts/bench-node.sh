#!/usr/bin/env bash
# Installs the Node baseline of clientful-bench (y-websocket's server, with yjs and ws at
# the versions pinned in scripts/bench-node/package-lock.json) into
# $HOME/.cache/clientful/bench-node, together with the server script. clientful-bench
# runs this itself when the folder is missing; run it by hand to reinstall.
set -euo pipefail
cd "$(dirname "$0")/.."

dest="${CLIENTFUL_BENCH_NODE:-$HOME/.cache/clientful/bench-node}"
mkdir -p "$dest"
cp scripts/bench-node/package.json scripts/bench-node/package-lock.json \
   scripts/bench-node/y-websocket-server.cjs "$dest/"
# y-leveldb (persistence) is an optional dependency with a native module; the server
# runs without persistence, so it is left out.
npm ci --prefix "$dest" --omit=optional --no-audit --no-fund --loglevel=error >/dev/null
echo "$dest"
