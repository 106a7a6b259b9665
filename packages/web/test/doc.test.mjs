// Document replicas of the wasm module (reference/clientful-web/src/doc.rs) in Node and in
// headless Chromium: replicas converge, tampered and foreign input gets its error class,
// and raw updates of JS documents (yjs, @automerge/automerge) travel through envelopes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import * as Y from "yjs";
import * as Automerge from "@automerge/automerge";
import { launchChromium, packageRoot, serveStatic, watchErrors } from "./harness.mjs";

const mod = await import(join(packageRoot, "pkg/clientful_web.js"));
mod.initSync({ module: await readFile(join(packageRoot, "pkg/clientful_web_bg.wasm")) });
const { DocReplica } = mod;

const fill = (b) => new Uint8Array(32).fill(b);
const hex = (b) => Buffer.from(b).toString("hex");
// Device keys are Ed25519 public keys of the seeds; a replica reports its own.
const deviceKeyOf = (seed) =>
  DocReplica.create({ ...world("yjs", []), deviceSeed: seed, rngSeed: fill(0) }).deviceKey();

function world(crdt, signers) {
  return { crdt, spaceId: fill(1), docId: fill(2), epochId: fill(3), epochSecret: fill(4), signers };
}

/** Two replicas (devices 0 and 1, both signers) of one document. */
function pair(crdt) {
  const seeds = [fill(10), fill(11)];
  const signers = seeds.map(deviceKeyOf);
  return seeds.map((deviceSeed, i) => DocReplica.create({ ...world(crdt, signers), deviceSeed, rngSeed: fill(20 + i) }));
}

/** Delivers every outbox envelope of `from` to `to`; returns the receive results. */
function ship(from, to) {
  return from.drainOutbox().map(({ envelope }) => to.receive(envelope));
}

function assertConverged(a, b) {
  assert.equal(a.materialize(), b.materialize());
  assert.equal(hex(a.stateDigest()), hex(b.stateDigest()));
  assert.equal(hex(a.historyDigest()), hex(b.historyDigest()));
}

for (const crdt of ["yjs", "automerge"]) {
  test(`two ${crdt} replicas converge in Node, and a restore keeps the state`, () => {
    const [a, b] = pair(crdt);
    a.insertText(0, "héllo 👋");
    a.setValue("title", "notes");
    assert.equal(a.commit().length, 32);
    const first = ship(a, b);
    assert.deepEqual(first.map((r) => r.disposition), ["applied"]);
    assert.equal(first[0].updates.length > 0, true);
    // Concurrent edits on both sides, then envelopes both ways.
    a.insertText(0, ">");
    a.commit();
    b.insertText(8, "world");
    b.commit();
    const toB = ship(a, b);
    const toA = ship(b, a);
    assert.deepEqual(toB.map((r) => r.disposition), ["applied"]);
    assert.deepEqual(toA.map((r) => r.disposition), ["applied"]);
    assertConverged(a, b);
    const doc = JSON.parse(a.materialize());
    assert.equal(crdt === "yjs" ? doc.data.title : doc.title, "notes");
    assert.equal(doc.text, ">héllo 👋world");
    // The same envelope again is a duplicate.
    const again = b.persistedEnvelopes()[0];
    assert.equal(b.receive(again).disposition, "duplicate");
    // A restart from the persisted envelopes has the same digests and keeps editing.
    const restored = DocReplica.restore(
      { ...world(crdt, [a.deviceKey(), b.deviceKey()]), deviceSeed: fill(10), rngSeed: fill(99) },
      a.persistedEnvelopes(),
    );
    assertConverged(a, restored);
    restored.deleteText(0, 1);
    restored.commit();
    assert.deepEqual(ship(restored, b).map((r) => r.disposition), ["applied"]);
  });
}

