#!/usr/bin/env bash
# Checks the crate layering (docs/architecture.md) as facts the compiler and cargo
# can see, not as a convention:
#   1. every pure crate builds for wasm32-unknown-unknown (no sockets, files,
#      clocks or async runtime can sneak in without breaking this build);
#   2. no pure crate depends, on any platform, on tokio, mio, opendal or redb;
#   2b. the shells that run in the browser (WASM_SHELLS) build for
#      wasm32-unknown-unknown too: clientful-storage (OpenDAL over fetch, redb over
#      OPFS), clientful-net (its room driver is shared, its carriers and timers
#      are cfg'd per target) and the SDK, clientful (its policies are shared, its
#      home is a DeviceDir the shell supplies); they are not pure and may depend on
#      a runtime;
#   3. the native client (clientful-net) does not compile the broker server: none of
#      axum, async-nats, rcgen, tracing-subscriber in its dependency tree;
#   4. the membership follow-up policy has one driver: no crate but clientful-core
#      (which defines it) and clientful-session (the session core that the SDK, the
#      conformance reference adapter and the simulator drive) calls
#      `SpaceReplica::follow_up` or builds a `FollowUpPolicy` (a grep over the
#      tracked Rust sources, comments stripped);
#   5. the production crates (the SDK, the CLI, the app layer and the shells)
#      enable no crate's `test-utils` feature (fuzz entry points, testkit,
#      seal_unchecked) in a normal build;
#   6. the Yjs-only browser module with the SDK (clientful-web `--no-default-features --features
#      yjs,storage,session`) builds for wasm32-unknown-unknown and has no automerge crate and
#      no `automerge` feature of any crate in its tree (`cargo tree -e features`):
#      a Yjs-only app ships no Automerge (scripts/web/sizes.sh checks the module).
# The wasm32 target is installed if missing (never skipped). Prints one line per
# check and `layering: N passed, M failed`; exits non-zero if any check failed.
# Called by scripts/test-all.sh; runs on its own too.
set -euo pipefail
cd "$(dirname "$0")/.."

# The pure crates: protocol logic only, built for wasm32-unknown-unknown.
PURE_CRATES=(
  clientful-proto
  clientful-core
  clientful-doc
  clientful-broker-proto
  clientful-storage-layout
  clientful-session
  clientful-attest
)
# What no pure crate may depend on.
PURE_FORBIDDEN=(tokio mio opendal redb)
# Shells (not pure: they do IO) that must also build for wasm32-unknown-unknown:
# the browser runs the same code (docs/architecture.md); their native-only parts sit
# behind cfg(not(target_arch = "wasm32")).
WASM_SHELLS=(clientful-storage clientful-net clientful)
# The native client crates and what they may not depend on (the broker server's
# dependencies).
CLIENT_CRATES=(clientful-net)
CLIENT_FORBIDDEN=(axum async-nats rcgen tracing-subscriber)
# Production crates whose normal build (default features, normal dependencies)
# must not enable any crate's `test-utils` feature.
PRODUCTION_CRATES=(clientful clientful-cli clientful-app clientful-net clientful-storage clientful-session clientful-broker)

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clientful/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "installing the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

passed=0
failed=0
check() {
  local name=$1
  shift
  if "$@"; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    failed=$((failed + 1))
  fi
}

# `free_of CRATE DEP...`: none of DEP in CRATE's normal dependencies, for every
# target platform; names each offender with the path that pulls it in.
free_of() {
  local crate=$1
  shift
  local tree found=0
  tree=$(cargo tree --locked -e normal --target all -p "$crate" --prefix none --format '{p}') || return 1
  for dep in "$@"; do
    if grep -qE "^${dep} v" <<<"$tree"; then
      echo "  $crate depends on $dep:"
      cargo tree --locked -e normal --target all -p "$crate" -i "$dep" 2>&1 | sed 's/^/    /' | head -n 20
      found=1
    fi
  done
  return "$found"
}

# `no_test_utils CRATE`: no package in CRATE's normal build (default features,
# normal dependencies, every platform) has its `test-utils` feature enabled.
no_test_utils() {
  local crate=$1 tree offenders
  tree=$(cargo tree --locked -e normal,features --target all -p "$crate" --prefix none --format '{p} {f}') || return 1
  # `-e features` prints a `NAME feature "F"` node for each enabled feature.
  offenders=$(grep -E '^[A-Za-z0-9_-]+ feature "test-utils"' <<<"$tree" | sort -u || true)
  if [ -n "$offenders" ]; then
    echo "  $crate enables test-utils:"
    sed 's/^/    /' <<<"$offenders"
    return 1
  fi
}

for crate in "${PURE_CRATES[@]}"; do
  check "$crate builds for wasm32-unknown-unknown" \
    cargo build --locked -q -p "$crate" --target wasm32-unknown-unknown
  check "$crate has none of ${PURE_FORBIDDEN[*]}" free_of "$crate" "${PURE_FORBIDDEN[@]}"
done
for crate in "${WASM_SHELLS[@]}"; do
  check "$crate (a browser shell) builds for wasm32-unknown-unknown" \
    cargo build --locked -q -p "$crate" --lib --target wasm32-unknown-unknown
done
for crate in "${CLIENT_CRATES[@]}"; do
  check "$crate has none of ${CLIENT_FORBIDDEN[*]}" free_of "$crate" "${CLIENT_FORBIDDEN[@]}"
done

# `policy_callers`: the Rust sources outside clientful-core and clientful-session
# that name `FollowUpPolicy` or call a `follow_up` with more than one argument
# (the replica's `follow_up(rng, policy)`; the session's takes one).
policy_callers() {
  local f found=0
  while IFS= read -r f; do
    case "$f" in
      reference/clientful-core/* | reference/clientful-session/*) continue ;;
    esac
    if perl -0777 -ne 's{//[^\n]*}{}g;
        exit(!(/\bFollowUpPolicy\b/ || /\bSpaceReplica::follow_up\b/
          || /\.follow_up\s*\((?:[^(),]|\((?:[^()]|\([^()]*\))*\))*,/))' "$f"; then
      echo "  $f runs the follow-up policy itself (drive clientful_session::Session)"
      found=1
    fi
  done < <(git ls-files -- '*.rs')
  return "$found"
}
check "only clientful-session drives the membership follow-up policy" policy_callers
for crate in "${PRODUCTION_CRATES[@]}"; do
  check "$crate enables no test-utils feature" no_test_utils "$crate"
done

# `yjs_only_free_of_automerge`: the Yjs-only browser module's normal dependency tree
# for wasm32, with features, holds neither the automerge crate nor any crate's
# `automerge` feature.
YJS_ONLY=(-p clientful-web --no-default-features --features yjs,storage,session)
yjs_only_free_of_automerge() {
  local tree offenders
  tree=$(cargo tree --locked -e normal,features --target wasm32-unknown-unknown "${YJS_ONLY[@]}" \
    --prefix none --format '{p} {f}') || return 1
  offenders=$(grep -E '^automerge v|feature "automerge"' <<<"$tree" | sort -u || true)
  if [ -n "$offenders" ]; then
    echo "  the Yjs-only clientful-web build pulls in Automerge:"
    sed 's/^/    /' <<<"$offenders"
    return 1
  fi
}
check "the Yjs-only clientful-web builds for wasm32-unknown-unknown" \
  cargo build --locked -q "${YJS_ONLY[@]}" --lib --target wasm32-unknown-unknown
check "the Yjs-only clientful-web has no automerge (cargo tree -e features)" yjs_only_free_of_automerge

echo "layering: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
