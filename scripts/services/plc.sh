#!/usr/bin/env bash
# A real PLC directory (npm @did-plc/server with its in-memory database, pinned in
# scripts/services/plc/package.json and its lock file) on loopback, for the did:plc
# attestation tests (spec §14.6, ATT-15..ATT-19).
#
#   scripts/services/plc.sh start   installs the pinned packages (`npm ci`, once), starts
#                                   scripts/services/plc/server.mjs on a free loopback port,
#                                   waits until /_health answers, and prints
#                                   `CLIENTFUL_PLC_URL=http://127.0.0.1:PORT` on stdout
#   scripts/services/plc.sh stop    stops the directory started by `start`
#
# DIDs are made and changed with scripts/services/plc/did.mjs (@did-plc/lib, real secp256k1
# keys). State (pid, log) lives in $CLIENTFUL_PLC_DIR (default: a fixed folder under
# $HOME/.cache/clientful/plc-run).
set -euo pipefail

# shellcheck source=scripts/services/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

node_service "${1:-}" "PLC directory" plc "@did-plc/server/package.json" \
  "${CLIENTFUL_PLC_DIR:-${HOME}/.cache/clientful/plc-run}" plc.log "_health" CLIENTFUL_PLC_URL
