#!/usr/bin/env bash
# The browser toolchain, installed if missing (never skipped): the wasm32-unknown-unknown
# target and wasm-bindgen-cli 0.2.129, the exact version the `wasm-bindgen` crate of
# reference/clientful-web is pinned to (crate and CLI must match). The CLI is built from
# the crates registry with its own lock file (`--locked`) as a debug build: about 2 CPU
# minutes instead of 11 for a release build, and it runs for a second per module.
# Prints the path of the wasm-bindgen binary on its last line.
set -euo pipefail

version=0.2.129
root="${CLIENTFUL_TOOLS:-$HOME/.cache/clientful/tools}"
bin="$root/bin/wasm-bindgen"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "installing the wasm32-unknown-unknown target" >&2
  rustup target add wasm32-unknown-unknown >&2
fi
if [ ! -x "$bin" ] || [ "$("$bin" --version 2>/dev/null)" != "wasm-bindgen $version" ]; then
  echo "installing wasm-bindgen-cli $version into $root (debug build, about 2 CPU minutes)" >&2
  # Its own target directory: the CLI's dependencies never mix with the workspace's cache.
  CARGO_TARGET_DIR="$root/build" cargo install --locked --debug --force \
    --root "$root" wasm-bindgen-cli --version "$version" >&2
  rm -rf "$root/build"
fi
echo "$bin"
