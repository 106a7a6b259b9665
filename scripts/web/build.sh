#!/usr/bin/env bash
# Builds reference/clientful-web for the browser and writes the module and its JS glue and
# TypeScript types (wasm-bindgen --target web) to packages/web/pkg/ (not committed).
#
#   scripts/web/build.sh [--release] [--features "yjs"] [--out DIR]
#
# Without --release it uses the dev profile, the one the layering check's wasm32 builds
# already use, so the test command compiles the dependencies once. --release uses the
# `wasm-release` profile (opt-level z, LTO, one codegen unit, stripped): what an app ships
# and what the bundle sizes in docs/performance.md are measured on. --features replaces
# the default features (yjs and automerge): `--features yjs` is a Yjs-only build.
set -euo pipefail
cd "$(dirname "$0")/../.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clientful/target}"
profile=dev
dir=debug
features=""
out=packages/web/pkg
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=wasm-release; dir=wasm-release ;;
    --features) features="$2"; shift ;;
    --out) out="$2"; shift ;;
    *) echo "usage: $0 [--release] [--features LIST] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done

bindgen=$(bash scripts/web/toolchain.sh | tail -n 1)
args=(--locked -q -p clientful-web --target wasm32-unknown-unknown --profile "$profile")
if [ -n "$features" ]; then
  args+=(--no-default-features --features "$features")
fi
cargo build "${args[@]}"
mkdir -p "$out"
"$bindgen" --target web --out-dir "$out" --out-name clientful_web \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/$dir/clientful_web.wasm"
echo "built $out/clientful_web_bg.wasm ($(stat -c %s "$out/clientful_web_bg.wasm") bytes, profile $profile)"