test("a tampered envelope, garbage and bad arguments get their error classes", () => {
  const [a, b] = pair("yjs");
  a.insertText(0, "secret");
  a.commit();
  const [{ envelope }] = a.drainOutbox();
  const tampered = Uint8Array.from(envelope);
  tampered[tampered.length - 1] ^= 1;
  const r = b.receive(tampered);
  assert.equal(r.disposition, "rejected");
  assert.equal(r.errorClass, "BAD_SIGNATURE");
  assert.equal(b.receive(new Uint8Array([1, 2, 3])).errorClass, "MALFORMED");
  assert.equal(b.receive(envelope).disposition, "applied");
  assert.equal(JSON.parse(b.materialize()).text, "secret");

  // An envelope of another space does not open here.
  const [other] = pair("yjs").map((x) => x);
  const stranger = DocReplica.create({ ...world("yjs", [other.deviceKey()]), spaceId: fill(9), deviceSeed: fill(10), rngSeed: fill(1) });
  stranger.insertText(0, "x");
  stranger.commit();
  const wrong = b.receive(stranger.drainOutbox()[0].envelope);
  assert.equal(wrong.disposition, "rejected");
  assert.match(wrong.errorClass, /^[A-Z_]+$/);

  const err = (f) => {
    try {
      f();
    } catch (e) {
      return e;
    }
    assert.fail("no error");
  };
  const bad = err(() => DocReplica.create({ ...world("yjs", []), deviceSeed: new Uint8Array(3), rngSeed: fill(0) }));
  assert.equal(bad.name, "ClientfulError");
  assert.equal(bad.class, "INVALID_ARGUMENT");
  assert.equal(err(() => DocReplica.create({ crdt: "yjs" })).class, "INVALID_ARGUMENT");
  assert.equal(err(() => a.insertText(1000, "x")).class, "INVALID_ARGUMENT");
  assert.equal(err(() => a.automergeActor()).class, "UNSUPPORTED");

  // A JS Y.Doc update under a client id that is not this device's is refused before it
  // becomes an envelope (DOC-3), and so is garbage.
  const foreign = new Y.Doc();
  foreign.clientID = b.yjsClientId();
  foreign.getText("text").insert(0, "not mine");
  assert.equal(err(() => a.applyLocalYjsUpdate(Y.encodeStateAsUpdate(foreign))).class, "INVALID_OPERATION");
  assert.equal(err(() => a.applyLocalYjsUpdate(new Uint8Array([200, 1, 2]))).class, "MALFORMED");
  assert.equal(a.commit(), undefined);
});

test("mutated Yjs updates from JS are refused with a class, never trap the instance", () => {
  // A panic traps a wasm instance (no catch_unwind on wasm32): input must be refused first.
  const [a] = pair("yjs");
  const d = new Y.Doc();
  d.clientID = a.yjsClientId();
  const updates = [];
  d.on("update", (u) => updates.push(u));
  for (let i = 0; i < 30; i++) d.getText("text").insert(i % 5, `xy${i}`);
  d.getMap("data").set("k", "v");
  d.getText("text").delete(3, 4);
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const classes = new Set();
  for (let i = 0; i < 3000; i++) {
    const m = Uint8Array.from(updates[Math.floor(rnd() * updates.length)]);
    for (let j = 0; j < 1 + Math.floor(rnd() * 3); j++) m[Math.floor(rnd() * m.length)] = Math.floor(rnd() * 256);
    try {
      a.applyLocalYjsUpdate(m);
    } catch (e) {
      assert.equal(e instanceof WebAssembly.RuntimeError, false, `trapped on ${hex(m)}`);
      classes.add(e.class);
    }
  }
  assert.deepEqual([...classes].sort(), ["INVALID_OPERATION", "MALFORMED"]);
  // The instance still works.
  a.insertText(0, "ok");
  assert.equal(a.commit().length, 32);
});

