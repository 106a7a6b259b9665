#!/usr/bin/env bash
# Bundle sizes of the browser module: builds reference/clientful-web with the
# `wasm-release` profile (scripts/web/build.sh --release) six times, Yjs only and Yjs +
# Automerge, each without and with the storage exports and with the SDK's Device/Space
# (feature `session`; the default is all of them), each into a temporary folder, and measures the .wasm and its
# JS glue raw and gzipped (gzip -9). Prints a Markdown table; with --write it also
# replaces the table between the `bundle-sizes` markers in docs/performance.md
# ("Browser bundle").
#
# The absence check: a Yjs-only module must not contain Automerge. The release module
# is stripped (no name section), but the panic locations rustc keeps in the data
# section name each crate's source path (`automerge-0.12.0/src/...`); the check counts
# those in every module and fails unless each Yjs+Automerge module has some and each
# Yjs-only module has none (so it cannot pass by looking for the wrong thing).
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

variants=(yjs yjs,storage yjs,storage,session yjs,automerge yjs,automerge,storage yjs,automerge,storage,session)
for v in "${variants[@]}"; do
  bash scripts/web/build.sh --release --features "$v" --out "$tmp/$v" >&2
done

# Source paths of the automerge crate in a module (panic locations in its data).
am_refs() { { grep -a -o 'automerge-[0-9][0-9.]*/src/' "$1/clientful_web_bg.wasm" || true; } | wc -l; }
absent=ok
for v in "${variants[@]}"; do
  n=$(am_refs "$tmp/$v")
  case "$v" in
    *automerge*) [ "$n" -gt 0 ] || { echo "absence check: $v shows no automerge source path (check broken?)" >&2; absent=fail; } ;;
    *) [ "$n" -eq 0 ] || { echo "absence check: the Yjs-only module $v contains automerge ($n references)" >&2; absent=fail; } ;;
  esac
  echo "automerge source paths in $v: $n" >&2
done
[ "$absent" = ok ] || exit 1

table=$(
  echo "| module | .wasm bytes | .wasm gzip | JS glue bytes | JS glue gzip | total bytes | total gzip |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  row "Yjs only (\`--features yjs\`)" "$tmp/yjs"
  row "Yjs only + storage (\`--features yjs,storage\`)" "$tmp/yjs,storage"
  row "Yjs only + storage + the SDK session (\`--features yjs,storage,session\`)" "$tmp/yjs,storage,session"
  row "Yjs + Automerge (\`--features yjs,automerge\`)" "$tmp/yjs,automerge"
  row "Yjs + Automerge + storage (\`--features yjs,automerge,storage\`)" "$tmp/yjs,automerge,storage"
  row "Yjs + Automerge + storage + the SDK session (default)" "$tmp/yjs,automerge,storage,session"
)
stamp="Absence check passed: no automerge source path in the Yjs-only modules, some in each Automerge one. Measured by \`scripts/web/sizes.sh\` on $(date -u +%Y-%m-%d), Rust $(rustc --version | cut -d' ' -f2), profile \`wasm-release\` (opt-level z, LTO, one codegen unit, stripped), no wasm-opt; gzip -9."
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
