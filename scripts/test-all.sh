#!/usr/bin/env bash
# Runs every check of the repository: formatting, lints, unit/property/vector/fuzz-corpus
# tests, the broker integration tests (real broker processes, a real NATS server started
# here), the document simulator (1,000 random schedules) and editing-trace replays, the
# layering checks (scripts/check-layering.sh: the pure crates' wasm32 builds and their
# cargo trees), the fuzz targets' build, the JavaScript interop test
# (npm packages installed here), the browser tests (clientful-web in Node and headless
# Chromium, scripts/web/test.sh: the wasm toolchain and Debian's chromium installed here), the conformance suite with its kill matrix and the worked
# Python adapter (PyPI packages installed here into a venv), and the vector verifier. This is the README's test
# command and exactly what .ci/run calls. The storage suite runs against real S3
# (SeaweedFS) and WebDAV (WsgiDAV) servers that this script starts on loopback and
# always stops (scripts/services/).
set -euo pipefail
cd "$(dirname "$0")/.."

# Reuse one build cache outside the clone (CI runs in a fresh clone each time).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clientful/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# In CI (a fresh clone each time) give unchanged files back the times they had in the last run,
# so the warm cache rebuilds only what changed (scripts/source-mtimes.py says why it is safe there).
if [ "${CI:-}" = "true" ]; then
  python3 scripts/source-mtimes.py "$CARGO_TARGET_DIR/clientful-source-mtimes.json"
fi

# Each step prints how long the previous one took (CI budget: cold under 45 minutes, warm under 15).
step_started=""
step() {
  local now
  now=$(date +%s)
  if [ -n "$step_started" ]; then printf '(step took %ss)\n' $(( now - step_started )); fi
  step_started=$now
  printf '\n==> %s\n' "$*"
}
started=$(date +%s)
log=$(mktemp)
services=$(mktemp -d)
nats_dir=$(mktemp -d)
export CLIENTFUL_NATS_DIR="$nats_dir"
stop_services() {
  bash scripts/services/s3.sh stop "$services" || true
  bash scripts/services/webdav.sh stop "$services" || true
  bash scripts/services/nats.sh stop >/dev/null 2>&1 || true
  bash scripts/services/oidc.sh stop >/dev/null 2>&1 || true
  bash scripts/services/plc.sh stop >/dev/null 2>&1 || true
}
trap 'stop_services; rm -rf "$log" "$services" "$nats_dir"' EXIT

step "format (cargo fmt --check)"
cargo fmt --all -- --check

step "lints (cargo clippy -D warnings)"
# The CLI's `vectors` feature (the vector commands) is linted and tested too.
cargo clippy --workspace --all-targets --locked --features clientful-cli/vectors -- -D warnings

step "storage services: SeaweedFS (S3) and WsgiDAV (WebDAV) on loopback, random ports"
svc_started=$(date +%s)
s3_env=$(bash scripts/services/s3.sh start "$services")
eval "$s3_env"
webdav_env=$(bash scripts/services/webdav.sh start "$services")
eval "$webdav_env"
# The storage tests fail (never skip) if an endpoint is missing.
export CLIENTFUL_REQUIRE_SERVICES=1
echo "S3 at $CLIENTFUL_S3_ENDPOINT, WebDAV at $CLIENTFUL_WEBDAV_ENDPOINT, up in $(( $(date +%s) - svc_started ))s"

step "services: NATS server on loopback (scripts/services/nats.sh; broker fan-out tests)"
nats_env=$(bash scripts/services/nats.sh start)
export "${nats_env?}"
echo "$CLIENTFUL_NATS_URL"
# A real OpenID provider (npm oidc-provider) for the attestation tests (spec §14).
export CLIENTFUL_OIDC_DIR="$nats_dir/oidc"
oidc_env=$(bash scripts/services/oidc.sh start)
export "${oidc_env?}"
echo "$CLIENTFUL_OIDC_ISSUER"
# A real PLC directory (npm @did-plc/server, in-memory database) for the did:plc
# attestation test (spec §14.6, reference/clientful-cli/tests/attest_plc.rs).
export CLIENTFUL_PLC_DIR="$nats_dir/plc"
plc_env=$(bash scripts/services/plc.sh start)
export "${plc_env?}"
echo "$CLIENTFUL_PLC_URL"

