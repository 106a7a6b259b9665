// The SDK in a browser Worker (issue 16, build item 1): clientful-web's session
// module (Device, Space: the native client's code on wasm32, its home in OPFS) in
// real headless Chromium, with a native `clientful` CLI device in the same space on
// S3 (SeaweedFS):
// - the native admin creates the space and an invite; the Worker's Device.create
//   and acceptInvite join; both edit a Yjs and an Automerge document and sync
//   through storage until the native `doctor report` state digests equal the
//   Worker's stateDigest;
// - the Worker putFiles a photo (random bytes) that the native CLI reads byte for byte;
// - the Worker is terminated; a new one Device.opens the same OPFS home and sees
//   everything;
// - the native admin removes the browser user, edits more, syncs: the browser's sync
//   brings nothing new (hasAccess() false, text unchanged);
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
import { buildNative, launchChromium, repo, serveStatic, until, watchErrors } from "./harness.mjs";

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
  const markers = { alice: `alice-plain-${m}`, bob: `bob-plain-${m}`, plan: `plan-plain-${m}`, after: `after-removal-${m}` };

  // Native alice: identity, space, a Yjs and an Automerge document, an invite.
  native("alice", "identity", "create", "--name", "alice");
  native("alice", "space", "create", "team", "--storage", storage);
  const notes = lastLine(native("alice", "doc", "new", "--crdt", "yjs", "--title", "Notes"));
  const plan = lastLine(native("alice", "doc", "new", "--crdt", "automerge", "--title", "Plan"));
  native("alice", "doc", "edit", notes, "--append", markers.alice);
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
    assert.ok((await sp("text", fullPlan)).includes(markers.plan));
    const changeKinds = await page.evaluate(() => window.changes.map((c) => c.kind));
    assert.ok(changeKinds.includes("document"), `change events pushed: ${changeKinds}`);

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

    // A new Worker opens the same OPFS home and sees everything.
    const planText = await sp("text", fullPlan);
    const before = { notes: await sp("stateDigest", fullNotes), plan: await sp("stateDigest", fullPlan) };
    await page.evaluate(() => window.restart());
    assert.match((await fails("create", { dir, user: "bob" })).error, /^\[ALREADY_EXISTS\]/);
    const reopened = await call("open", { dir, vars: keys });
    assert.equal(reopened.user, bob.user);
    assert.deepEqual(reopened.spaces.map((s) => s.name), ["team"]);
    const space2 = await call("openSpace", { selector: "team" });
    assert.equal(space2, space);
    assert.equal(await sp("text", fullNotes), notesText);
    assert.equal(await sp("text", fullPlan), planText);
    assert.equal(await sp("stateDigest", fullNotes), before.notes);
    assert.equal(await sp("stateDigest", fullPlan), before.plan);
    assert.equal(await sp("hasAccess"), true);

    // Removal: the native admin removes bob, writes more, syncs; bob's sync brings nothing.
    native("alice", "space", "remove", bob.user.slice(0, 12));
    native("alice", "doc", "edit", notes, "--append", ` ${markers.after}`);
    native("alice", "sync");
    await sp("sync");
    assert.equal(await sp("hasAccess"), false);
    assert.equal(await sp("text", fullNotes), notesText);
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