test("an equivocation asks the JS document to resync", () => {
  const [a, b] = pair("yjs");
  const keys = [a.deviceKey(), b.deviceKey()];
  a.insertText(0, "first");
  a.commit();
  const [first] = ship(a, b);
  assert.equal(first.resync, false);
  // Device a restored from a lost backup seals a second envelope at the same seq.
  const forked = DocReplica.create({ ...world("yjs", keys), deviceSeed: fill(10), rngSeed: fill(77) });
  forked.insertText(0, "other");
  forked.commit();
  const [second] = ship(forked, b);
  assert.equal(second.disposition, "rejected");
  assert.equal(second.errorClass, "EQUIVOCATION");
  assert.equal(second.resync, true);
  const late = new Y.Doc();
  Y.applyUpdate(late, b.yjsState());
  assert.equal(late.getText("text").toString(), JSON.parse(b.materialize()).text);
});

test("a JS Y.Doc's updates round-trip through envelopes", () => {
  const [a, b] = pair("yjs");
  const docA = new Y.Doc();
  docA.clientID = a.yjsClientId();
  const docB = new Y.Doc();
  docB.clientID = b.yjsClientId();
  const remote = Symbol("clientful");
  const bind = (doc, replica) =>
    doc.on("update", (update, origin) => {
      if (origin !== remote) replica.applyLocalYjsUpdate(update);
    });
  bind(docA, a);
  bind(docB, b);
  const deliver = (from, to, doc) => {
    for (const r of ship(from, to)) {
      assert.equal(r.disposition, "applied");
      for (const u of r.updates) Y.applyUpdate(doc, u, remote);
    }
  };

  docA.getText("text").insert(0, "Hello");
  docA.getText("text").insert(5, " world");
  docA.getMap("data").set("k", "v");
  a.commit();
  deliver(a, b, docB);
  assert.equal(docB.getText("text").toString(), "Hello world");
  docB.getText("text").delete(0, 1);
  docB.getText("text").insert(0, "J");
  b.commit();
  deliver(b, a, docA);
  assert.equal(docA.getText("text").toString(), "Jello world");
  assert.equal(docB.getText("text").toString(), "Jello world");
  assert.equal(JSON.parse(a.materialize()).text, "Jello world");
  assert.equal(JSON.parse(b.materialize()).data.k, "v");
  assertConverged(a, b);
  // A late JS document catches up from the replica's whole state.
  const late = new Y.Doc();
  Y.applyUpdate(late, b.yjsState());
  assert.equal(late.getText("text").toString(), "Jello world");
});

test("a JS Automerge document's changes round-trip through envelopes", () => {
  const [a, b] = pair("automerge");
  const actorA = hex(a.automergeActor());
  let docA = Automerge.from({ text: "" }, { actor: actorA });
  a.applyLocalAutomergeChanges(Automerge.getLastLocalChange(docA));
  docA = Automerge.change(docA, (d) => {
    Automerge.splice(d, ["text"], 0, 0, "Hi there");
    d.title = "t";
  });
  a.applyLocalAutomergeChanges(Automerge.getLastLocalChange(docA));
  a.commit();
  let docB = Automerge.init({ actor: hex(b.automergeActor()) });
  for (const r of ship(a, b)) {
    assert.equal(r.disposition, "applied");
    [docB] = Automerge.applyChanges(docB, r.updates);
  }
  assert.equal(docB.text, "Hi there");
  assert.equal(JSON.parse(b.materialize()).text, "Hi there");
  assertConverged(a, b);
});

test("two replicas converge in headless Chromium", async () => {
  const server = await serveStatic();
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const errors = watchErrors(page);
    await page.goto(`${server.url}/test/pages/doc.html`);
    const result = await page.waitForFunction(() => window.result).then((h) => h.jsonValue());
    assert.equal(result.error, undefined);
    assert.equal(result.a, result.b);
    assert.match(JSON.parse(result.doc).text, /^(ab|ba)$/);
    assert.equal(result.tampered, "BAD_SIGNATURE");
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
