// The browser figure of clientful-bench (`--section browser`), run in Node by the bench:
// the editing trace automerge-paper (josephg/editing-traces, CC BY 4.0; see
// test-data/editing-traces/ATTRIBUTION.md) typed into a JS `Y.Doc`, sent to a second
// `Y.Doc` in batches, two ways, alternated over rounds (medians):
//
// - baseline (JS Yjs): at each batch boundary the sender encodes its update since the last
//   message (`Y.encodeStateAsUpdate(doc, stateVector)`) and the receiver applies it;
// - candidate (Clientful in wasm, the path of a Yjs provider): the sender's `Y.Doc` updates
//   of a batch are merged (`Y.mergeUpdates`) and go to its DocReplica
//   (`applyLocalYjsUpdate`: checked and applied), the batch is sealed and signed into one
//   envelope (`commit`), the receiving DocReplica opens, checks and applies it (`receive`)
//   and its raw updates are applied to the receiving `Y.Doc`. `--local per-edit` hands
//   every update to the replica as it happens instead.
//
// Both receivers must end with the sender's text. Prints one JSON line:
// {baseline, candidate} in seconds (medians), rounds, edits, messages, envelope and update bytes.
//
//   node packages/web/bench/pipeline.mjs --pkg DIR --trace FILE --edits N --batch B --rounds R [--local per-edit]
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { performance } from "node:perf_hooks";
import * as Y from "yjs";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const pkg = args.pkg;
const edits = Number(args.edits ?? 10000);
const batch = Number(args.batch ?? 64);
const rounds = Number(args.rounds ?? 3);
const perEdit = args.local === "per-edit";

const wasm = await import(join(pkg, "clientful_web.js"));
wasm.initSync({ module: readFileSync(join(pkg, "clientful_web_bg.wasm")) });

const trace = JSON.parse(gunzipSync(readFileSync(args.trace)).toString("utf8"));
const patches = trace.txns.flatMap((t) => t.patches).slice(0, edits);
const boundary = (i) => (i + 1) % batch === 0 || i + 1 === patches.length;

function type(text, p) {
  if (p[1] > 0) text.delete(p[0], p[1]);
  if (p[2]) text.insert(p[0], p[2]);
}

function baseline() {
  const a = new Y.Doc();
  const b = new Y.Doc();
  const ta = a.getText("text");
  let sv = Y.encodeStateVector(a);
  let bytes = 0;
  let messages = 0;
  patches.forEach((p, i) => {
    type(ta, p);
    if (boundary(i)) {
      const update = Y.encodeStateAsUpdate(a, sv);
      sv = Y.encodeStateVector(a);
      bytes += update.length;
      messages += 1;
      Y.applyUpdate(b, update);
    }
  });
  if (b.getText("text").toString() !== ta.toString()) throw new Error("JS Yjs receiver diverged");
  return { bytes, messages };
}

const fill = (v) => new Uint8Array(32).fill(v);
const world = { crdt: "yjs", spaceId: fill(1), docId: fill(2), epochId: fill(3), epochSecret: fill(4) };
const keyOf = (seed) => {
  const r = wasm.DocReplica.create({ ...world, signers: [], deviceSeed: seed, rngSeed: fill(0) });
  const k = r.deviceKey();
  r.free();
  return k;
};
const signers = [keyOf(fill(10)), keyOf(fill(11))];

function candidate() {
  const ra = wasm.DocReplica.create({ ...world, signers, deviceSeed: fill(10), rngSeed: fill(20) });
  const rb = wasm.DocReplica.create({ ...world, signers, deviceSeed: fill(11), rngSeed: fill(21) });
  const a = new Y.Doc();
  a.clientID = ra.yjsClientId();
  const b = new Y.Doc();
  b.clientID = rb.yjsClientId();
  const remote = Symbol("clientful");
  // The provider keeps the local updates of a debounce window and hands them to the
  // replica merged, once per envelope (--local per-edit: one call per update instead).
  let pending = [];
  a.on("update", (u, origin) => {
    if (origin === remote) return;
    if (perEdit) ra.applyLocalYjsUpdate(u);
    else pending.push(u);
  });
  const ta = a.getText("text");
  let bytes = 0;
  let messages = 0;
  patches.forEach((p, i) => {
    type(ta, p);
    if (boundary(i)) {
      if (pending.length) {
        ra.applyLocalYjsUpdate(pending.length === 1 ? pending[0] : Y.mergeUpdates(pending));
        pending = [];
      }
      ra.commit();
      for (const { envelope } of ra.drainOutbox()) {
        bytes += envelope.length;
        messages += 1;
        const r = rb.receive(envelope);
        if (r.disposition !== "applied") throw new Error(`receive: ${r.disposition} ${r.reason ?? ""}`);
        for (const u of r.updates) Y.applyUpdate(b, u, remote);
      }
    }
  });
  const text = b.getText("text").toString();
  if (text !== ta.toString() || JSON.parse(rb.materialize()).text !== text) {
    throw new Error("Clientful receiver diverged");
  }
  ra.free();
  rb.free();
  return { bytes, messages };
}

const median = (xs) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const time = (f) => {
  const t = performance.now();
  const moved = f();
  return [(performance.now() - t) / 1000, moved];
};

const tb = [];
const tc = [];
let mb;
let mc;
for (let r = 0; r < rounds; r++) {
  let t;
  [t, mb] = time(baseline);
  tb.push(t);
  [t, mc] = time(candidate);
  tc.push(t);
}
process.stdout.write(
  `${JSON.stringify({
    baseline: median(tb),
    candidate: median(tc),
    rounds,
    edits: patches.length,
    batch,
    messages: mc.messages,
    envelope_bytes: mc.bytes,
    update_bytes: mb.bytes,
    local: perEdit ? "per-edit" : "merged per batch",
    node: process.version,
  })}\n`,
);