step "tests: unit, property, vector, fuzz-corpus replay, simulator, editing traces, storage (4 backends, crash, 1 GiB file), CLI, broker"
cargo test --workspace --locked --features clientful-cli/vectors 2>&1 | tee "$log"
read -r test_passed test_failed < <(sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/p' "$log" \
  | awk '{p += $1; f += $2} END {print p + 0, f + 0}')

step "layering: pure crates build for wasm32-unknown-unknown; cargo tree keeps server deps out of clients, IO out of pure crates and test-utils out of production builds (scripts/check-layering.sh)"
bash scripts/check-layering.sh | tee "$log"
read -r lay_passed lay_failed < <(sed -nE 's/^layering: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$log" | tail -n 1)

step "fuzz targets build on stable"
cargo check --manifest-path fuzz/Cargo.toml --locked --bins

step "JavaScript interop: yjs and @automerge/automerge (npm) against the reference"
bash scripts/interop-js.sh 2>&1 | tee "$log"
read -r js_passed js_failed < <(sed -nE 's/^[#ℹ] (pass|fail) ([0-9]+)$/\1 \2/p' "$log" \
  | awk '$1 == "pass" {p = $2} $1 == "fail" {f = $2} END {print p + 0, f + 0}')

step "browser: clientful-web built for wasm32, run in Node and real headless Chromium (scripts/web/test.sh)"
bash scripts/web/test.sh 2>&1 | tee "$log"
read -r web_passed web_failed < <(sed -nE 's/^[#ℹ] (pass|fail) ([0-9]+)$/\1 \2/p' "$log" \
  | awk '$1 == "pass" {p = $2} $1 == "fail" {f = $2} END {print p + 0, f + 0}')
[ "$web_failed" -eq 0 ] && [ "$web_passed" -gt 0 ]
# The browser storage test was the last user of SeaweedFS and WsgiDAV.
stop_services

step "conformance suite against the reference over stdio"
# The in-process run and the in-process kill matrix are cargo tests (clientful-conformance
# tests/runner.rs: reference_in_process_passes_everything, every_saboteur_is_caught_in_process).
cargo build -q -p clientful-conformance --locked
conf_out=$(mktemp -d)
cargo run -q -p clientful-conformance --locked -- run \
  --impl-cmd "$CARGO_TARGET_DIR/debug/clientful-conformance serve-reference" --level strict \
  --out "$conf_out" | tee "$log" | tail -n 3
read -r conf_passed conf_failed < <(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2/p' "$log" | tail -n 1)
# The storage scenarios (the runner as storage and adversary, spec §12.12) ran over stdio and passed.
storage_passed=$(grep -c '"id":"scenario/storage/[^"]*".*"outcome":"pass"' "$conf_out/results.jsonl" || true)
# The broker scenarios (the runner as a broker's clients or a client's broker, spec §12.13).
broker_passed=$(grep -c '"id":"scenario/broker/[^"]*".*"outcome":"pass"' "$conf_out/results.jsonl" || true)
rm -rf "$conf_out"
echo "storage scenarios over stdio: ${storage_passed} passed"
[ "$storage_passed" -ge 15 ]
echo "broker scenarios over stdio: ${broker_passed} passed"
[ "$broker_passed" -ge 15 ]

step "conformance: the worked Python adapter (conformance/examples/python) over stdio"
venv="$HOME/.cache/clientful/venv-conformance"
if [ ! -x "$venv/bin/python3" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r conformance/examples/python/requirements.txt
"$CARGO_TARGET_DIR/debug/clientful-conformance" run \
  --impl-cmd "$venv/bin/python3 conformance/examples/python/adapter.py" --level strict | tee "$log" | tail -n 4
read -r py_passed py_failed < <(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2/p' "$log" | tail -n 1)

step "conformance: the wasm build (clientful-web) through the Node stdio adapter (packages/web/conformance), alone and mixed with the reference"
# packages/web/pkg/ and node_modules/ are the browser step's (scripts/web/test.sh).
"$CARGO_TARGET_DIR/debug/clientful-conformance" run \
  --impl-cmd "node packages/web/conformance/adapter.mjs" --level required | tee "$log" | tail -n 2
read -r wasm_passed wasm_failed < <(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2/p' "$log" | tail -n 1)
# replica/yjs, replica/automerge and replica/restart: 3 probes and 43 scenarios in this revision.
[ "$wasm_failed" -eq 0 ] && [ "$wasm_passed" -ge 40 ]
"$CARGO_TARGET_DIR/debug/clientful-conformance" run --impl reference \
  --impl-cmd "node packages/web/conformance/adapter.mjs" --level required | tail -n 1
# Randomized mode against the wasm build (schedules of its declared replica profiles).
"$CARGO_TARGET_DIR/debug/clientful-conformance" fuzz --cases 500 --time 60 \
  --impl-cmd "node packages/web/conformance/adapter.mjs" | tee "$log" | grep -v '^DISCARD' | tail -n 1
read -r wasm_fuzz_passed wasm_fuzz_failed < <(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) discarded$/\1 \2/p' "$log" | tail -n 1)
[ "$wasm_fuzz_failed" -eq 0 ] && [ "$wasm_fuzz_passed" -ge 100 ]

step "conformance randomized mode: >= 1000 generated schedules against the reference over stdio (clientful-conformance fuzz, bounded time)"
"$CARGO_TARGET_DIR/debug/clientful-conformance" fuzz --cases 1100 --time 120 --out "$conf_out/fuzz" \
  --impl-cmd "$CARGO_TARGET_DIR/debug/clientful-conformance serve-reference" | tee "$log" | grep -v '^DISCARD' | tail -n 3
read -r fuzz_passed fuzz_failed < <(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) discarded$/\1 \2/p' "$log" | tail -n 1)
[ "$fuzz_failed" -eq 0 ] && [ "$fuzz_passed" -ge 1000 ]

step "conformance kill matrix: every saboteur, over stdio, must be caught (one per core at a time)"
"$CARGO_TARGET_DIR/debug/clientful-conformance" saboteurs \
  --impl-cmd "$CARGO_TARGET_DIR/debug/clientful-conformance serve-reference" | tee "$log" | tail -n 1
read -r sab_caught sab_missed < <(sed -nE 's/^([0-9]+) caught, ([0-9]+) not caught$/\1 \2/p' "$log" | tail -n 1)

step "test vectors verify against the reference (clientful vectors verify test-vectors/)"
cargo run -q -p clientful-cli --locked --features vectors -- vectors verify test-vectors/ | tee "$log"
read -r vec_passed vec_failed < <(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$log" | tail -n 1)

step "the README's run command (clientful demo) and the SDK examples"
cargo run -q -p clientful-cli --locked -- demo | tee "$log" | tail -n 2
grep -q "^demo complete" "$log"
cargo run -q -p clientful --locked --example quickstart
cargo run -q -p clientful --locked --example invite_and_subscribe

step "summary"
echo "all checks passed in $(( $(date +%s) - started ))s: ${test_passed} cargo tests, ${js_passed} JS interop tests, ${web_passed} browser tests, ${conf_passed} conformance tests over stdio (${storage_passed} storage scenarios, ${broker_passed} broker scenarios), ${py_passed} by the Python example adapter, ${wasm_passed} by the wasm build through the Node adapter, ${fuzz_passed} generated schedules, ${sab_caught} saboteurs caught, ${vec_passed} vector cases, ${lay_passed} layering checks"
echo "total: $(( test_passed + js_passed + web_passed + conf_passed + py_passed + wasm_passed + fuzz_passed + sab_caught + vec_passed + lay_passed )) passed, $(( test_failed + js_failed + web_failed + conf_failed + py_failed + wasm_failed + fuzz_failed + sab_missed + vec_failed + lay_failed )) failed"
