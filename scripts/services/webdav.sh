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

case "$cmd" in
start)
  mkdir -p "$state/webdav-root"
  if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('wsgidav') == '$wsgidav_version' and m.version('cheroot') == '$cheroot_version'" 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q "wsgidav==$wsgidav_version" "cheroot==$cheroot_version" >&2
  fi
  read -r port < <(python3 "$here/free-ports.py" 1)
  "$venv/bin/wsgidav" --host=127.0.0.1 --port="$port" --root="$state/webdav-root" \
    --auth=anonymous --config="$here/wsgidav-cors.yaml" -q >"$state/webdav.log" 2>&1 &
  echo $! >"$state/webdav.pid"
  for _ in $(seq 1 120); do
    if curl -fsS -o /dev/null -X PROPFIND -H "Depth: 0" "http://127.0.0.1:$port/" 2>/dev/null; then
      echo "export CLIENTFUL_WEBDAV_ENDPOINT=http://127.0.0.1:$port"
      exit 0
    fi
    if ! kill -0 "$(cat "$state/webdav.pid")" 2>/dev/null; then
      echo "WsgiDAV exited; log:" >&2; tail -n 30 "$state/webdav.log" >&2; exit 1
    fi
    sleep 0.25
  done
  echo "WsgiDAV did not become ready; log:" >&2; tail -n 30 "$state/webdav.log" >&2
  "$here/webdav.sh" stop "$state"; exit 1
  ;;
stop)
  if [[ -f "$state/webdav.pid" ]]; then
    pid="$(cat "$state/webdav.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$state/webdav.pid"
  fi
  ;;
*) echo "usage: $0 start|stop STATE_DIR" >&2; exit 2 ;;
esac
