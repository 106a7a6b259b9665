// The SDK in a browser Worker (issue 16, build item 1): clientful-web's session
// module (Device, Space: the native client's code on wasm32, its home in OPFS) in
// real headless Chromium, with a native `clientful` CLI device in the same space on
// S3 (SeaweedFS):
// - the native admin creates the space and an invite; the Worker's Device.create
//   and acceptInvite join; both edit a Yjs and an Automerge document and sync
//   through storage until the native `doctor report` state digests equal the
//   Worker's stateDigest;
// - JS documents bound to the Worker's: a Y.Doc (yjsClientId, yjsDiff,
//   applyLocalYjsUpdate) and an Automerge document (automergeActor,
//   automergeChangesSince, applyLocalAutomergeChanges) edit, and the native device
//   reads their edits after a sync;
// - the Worker putFiles a photo (random bytes) that the native CLI reads byte for byte;
// - the Worker is terminated; a new one Device.opens the same OPFS home and sees
//   everything;
// - the native admin removes the browser user, edits more, syncs: the browser's sync
//   brings nothing new (hasAccess() false, text unchanged);
// - live: the Worker's Space goes live on a real `clientful broker`; a native edit
//   arrives through the broker (setOnChange fires) and the Worker's edit and an
//   ephemeral (presence) message reach the native watcher through the broker;
// - a scan of every object in storage finds none of the marker texts.
// The S3 server comes from CLIENTFUL_S3_* (the test command starts it); when unset
// the test starts its own.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as Y from "yjs";
import * as Automerge from "@automerge/automerge";
import { buildNative, launchChromium, repo, serveStatic, start, startBroker, until, watchErrors } from "./harness.mjs";

let services;
let server;
let browser;
let cli;
let tmp;
const keys = { AWS_ACCESS_KEY_ID: "clientful", AWS_SECRET_ACCESS_KEY: "clientful-secret" };

before(async () => {
  if (!process.env.CLIENTFUL_S3_ENDPOINT) {
    services = mkdtempSync(join(tmpdir(), "clientful-web-session-"));
    const out = execFileSync("bash", [join(repo, "scripts/services/s3.sh"), "start", services], { encoding: "utf8" });
    for (const [, k, v] of out.matchAll(/export (\w+)=(\S+)/g)) process.env[k] = v;
  }
  ({ cli } = buildNative());
  Object.assign(process.env, keys); // for the native processes `start` runs
  tmp = mkdtempSync(join(tmpdir(), "clientful-web-session-cli-"));
  server = await serveStatic();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  if (services) {
    try {
      execFileSync("bash", [join(repo, "scripts/services/s3.sh"), "stop", services]);
    } catch {}
    rmSync(services, { recursive: true, force: true });
  }
});

/** Runs the native CLI as `home`; returns stdout. */
function native(home, ...args) {
  return execFileSync(cli, ["--home", join(tmp, home), ...args], {
    encoding: "utf8",
    env: { ...process.env, ...keys, CLIENTFUL_HOME: "", CLIENTFUL_SPACE: "", CLIENTFUL_STORAGE: "", CLIENTFUL_CONFIG: "" },
  });
}
const lastLine = (s) => s.trim().split("\n").at(-1).trim();

