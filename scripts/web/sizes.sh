#!/usr/bin/env bash
# Bundle sizes of the browser module: builds reference/clientful-web with the
# `wasm-release` profile (scripts/web/build.sh --release) twice, the full module (Yjs and
# Automerge, the default features) and the Yjs-only one (--features yjs), each into a
# temporary folder, and measures the .wasm and its JS glue raw and gzipped (gzip -9).
# Prints a Markdown table; with --write it also replaces the table between the
# `bundle-sizes` markers in docs/performance.md ("Browser bundle").
#
#   scripts/web/sizes.sh [--write]
set -euo pipefail
cd "$(dirname "$0")/../.."

write=0
[ "${1:-}" = "--write" ] && write=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

gz() { gzip -9 -c "$1" | wc -c; }
row() {
  local name=$1 dir=$2
  local wasm="$dir/clientful_web_bg.wasm" js="$dir/clientful_web.js"
  local w wg j jg
  w=$(stat -c %s "$wasm"); wg=$(gz "$wasm")
  j=$(stat -c %s "$js"); jg=$(gz "$js")
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$w" "$wg" "$j" "$jg" \
    "$((w + j))" "$((wg + jg))"
}

bash scripts/web/build.sh --release --out "$tmp/full" >&2
bash scripts/web/build.sh --release --features yjs --out "$tmp/yjs" >&2

table=$(
  echo "| module | .wasm bytes | .wasm gzip | JS glue bytes | JS glue gzip | total bytes | total gzip |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  row "Yjs only (\`--features yjs\`)" "$tmp/yjs"
  row "Yjs + Automerge (default)" "$tmp/full"
)
stamp="Measured by \`scripts/web/sizes.sh\` on $(date -u +%Y-%m-%d), Rust $(rustc --version | cut -d' ' -f2), profile \`wasm-release\` (opt-level z, LTO, one codegen unit, stripped), no wasm-opt; gzip -9."
echo "$table"
echo "$stamp"

if [ "$write" = 1 ]; then
  doc=docs/performance.md
  grep -q '<!-- bundle-sizes:begin -->' "$doc" || { echo "no bundle-sizes markers in $doc" >&2; exit 1; }
  python3 - "$doc" "$table" "$stamp" <<'EOF'
import re, sys
path, table, stamp = sys.argv[1:]
text = open(path, encoding="utf-8").read()
new = "<!-- bundle-sizes:begin -->\n" + table + "\n\n" + stamp + "\n<!-- bundle-sizes:end -->"
text = re.sub(r"<!-- bundle-sizes:begin -->.*?<!-- bundle-sizes:end -->", lambda _: new, text, flags=re.S)
open(path, "w", encoding="utf-8").write(text)
EOF
  echo "wrote the table into $doc" >&2
fi
