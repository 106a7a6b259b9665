# Shared helpers of the loopback test services in scripts/services/ (sourced, not run):
# what oidc.sh, plc.sh, nats.sh, s3.sh and webdav.sh used to repeat each on its own.
#
#   free_port                       prints a free TCP port on 127.0.0.1 (the kernel picks it)
#   npm_ci_once DIR MARKER          `npm ci` in DIR (pinned by its lock file) unless
#                                   DIR/node_modules/MARKER exists; npm's output goes to stderr
#   start_background PID_FILE LOG COMMAND [ARG...]
#                                   starts COMMAND in the background, stdout and stderr to
#                                   LOG, and writes its pid to PID_FILE
#   http_ok URL                     succeeds if GET URL answers 200 within a second
#   wait_ready NAME PID_FILE LOG TRIES INTERVAL LOG_LINES PROBE [ARG...]
#                                   runs PROBE [ARG...] up to TRIES times, INTERVAL seconds
#                                   apart, until it succeeds (returns 0). If the process in
#                                   PID_FILE exits first: "NAME exited; log:" and the log on
#                                   stderr, returns 1. If it never succeeds: "NAME did not become
#                                   ready; log:" and the log, returns 2. LOG_LINES is `all`
#                                   (the whole log) or how many last lines to print.
#   stop_service PID_FILE TRIES INTERVAL [--kill9]
#                                   if PID_FILE names a live process: SIGTERM, then waits up to
#                                   TRIES x INTERVAL seconds for it to end (and with --kill9
#                                   sends SIGKILL after that); removes PID_FILE
#   node_service ACTION NAME DIR MARKER RUN_DIR LOG_NAME HEALTH_PATH ENV_VAR
#                                   the whole of a Node service script (oidc.sh, plc.sh), DIR
#                                   being its folder under scripts/services/. ACTION `start`:
#                                   npm_ci_once DIR MARKER, stops an earlier one, runs
#                                   `node DIR/server.mjs PORT` on a free port (pid in
#                                   RUN_DIR/pid, log in RUN_DIR/LOG_NAME), waits until
#                                   http://127.0.0.1:PORT/HEALTH_PATH answers 200 (100 tries,
#                                   0.1 s apart), then prints `ENV_VAR=http://127.0.0.1:PORT`;
#                                   a server that exits with EADDRINUSE (the port was taken
#                                   after free_port closed it) is started again, 3 tries.
#                                   `stop`: stop_service RUN_DIR/pid 50 0.1. Anything else:
#                                   usage on stderr, exit 2.
#
# The scripts keep their own interface (arguments, the lines `start` prints, the
# environment variables and folders they honour); scripts/test-all.sh and the tests call them.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

npm_ci_once() {
  local dir="$1" marker="$2"
  if [ ! -f "${dir}/node_modules/${marker}" ]; then
    (cd "${dir}" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
}

start_background() {
  local pid_file="$1" log="$2"
  shift 2
  "$@" >"${log}" 2>&1 &
  echo $! >"${pid_file}"
}

http_ok() {
  python3 - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=1) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
}

_print_log() {
  local log="$1" lines="$2"
  if [ "${lines}" = "all" ]; then
    cat "${log}" >&2
  else
    tail -n "${lines}" "${log}" >&2
  fi
}

wait_ready() {
  local name="$1" pid_file="$2" log="$3" tries="$4" interval="$5" lines="$6"
  shift 6
  for _ in $(seq 1 "${tries}"); do
    if "$@"; then
      return 0
    fi
    if ! kill -0 "$(cat "${pid_file}")" 2>/dev/null; then
      echo "${name} exited; log:" >&2
      _print_log "${log}" "${lines}"
      return 1
    fi
    sleep "${interval}"
  done
  echo "${name} did not become ready; log:" >&2
  _print_log "${log}" "${lines}"
  return 2
}

stop_service() {
  local pid_file="$1" tries="$2" interval="$3" force="${4:-}" pid
  if [ -f "${pid_file}" ]; then
    pid="$(cat "${pid_file}")"
    kill "${pid}" 2>/dev/null || true
    for _ in $(seq 1 "${tries}"); do
      kill -0 "${pid}" 2>/dev/null || break
      sleep "${interval}"
    done
    if [ "${force}" = "--kill9" ]; then
      kill -9 "${pid}" 2>/dev/null || true
    fi
    rm -f "${pid_file}"
  fi
}

# This folder (scripts/services/).
services_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

node_service() {
  local action="$1" name="$2" dir="${services_dir}/$3" marker="$4" run_dir="$5" log_name="$6" \
    health="$7" env_var="$8" port
  case "${action}" in
    start)
      npm_ci_once "${dir}" "${marker}"
      mkdir -p "${run_dir}"
      stop_service "${run_dir}/pid" 50 0.1 >/dev/null 2>&1 || true
      # free_port closes the port before node binds it, so another process can take
      # it in between (seen while a benchmark opened thousands of loopback ports): a
      # server that exits with EADDRINUSE is started again on a new port, 3 tries.
      local attempt rc
      for attempt in 1 2 3; do
        port="$(free_port)"
        start_background "${run_dir}/pid" "${run_dir}/${log_name}" node "${dir}/server.mjs" "${port}"
        rc=0
        wait_ready "${name}" "${run_dir}/pid" "${run_dir}/${log_name}" 100 0.1 all \
          http_ok "http://127.0.0.1:${port}/${health}" || rc=$?
        if [ "${rc}" = 0 ]; then
          echo "${env_var}=http://127.0.0.1:${port}"
          return 0
        fi
        if [ "${rc}" != 1 ] || ! grep -q EADDRINUSE "${run_dir}/${log_name}"; then
          return 1
        fi
        echo "${name}: port ${port} was taken (attempt ${attempt} of 3)" >&2
      done
      return 1
      ;;
    stop) stop_service "${run_dir}/pid" 50 0.1 ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
  esac
}
