#!/usr/bin/env bash
# Headless Chromium for the browser tests: Debian's `chromium` package, installed with apt
# if missing (never skipped). playwright-core (packages/web, pinned by its lock file)
# drives it through `executablePath`; no browser is downloaded from elsewhere.
# Prints the executable's path on its last line.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing Debian's chromium package" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >&2
fi
command -v chromium
