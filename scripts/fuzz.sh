#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ (or the ones named) for a given time each,
# one after the other, and prints one result line per target:
#
#   target=<name> seconds=<s> execs=<n> execs_per_sec=<n> corpus_added=<n> findings=<n> mode=<mode>
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Toolchain: nightly with AddressSanitizer when a nightly toolchain is installed,
# otherwise stable with `--sanitizer none` (coverage-guided, panics and invariant
# checks only; see fuzz/README.md). Force one with FUZZ_TOOLCHAIN=nightly|stable.
# cargo-fuzz is installed (`cargo install cargo-fuzz --locked`) if missing.
#
# New coverage goes to a scratch corpus (FUZZ_WORK, default a temporary folder), so the
# committed corpora under fuzz/corpus/ stay small; crashes are written to
# fuzz/artifacts/<target>/ (reproduce with `cargo fuzz run <target> <file>`, then
# copy the fixed input into fuzz/corpus/<target>/ named by its SHA-256).
# Build outputs go to FUZZ_TARGET_DIR (default $HOME/.cache/clientful/fuzz-target).
#
# Exit status: 0 when no target found anything, 1 otherwise. This is a separate
# command, not part of scripts/test-all.sh (which replays the corpora on stable).
set -euo pipefail

secs="${1:-60}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found: installing it (cargo install cargo-fuzz --locked)" >&2
    cargo install cargo-fuzz --locked
fi

toolchain="${FUZZ_TOOLCHAIN:-}"
if [ -z "$toolchain" ]; then
    if rustc +nightly --version >/dev/null 2>&1; then toolchain=nightly; else toolchain=stable; fi
fi
case "$toolchain" in
    nightly) fuzz=(cargo +nightly fuzz); build_flags=(); mode="nightly+asan" ;;
    stable) fuzz=(cargo fuzz); build_flags=(--sanitizer none); mode="stable,no-sanitizer" ;;
    *) echo "FUZZ_TOOLCHAIN must be nightly or stable" >&2; exit 2 ;;
esac

# A failed allocation returns null, as the production allocator's does, instead of
# aborting the run, and a single allocation above 2 GiB fails, as it does in a
# process with a memory limit: Rust's fallible `try_reserve` (which yrs uses for
# the block counts a Yjs update claims) then fails cleanly, while an infallible
# allocation that fails still aborts and is reported. libFuzzer's own per-malloc
# limit is raised to match; the RSS limit (-rss_limit_mb) still catches real
# blow-ups.
export ASAN_OPTIONS="${ASAN_OPTIONS:-allocator_may_return_null=1:max_allocation_size_mb=2048}"

target_dir="${FUZZ_TARGET_DIR:-$HOME/.cache/clientful/fuzz-target}"
work="${FUZZ_WORK:-$(mktemp -d)}"
mkdir -p "$work"

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${fuzz[@]}" list)
fi

echo "fuzzing ${#targets[@]} target(s) for ${secs} s each ($mode); logs in $work" >&2
"${fuzz[@]}" build "${build_flags[@]}" --target-dir "$target_dir"

failed=0
for t in "${targets[@]}"; do
    scratch="$work/corpus-$t"
    log="$work/$t.log"
    mkdir -p "$scratch" "artifacts/$t"
    before_art=$(find "artifacts/$t" -type f | wc -l)
    start=$(date +%s)
    set +e
    # The scratch corpus comes first: libFuzzer writes what it finds there, and only
    # reads the committed corpus.
    "${fuzz[@]}" run "${build_flags[@]}" --target-dir "$target_dir" "$t" "$scratch" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1048576 -print_final_stats=1 \
        >"$log" 2>&1
    rc=$?
    set -e
    took=$(( $(date +%s) - start ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    added=$(find "$scratch" -type f | wc -l)
    after_art=$(find "artifacts/$t" -type f | wc -l)
    findings=$(( after_art - before_art ))
    if [ "$rc" -ne 0 ] && [ "$findings" -eq 0 ]; then findings=1; fi
    echo "target=$t seconds=$took execs=${execs:-?} execs_per_sec=${rate:-?} corpus_added=$added findings=$findings mode=$mode"
    if [ "$findings" -gt 0 ]; then
        failed=1
        echo "  $t: libFuzzer exit $rc; see $log and fuzz/artifacts/$t/" >&2
        grep -m5 -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" >&2 || true
    fi
done
exit "$failed"
