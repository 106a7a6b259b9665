#!/usr/bin/env bash
# A real OpenID provider (npm oidc-provider, pinned in scripts/services/oidc/package.json and
# its lock file) on loopback, for the attestation tests (spec §14).
#
#   scripts/services/oidc.sh start   installs the pinned packages (`npm ci`, once), starts
#                                    scripts/services/oidc/server.mjs on a free loopback port,
#                                    waits until its discovery document answers, and prints
#                                    `CLIENTFUL_OIDC_ISSUER=http://127.0.0.1:PORT` on stdout
#   scripts/services/oidc.sh stop    stops the provider started by `start`
#
# Tokens come from scripts/services/oidc/flow.mjs (authorization code with PKCE through the
# provider's development login and consent forms). State (pid, log) lives in
# $CLIENTFUL_OIDC_DIR (default: a fixed folder under $HOME/.cache/clientful/oidc-run).
set -euo pipefail

# shellcheck source=scripts/services/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

node_service "${1:-}" "oidc-provider" oidc "oidc-provider/package.json" \
  "${CLIENTFUL_OIDC_DIR:-${HOME}/.cache/clientful/oidc-run}" oidc.log ".well-known/openid-configuration" CLIENTFUL_OIDC_ISSUER
