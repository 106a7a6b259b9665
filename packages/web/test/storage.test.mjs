// Storage in the browser, the same code as native (issue 16, browser IO):
// - a Worker writes a space's envelopes through clientful-storage's Space to S3
//   (SeaweedFS) and WebDAV (WsgiDAV, with CORS) over fetch, and a native process
//   (clientful-storage's space-peer helper) reads them back byte for byte, and the
//   other way round;
// - the device store (LocalStore over redb over an OPFS file) keeps every
//   acknowledged write across a worker terminated mid-run and a page reloaded
//   mid-run, and opens with its integrity and consistency checks passing.
// The S3 and WebDAV servers come from CLIENTFUL_S3_* / CLIENTFUL_WEBDAV_* (the test
// command starts them); when those are unset the test starts its own.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir, homedir } from "node:os";
import { join } from "node:path";
import { launchChromium, packageRoot, serveStatic, watchErrors } from "./harness.mjs";

const repo = join(packageRoot, "../..");
const targetDir = process.env.CARGO_TARGET_DIR ?? join(homedir(), ".cache/clientful/target");
const hex = (n) => Buffer.alloc(32, n).toString("hex");

// The fixed test keys of space-peer (reference/clientful-storage/src/bin/space-peer.rs).
let keys;
let services;
let peer;

function startServices() {
  if (process.env.CLIENTFUL_S3_ENDPOINT && process.env.CLIENTFUL_WEBDAV_ENDPOINT) return;
  services = mkdtempSync(join(tmpdir(), "clientful-web-storage-"));
  for (const svc of ["s3", "webdav"]) {
    const out = execFileSync("bash", [join(repo, `scripts/services/${svc}.sh`), "start", services], {
      encoding: "utf8",
    });
    for (const [, k, v] of out.matchAll(/export (\w+)=(\S+)/g)) process.env[k] = v;
  }
}

function stopServices() {
  if (!services) return;
  for (const svc of ["s3", "webdav"]) {
    try {
      execFileSync("bash", [join(repo, `scripts/services/${svc}.sh`), "stop", services]);
    } catch {}
  }
  rmSync(services, { recursive: true, force: true });
}

function spacePeer(...args) {
  const out = execFileSync(peer, args, { encoding: "utf8", env: process.env });
  return out
    .split("\n")
    .filter((l) => l.startsWith("env "))
    .map((l) => l.slice(4));
}

function storeOptions(kind, root) {
  return kind === "s3"
    ? { backend: "s3", endpoint: process.env.CLIENTFUL_S3_ENDPOINT, bucket: process.env.CLIENTFUL_S3_BUCKET ?? "clientful-test", root }
    : { backend: "webdav", endpoint: process.env.CLIENTFUL_WEBDAV_ENDPOINT, root };
}

let server;
let browser;

before(async () => {
  startServices();
  execFileSync("cargo", ["build", "--locked", "-q", "-p", "clientful-storage", "--bin", "space-peer"], {
    cwd: repo,
    env: { ...process.env, CARGO_TARGET_DIR: targetDir },
    stdio: "inherit",
  });
  peer = join(targetDir, "debug/space-peer");
  keys = {
    spaceId: hex(0x51),
    epochId: hex(0x52),
    epochSecret: hex(0x53),
    docId: hex(0x70),
    deviceSeed: hex(0x61), // device 1; native space-peer runs as device 0
    // The two devices' public keys, as the native helper derives them.
    signers: execFileSync(peer, ["signers"], { encoding: "utf8" }).trim().split("\n"),
  };
  server = await serveStatic();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.close();
  stopServices();
});

async function storagePage() {
  const page = await browser.newPage();
  const errors = watchErrors(page);
  await page.goto(`${server.url}/test/pages/storage.html`);
  await page.waitForFunction(() => window.loaded);
  return { page, errors };
}

const inWorker = (page, request) => page.evaluate((r) => window.inWorker(r), request);

