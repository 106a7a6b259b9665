#!/usr/bin/env bash
# A real WebDAV server on loopback for the storage tests: WsgiDAV + cheroot from
# PyPI (pinned), installed into a cached venv, serving a temporary folder on
# 127.0.0.1 at a random free port, anonymous access, CORS allowed from any origin
# (wsgidav-cors.yaml: the browser tests reach it from a page on another port).
#
#   scripts/services/webdav.sh start STATE_DIR   # prints `export CLIENTFUL_WEBDAV_*=...` lines
#   scripts/services/webdav.sh stop STATE_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cmd="${1:?start|stop}"
state="${2:?state directory}"
venv="$HOME/.cache/clientful/venv-webdav"
wsgidav_version="4.4.0"
cheroot_version="11.1.2"
# shellcheck source=scripts/services/lib.sh
. "$here/lib.sh"

propfind_answers() {
  curl -fsS -o /dev/null -X PROPFIND -H "Depth: 0" "http://127.0.0.1:$1/" 2>/dev/null
}

stop_webdav() {
  stop_service "$state/webdav.pid" 40 0.25 --kill9
}

case "$cmd" in
start)
  mkdir -p "$state/webdav-root"
  if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('wsgidav') == '$wsgidav_version' and m.version('cheroot') == '$cheroot_version'" 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q "wsgidav==$wsgidav_version" "cheroot==$cheroot_version" >&2
  fi
  read -r port < <(python3 "$here/free-ports.py" 1)
  start_background "$state/webdav.pid" "$state/webdav.log" \
    "$venv/bin/wsgidav" --host=127.0.0.1 --port="$port" --root="$state/webdav-root" \
    --auth=anonymous --config="$here/wsgidav-cors.yaml" -q
  rc=0
  wait_ready "WsgiDAV" "$state/webdav.pid" "$state/webdav.log" 120 0.25 30 propfind_answers "$port" || rc=$?
  if [[ $rc -eq 0 ]]; then
    echo "export CLIENTFUL_WEBDAV_ENDPOINT=http://127.0.0.1:$port"
    exit 0
  fi
  # Not ready in time: stop it (a server that exited has nothing to stop).
  if [[ $rc -eq 2 ]]; then stop_webdav; fi
  exit 1
  ;;
stop) stop_webdav ;;
*) echo "usage: $0 start|stop STATE_DIR" >&2; exit 2 ;;
esac