/** The native state digest of every document, by id prefix (`doctor report`). */
function nativeDigests(home) {
  const out = {};
  for (const l of native(home, "doctor", "report").split("\n")) {
    const m = /^document (\S+)\s+state (\S+)/.exec(l);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

/** Every object under `prefix` in the S3 bucket (SeaweedFS answers unsigned requests). */
async function s3Objects(prefix) {
  const ep = process.env.CLIENTFUL_S3_ENDPOINT;
  const bucket = process.env.CLIENTFUL_S3_BUCKET ?? "clientful-test";
  const keysSeen = [];
  let token = "";
  for (;;) {
    const q = new URLSearchParams({ "list-type": "2", prefix, ...(token ? { "continuation-token": token } : {}) });
    const xml = await (await fetch(`${ep}/${bucket}?${q}`)).text();
    for (const [, k] of xml.matchAll(/<Key>([^<]+)<\/Key>/g)) keysSeen.push(k);
    const next = /<NextContinuationToken>([^<]+)<\/NextContinuationToken>/.exec(xml);
    if (!next) break;
    token = next[1];
  }
  const bodies = [];
  for (const k of keysSeen) {
    const r = await fetch(`${ep}/${bucket}/${k.split("/").map(encodeURIComponent).join("/")}`);
    assert.equal(r.status, 200, `GET ${k}`);
    bodies.push(Buffer.from(await r.arrayBuffer()));
  }
  return bodies;
}

test("a browser Worker device joins a native device's space on S3, edits, stores a photo, survives a restart, and is removed", async (t) => {
  const tag = `web-session-${process.pid}-${Date.now()}`;
  const storage = `s3://${process.env.CLIENTFUL_S3_BUCKET ?? "clientful-test"}/${tag}?endpoint=${process.env.CLIENTFUL_S3_ENDPOINT}`;
  const dir = `bob${process.pid}x${Date.now()}`;
  const m = randomBytes(4).toString("hex");
  const markers = {
    alice: `alice-plain-${m}`,
    bob: `bob-plain-${m}`,
    plan: `plan-plain-${m}`,
    after: `after-removal-${m}`,
    liveNative: `live-native-${m}`,
    liveBrowser: `live-browser-${m}`,
  };

  // Native alice: identity, space, a Yjs and an Automerge document, an invite.
  native("alice", "identity", "create", "--name", "alice");
  native("alice", "space", "create", "team", "--storage", storage);
  const notes = lastLine(native("alice", "doc", "new", "--crdt", "yjs", "--title", "Notes"));
  const plan = lastLine(native("alice", "doc", "new", "--crdt", "automerge", "--title", "Plan"));
  native("alice", "doc", "edit", notes, "--append", markers.alice);
  // The text object exists before the concurrent edits (two devices each creating
  // the Automerge root key `text` would conflict, and one text would win).
  native("alice", "doc", "edit", plan, "--append", "plan:");
  const code = lastLine(native("alice", "invite", "create"));
  native("alice", "sync");

  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = watchErrors(page);
  await page.goto(`${server.url}/test/pages/session.html`);
  await page.waitForFunction(() => window.ready);
  const call = async (op, args) => {
    const r = await page.evaluate(([o, a]) => window.call(o, a), [op, args]);
    assert.equal(r.error, undefined, `${op} ${JSON.stringify(args)?.slice(0, 200)}: ${r.error}`);
    return r.ok;
  };
  const fails = async (op, args) => {
    const r = await page.evaluate(([o, a]) => window.call(o, a), [op, args]);
    assert.ok(r.error, `${op} should fail`);
    return r;
  };

  try {
    // The Worker's device (an empty home does not open).
    assert.match((await fails("open", { dir: `none${dir}` })).error, /^\[NOT_INITIALIZED\]/);
    const bob = await call("create", { dir, user: "bob", vars: keys });
    assert.equal(bob.name, "bob");

    // Join: redeem, the admin admits on sync, the browser syncs and can read.
    const space = await call("acceptInvite", { code, name: "team", storage });
    const sp = (method, ...args) => call("call", { space, method, args });
    native("alice", "sync");
    await sp("sync");
    assert.equal(await sp("hasAccess"), true);
    const docs = await sp("documents");
    const fullNotes = docs.find((d) => d.id.startsWith(notes)).id;
    const fullPlan = docs.find((d) => d.id.startsWith(plan)).id;
    assert.equal(docs.find((d) => d.id === fullNotes).kind, "yjs");
    assert.equal(docs.find((d) => d.id === fullPlan).kind, "automerge");
    assert.equal(docs.find((d) => d.id === fullNotes).title, "Notes");
    assert.equal(docs.find((d) => d.id === fullPlan).title, "Plan");
    assert.equal(await sp("text", fullNotes), markers.alice);

    // Concurrent edits in both documents, then sync both ways until equal.
    await sp("insertText", fullNotes, 0, `${markers.bob} `);
    await sp("insertText", fullPlan, 0, markers.plan);
    native("alice", "doc", "edit", notes, "--append", " native-2");
    native("alice", "doc", "edit", plan, "--append", " native-plan");
    await sp("sync");
    native("alice", "sync");
    await sp("sync");
    const digests = nativeDigests("alice");
    for (const id of [fullNotes, fullPlan]) {
      const mine = await sp("stateDigest", id);
      assert.equal(digests[Object.keys(digests).find((k) => id.startsWith(k))], mine, `digest of ${id}`);
    }
    const notesText = await sp("text", fullNotes);
    assert.equal(notesText, `${markers.bob} ${markers.alice} native-2`);
    assert.equal(lastLine(native("alice", "doc", "print", notes, "--text")), notesText);
    const planMerged = await sp("text", fullPlan);
    assert.ok(planMerged.includes(markers.plan) && planMerged.includes("plan: native-plan"), planMerged);
    const changeKinds = await page.evaluate(() => window.changes.map((c) => c.kind));
    assert.ok(changeKinds.includes("document"), `change events pushed: ${changeKinds}`);

    // A JS Y.Doc bound to the Worker's Yjs document: the replica's state in, a local
    // edit out (checked and sealed as this device's), read natively after a sync.
    const bytesOf = (r) => Uint8Array.from(r.bytes);
    const ydoc = new Y.Doc();
    Y.applyUpdate(ydoc, bytesOf(await sp("yjsDiff", fullNotes, { bytes: Array.from(Y.encodeStateVector(new Y.Doc())) })));
    // After the state: Yjs picks a new clientID when a remote update carries its own.
    ydoc.clientID = await sp("yjsClientId", fullNotes);
    assert.equal(ydoc.getText("text").toString(), notesText);
    const svBefore = Y.encodeStateVector(ydoc);
    ydoc.getText("text").insert(0, "yjs-js ");
    await sp("applyLocalYjsUpdate", fullNotes, { bytes: Array.from(Y.encodeStateAsUpdate(ydoc, svBefore)) });
    assert.equal(await sp("text", fullNotes), `yjs-js ${notesText}`);
    // An Automerge document likewise (the same actor as the replica's).
    const actor = await sp("automergeActor", fullPlan);
    let am = Automerge.init({ actor });
    [am] = Automerge.applyChanges(am, (await sp("automergeChangesSince", fullPlan, [])).map(bytesOf));
    assert.equal(String(am.text), await sp("text", fullPlan));
    const heads = Automerge.getHeads(am);
    const am2 = Automerge.change(am, (d) => Automerge.splice(d, ["text"], 0, 0, "am-js "));
    const mine = Automerge.getChanges(am, am2).map((c) => ({ bytes: Array.from(c) }));
    await sp("applyLocalAutomergeChanges", fullPlan, mine);
    assert.ok((await sp("text", fullPlan)).startsWith("am-js "));
    assert.equal((await sp("automergeChangesSince", fullPlan, heads)).length, 1);
    await sp("sync");
    native("alice", "sync");
    assert.ok(lastLine(native("alice", "doc", "print", notes, "--text")).startsWith("yjs-js "));
    assert.ok(native("alice", "doc", "print", plan, "--text").includes("am-js "));

    // A second browser device of the same user, by a device link (MEM-24): it reads
    // the space once synced.
    const linked = await call("linkDevice", { space, dir2: `${dir}second`, vars: keys, storage, doc: fullNotes });
    assert.equal(linked.request, "cfdevice1-");
    assert.equal(linked.link, "cflink1-");
    assert.ok(linked.sameUser && linked.otherDevice, JSON.stringify(linked));
    assert.equal(linked.access, true);
    assert.equal(linked.text, await sp("text", fullNotes));
    // Export: every readable document as plain JSON, and the members.
    const exported = JSON.parse(await sp("exportJson"));
    assert.equal(exported.space.length, 64);
    assert.equal(exported.documents.find((d) => d.id === fullNotes).title, "Notes");
    assert.equal(exported.documents.find((d) => d.id === fullPlan).kind, "automerge");
    assert.ok(JSON.stringify(exported.documents).includes(markers.bob));
    assert.ok(exported.members.some((m) => m.user === bob.user));

    // A photo stored by the browser, read natively byte for byte.
    const photo = await call("putRandomFile", { space, size: 300 * 1024 + 17 });
    assert.ok(photo.progress.length > 0);
    assert.equal(photo.progress.at(-1)[0], 300 * 1024 + 17);
    await sp("sync");
    native("alice", "sync");
    const out = join(tmp, "photo.jpg");
    native("alice", "files", "get", photo.ref, "--out", out);
    assert.equal(readFileSync(out).toString("hex"), photo.hex);
    const back = await sp("getFile", photo.ref);
    assert.equal(Buffer.from(back.bytes).toString("hex"), photo.hex);

    // Live over a real broker: a native edit arrives through it (change pushed), and
    // the Worker's edit reaches the native watcher through it.
    const { broker, url } = await startBroker(cli);
    try {
      await sp("goLive", url);
      await new Promise((ok) => setTimeout(ok, 1500));
      native("alice", "doc", "edit", notes, "--append", ` ${markers.liveNative}`);
      const seen = await page.evaluate(() => window.changes.length);
      const watcher = start(cli, ["--home", join(tmp, "alice"), "watch", "--broker", url, "--for", "12", "--interval", "3600"]);
      await until("the native edit arrived live", async () => (await sp("text", fullNotes)).includes(markers.liveNative), 15000);
      const fresh = await page.evaluate((n) => window.changes.slice(n), seen);
      assert.ok(fresh.some((c) => c.kind === "document" && c.docId === fullNotes), `change pushed: ${JSON.stringify(fresh)}`);
      await sp("insertText", fullNotes, 0, `${markers.liveBrowser} `);
      await watcher.waitFor(/^received \d+ envelopes/, 15000);
      // Presence: an ephemeral message from the Worker reaches the native watcher.
      await watcher.waitFor(/^joined room/, 15000);
      await sp("ephemeral", { bytes: Array.from(Buffer.from("cursor at 3")) });
      await watcher.waitFor(/^ephemeral 11 bytes from device [0-9a-f]{12}$/, 15000);
      await new Promise((ok) => watcher.child.on("exit", ok));
      assert.ok(native("alice", "doc", "print", notes, "--text").includes(markers.liveBrowser));
    } finally {
      await call("call", { space, method: "close", args: [] });
      broker.stop();
    }
    native("alice", "sync");
    await sp("sync");
    const liveDigests = nativeDigests("alice");
    const liveMine = await sp("stateDigest", fullNotes);
    assert.equal(liveDigests[Object.keys(liveDigests).find((k) => fullNotes.startsWith(k))], liveMine);
    const notesLive = await sp("text", fullNotes);

    // A new Worker opens the same OPFS home and sees everything.
    const planText = await sp("text", fullPlan);
    const before = { notes: liveMine, plan: await sp("stateDigest", fullPlan) };
    await page.evaluate(() => window.restart());
    assert.match((await fails("create", { dir, user: "bob" })).error, /^\[ALREADY_EXISTS\]/);
    const reopened = await call("open", { dir, vars: keys });
    assert.equal(reopened.user, bob.user);
    assert.deepEqual(reopened.spaces.map((s) => s.name), ["team"]);
    const space2 = await call("openSpace", { selector: "team" });
    assert.equal(space2, space);
    assert.equal(await sp("text", fullNotes), notesLive);
    assert.equal(await sp("text", fullPlan), planText);
    assert.equal(await sp("stateDigest", fullNotes), before.notes);
    assert.equal(await sp("stateDigest", fullPlan), before.plan);
    assert.equal(await sp("hasAccess"), true);

    // Removal: the native admin removes bob, writes more, syncs; bob's sync brings nothing.
    native("alice", "space", "remove", bob.user.slice(0, 12));
    native("alice", "doc", "edit", notes, "--append", ` ${markers.after}`);
    native("alice", "sync");
    await sp("sync");
    // What the removed device reads must not change; that it knows it was removed can take
    // another sync (the rotation's key message reaches the old epoch's directory with the
    // admin's deliveries): bounded.
    assert.equal(await sp("text", fullNotes), notesLive);
    for (let i = 0; i < 5 && (await sp("hasAccess")); i++) {
      native("alice", "sync");
      await sp("sync");
      assert.equal(await sp("text", fullNotes), notesLive);
    }
    assert.equal(await sp("hasAccess"), false);
    assert.equal(await sp("text", fullNotes), notesLive);
    assert.ok(lastLine(native("alice", "doc", "print", notes, "--text")).endsWith(markers.after));

    // No marker text anywhere in storage.
    const objects = await s3Objects(tag);
    assert.ok(objects.length > 5, `objects in storage: ${objects.length}`);
    for (const o of objects) {
      for (const mk of Object.values(markers)) assert.ok(!o.includes(mk), `plaintext ${mk} in storage`);
    }
    t.diagnostic(`${objects.length} objects scanned; photo ${photo.progress.length} progress calls`);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