for (const kind of ["s3", "webdav"]) {
  test(`a browser Worker and a native process exchange a space's envelopes over ${kind}, byte for byte`, async () => {
    const root = `/web-${kind}-${process.pid}-${Date.now()}/`;
    const store = storeOptions(kind, root);
    const { page, errors } = await storagePage();
    try {
      // Browser (device 1) writes through Space; native (device 0) reads.
      const wrote = await inWorker(page, { op: "write", store, keys, texts: ["from the browser", "zwei ✓"] });
      assert.equal(wrote.error, undefined, wrote.error);
      assert.ok(wrote.envelopes.length >= 2);
      const nativeSees = new Set(spacePeer("read", kind, root, "0"));
      for (const e of wrote.envelopes) assert.ok(nativeSees.has(e), `native read back the browser's envelope ${e.slice(0, 32)}…`);

      // Native writes; a fresh browser device store pulls both devices' envelopes.
      const nativeWrote = spacePeer("write", kind, root, "0", "from native", "drei");
      assert.ok(nativeWrote.length >= 2);
      const read = await inWorker(page, { op: "read", store, keys });
      assert.equal(read.error, undefined, read.error);
      const browserSees = new Set(read.envelopes);
      for (const e of [...nativeWrote, ...wrote.envelopes]) assert.ok(browserSees.has(e), `browser read back ${e.slice(0, 32)}…`);
      assert.equal(read.fresh, read.envelopes.length);
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });
}

test("the OPFS device store keeps every acknowledged write across a worker termination and a page reload", async (t) => {
  const name = `crash-${process.pid}-${Date.now()}.redb`;
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = watchErrors(page);
  const acked = [];
  await page.exposeFunction("ackToNode", (batch) => acked.push(...batch));
  await page.goto(`${server.url}/test/pages/storage.html`);
  await page.waitForFunction(() => window.loaded);
  const storeReq = { op: "readStore", name };

  // Round 1: the worker is terminated as soon as the 60th acknowledgement arrives.
  const round1 = await page.evaluate(
    (req) =>
      new Promise((ok) => {
        let n = 0;
        window.inWorker(req, (batch, worker) => {
          window.ackToNode(batch);
          n += batch.length;
          if (n >= 60) {
            worker.terminate();
            ok(n);
          }
        }).then((reply) => ok(reply));
      }),
    { op: "crashWriter", name, keys, round: 1 },
  );
  assert.equal(typeof round1, "number", JSON.stringify(round1));
  const after1 = await inWorker(page, storeReq);
  assert.equal(after1.error, undefined, after1.error);
  const stored1 = new Set(after1.envelopes);
  assert.ok(acked.length >= 60);
  for (const e of acked) assert.ok(stored1.has(e), "an acknowledged write survived the termination");
  assert.equal(after1.check.envelopes, after1.envelopes.length);

  // Round 2: the page is reloaded while the worker writes.
  const before2 = acked.length;
  await page.evaluate((req) => {
    window.inWorker(req, (batch) => window.ackToNode(batch));
  }, { op: "crashWriter", name, keys, round: 2 });
  const deadline = Date.now() + 30_000;
  while (acked.length < before2 + 60 && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 20));
  assert.ok(acked.length >= before2 + 60, "the second writer acknowledged writes");
  await page.reload();
  await page.waitForFunction(() => window.loaded);
  const after2 = await inWorker(page, storeReq);
  assert.equal(after2.error, undefined, after2.error);
  const stored2 = new Set(after2.envelopes);
  const snapshot = [...acked];
  for (const e of snapshot) assert.ok(stored2.has(e), "an acknowledged write survived the reload");
  assert.equal(after2.check.envelopes, after2.envelopes.length);
  assert.ok(after2.envelopes.length > after1.envelopes.length);
  t.diagnostic(
    `acknowledged ${acked.length} envelopes (${before2} before the termination); ` +
      `stored ${after1.envelopes.length} after it, ${after2.envelopes.length} after the reload`,
  );
  assert.deepEqual(errors, []);
  await context.close();
});
