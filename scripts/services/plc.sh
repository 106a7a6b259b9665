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

here="$(cd "$(dirname "$0")" && pwd)/plc"
run_dir="${CLIENTFUL_PLC_DIR:-${HOME}/.cache/clientful/plc-run}"

install() {
  if [ ! -f "${here}/node_modules/@did-plc/server/package.json" ]; then
    (cd "${here}" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local port
  install
  mkdir -p "${run_dir}"
  stop >/dev/null 2>&1 || true
  port="$(free_port)"
  node "${here}/server.mjs" "${port}" >"${run_dir}/plc.log" 2>&1 &
  echo $! >"${run_dir}/pid"
  for _ in $(seq 1 100); do
    if python3 - "${port}" <<'PY' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_health", timeout=1) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
    then
      echo "CLIENTFUL_PLC_URL=http://127.0.0.1:${port}"
      return 0
    fi
    if ! kill -0 "$(cat "${run_dir}/pid")" 2>/dev/null; then
      echo "PLC directory exited; log:" >&2
      cat "${run_dir}/plc.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "PLC directory did not become ready; log:" >&2
  cat "${run_dir}/plc.log" >&2
  return 1
}

stop() {
  if [ -f "${run_dir}/pid" ]; then
    local pid
    pid="$(cat "${run_dir}/pid")"
    if kill -0 "${pid}" 2>/dev/null; then
      kill "${pid}"
      for _ in $(seq 1 50); do
        kill -0 "${pid}" 2>/dev/null || break
        sleep 0.1
      done
    fi
    rm -f "${run_dir}/pid"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
