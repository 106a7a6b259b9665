// The page facade's Worker machinery (src/client.ts, src/worker-host.ts, src/worker.ts) in
// real headless Chromium, against the real wasm module in a dedicated Worker:
// - calls reach the module in the Worker (the page itself never fetches the .wasm), objects
//   stay there under handles, results (bytes included) and typed errors come back;
// - a function argument is called back (progress), and what an object pushes reaches the
//   page's listeners;
// - a trap (WebAssembly.RuntimeError, as a panic gives on wasm32) inside a call rejects
//   only the calls in flight with WorkerRestarted; the client starts a new Worker, reopens
//   every object under the same handle (a document replica restored from its persisted
//   envelopes) and replays sticky calls, and later calls work; a trap outside any call
//   restarts it too; events keep arriving after a restart;
// - the facade over the SDK's Device (OPFS): typed errors of create/open, and a trap
//   after which the same DeviceProxy answers from the device reopened from OPFS.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launchChromium, serveStatic, watchErrors } from "./harness.mjs";

async function withPage(body) {
  const server = await serveStatic();
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const errors = watchErrors(page);
    await page.goto(`${server.url}/test/pages/facade.html`);
    await page.waitForFunction(() => window.ready);
    await body(page);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
}

test("calls, results and typed errors cross to the module in the default Worker", async () => {
  await withPage(async (page) => {
    const r = await page.evaluate(async () => {
      const rpc = new window.WorkerClient();
      const fill = (b) => new Uint8Array(32).fill(b);
      const config = {
        crdt: "yjs", spaceId: fill(1), docId: fill(2), epochId: fill(3), epochSecret: fill(4),
        deviceSeed: fill(10), rngSeed: fill(5), signers: [],
      };
      const key = await rpc.open({ target: null, cls: "DocReplica", method: "create", args: [config] });
      const deviceKey = await rpc.call(key, "deviceKey");
      config.signers = [deviceKey];
      const doc = await rpc.open({ target: null, cls: "DocReplica", method: "create", args: [config] });
      await rpc.call(doc, "insertText", [0, "héllo"]);
      const id = await rpc.call(doc, "commit");
      const outbox = await rpc.call(doc, "drainOutbox");
      const json = await rpc.call(doc, "materialize");
      const errs = [];
      for (const [target, cls, method, args] of [
        [doc, undefined, "automergeActor", []],
        [null, "NoSuchClass", "create", []],
        [doc, undefined, "noSuchMethod", []],
      ]) {
        try {
          await (target === null ? rpc.open({ target, cls, method, args }) : rpc.call(target, method, args));
          errs.push("resolved");
        } catch (e) {
          errs.push({ ...window.describe(e), isClientful: e instanceof window.ClientfulError });
        }
      }
      const wasmOnPage = performance.getEntriesByType("resource").some((e) => e.name.endsWith(".wasm"));
      rpc.release(key);
      rpc.terminate();
      return {
        deviceKeyLength: deviceKey.length, deviceKeyIsBytes: deviceKey instanceof Uint8Array,
        idLength: id.length, outbox: outbox.length, json, errs, wasmOnPage,
      };
    });
    assert.equal(r.deviceKeyLength, 32);
    assert.ok(r.deviceKeyIsBytes, "bytes come back as Uint8Array");
    assert.equal(r.idLength, 32);
    assert.equal(r.outbox, 1);
    assert.equal(JSON.parse(r.json).text, "héllo");
    assert.equal(r.errs[0].class, "UNSUPPORTED");
    assert.equal(r.errs[0].name, "ClientfulError");
    assert.ok(r.errs.every((e) => e.isClientful));
    assert.match(r.errs[1].message, /NoSuchClass/);
    assert.equal(r.errs[2].class, "INVALID_ARGUMENT");
    assert.equal(r.wasmOnPage, false, "the page itself never loads the module");
  });
});

test("callbacks and pushed events reach the page", async () => {
  await withPage(async (page) => {
    const r = await page.evaluate(async () => {
      const rpc = new window.WorkerClient({ workerUrl: "/test/pages/facade-worker.mjs" });
      const ticker = await rpc.open({ target: null, cls: "Ticker", method: "create", args: [] });
      const events = [];
      rpc.on(ticker, "change", (c) => events.push(c));
      const progress = [];
      const bytes = await rpc.call(ticker, "slowly", [5, (done, total) => progress.push([done, total])]);
      await rpc.call(ticker, "tick", ["document", "d1"]);
      await rpc.call(ticker, "tick", ["membership"]);
      await new Promise((ok) => setTimeout(ok, 50));
      rpc.terminate();
      return { bytes: Array.from(bytes), progress, events };
    });
    assert.deepEqual(r.bytes, [1, 2, 3]);
    assert.deepEqual(r.progress, [[1, 4], [2, 4], [3, 4], [4, 4]]);
    assert.deepEqual(r.events, [{ kind: "document", docId: "d1" }, { kind: "membership" }]);
  });
});

test("a trap restarts the Worker, reopens every object and rejects only the calls in flight", async () => {
  await withPage(async (page) => {
    const r = await page.evaluate(async () => {
      const restarts = [];
      const rpc = new window.WorkerClient({
        workerUrl: "/test/pages/facade-worker.mjs",
        onRestart: (cause) => restarts.push(cause),
      });
      const fill = (b) => new Uint8Array(32).fill(b);
      const base = {
        crdt: "yjs", spaceId: fill(1), docId: fill(2), epochId: fill(3), epochSecret: fill(4),
        deviceSeed: fill(10), signers: [],
      };
      const probe = await rpc.open({ target: null, cls: "DocReplica", method: "create", args: [{ ...base, rngSeed: fill(5) }] });
      const config = { ...base, signers: [await rpc.call(probe, "deviceKey")] };
      rpc.release(probe);
      // What the page persisted of the replica: its envelopes, restored after a restart.
      const persisted = [];
      const doc = await rpc.open(
        { target: null, cls: "DocReplica", method: "create", args: [{ ...config, rngSeed: fill(6) }] },
        () => ({ target: null, cls: "DocReplica", method: "restore", args: [{ ...config, rngSeed: crypto.getRandomValues(new Uint8Array(32)) }, persisted] }),
      );
      await rpc.call(doc, "insertText", [0, "kept "]);
      await rpc.call(doc, "commit");
      for (const { envelope } of await rpc.call(doc, "drainOutbox")) persisted.push(envelope);
      const ticker = await rpc.open({ target: null, cls: "Ticker", method: "create", args: [] });
      const events = [];
      rpc.on(ticker, "change", (c) => events.push(c.kind));
      // A sticky call, replayed after a restart.
      await rpc.call(ticker, "tick", ["sticky"], true);

      // A trap in a call: that call rejects; one sent right after is in flight too.
      const [trapped, inFlight] = await Promise.allSettled([
        rpc.open({ target: null, cls: "Trap", method: "now", args: [] }),
        new Promise((ok) => setTimeout(ok, 0)).then(() => rpc.call(doc, "materialize")),
      ]).then((rs) => rs.map((x) => (x.status === "rejected" ? window.describe(x.reason) : { value: x.value })));
      // A call made after the trap waits for the restart and works.
      const after = JSON.parse(await rpc.call(doc, "materialize")).text;
      await rpc.call(ticker, "tick", ["after"]);
      await rpc.call(doc, "insertText", [0, "more "]);
      const afterEdit = JSON.parse(await rpc.call(doc, "materialize")).text;

      // A trap outside any call (in a task of its own) restarts it as well.
      const scheduled = await rpc.open({ target: null, cls: "Trap", method: "later", args: [] }).catch((e) => window.describe(e));
      const end = Date.now() + 5000;
      while (rpc.restarts < 2 && Date.now() < end) await new Promise((ok) => setTimeout(ok, 20));
      await rpc.whenReady();
      const afterLater = JSON.parse(await rpc.call(doc, "materialize")).text;
      rpc.terminate();
      return { trapped, inFlight, after, afterEdit, afterLater, events, restarts, count: rpc.restarts, scheduled };
    });
    assert.equal(r.trapped.name, "WorkerRestarted");
    assert.match(r.trapped.message, /unreachable/);
    // The second call was either still in flight (rejected) or answered before the trap.
    assert.ok(r.inFlight.name === "WorkerRestarted" || JSON.parse(r.inFlight.value).text === "kept ");
    assert.equal(r.after, "kept ", "the replica was restored from its persisted envelopes");
    assert.equal(r.afterEdit, "more kept ");
    // Restored twice from what was persisted (the uncommitted edit is gone, as after a crash).
    assert.equal(r.afterLater, "kept ");
    // `later` returns a string, not an object to keep: open() says so, after the call ran.
    assert.equal(r.scheduled.class, "INVALID_ARGUMENT");
    assert.equal(r.count, 2);
    assert.equal(r.restarts.length, 2);
    // "sticky" once, replayed after each restart, then "after" once.
    assert.deepEqual(r.events, ["sticky", "sticky", "after", "sticky"]);
  });
});

test("Clientful over the SDK's Device: typed errors, and a trap reopens the device from OPFS", async () => {
  await withPage(async (page) => {
    const r = await page.evaluate(async () => {
      const dir = `facade${Date.now()}`;
      const options = { workerUrl: "/test/pages/facade-worker.mjs" };
      const errs = [];
      for (const f of [() => window.Clientful.open(`none${dir}`, options)]) {
        try {
          await f();
          errs.push("resolved");
        } catch (e) {
          errs.push(window.describe(e));
        }
      }
      const device = await window.Clientful.create(dir, "Tess", options);
      const before = { user: await device.userId(), device: await device.deviceId(), name: await device.userName() };
      let trapped;
      try {
        await device.rpc.open({ target: null, cls: "Trap", method: "now", args: [] });
      } catch (e) {
        trapped = window.describe(e);
      }
      const after = { user: await device.userId(), device: await device.deviceId(), name: await device.userName() };
      const spaces = await device.spaces();
      const restarts = device.rpc.restarts;
      // Its Worker stopped (its OPFS files let go within a moment): a new one opens it.
      device.close();
      let again;
      try {
        await window.Clientful.create(dir, "Tess", options);
      } catch (e) {
        again = window.describe(e);
      }
      const reopened = await window.Clientful.open(dir, options);
      after.reopened = await reopened.userId();
      reopened.close();
      return { errs, before, after, trapped, restarts, spaces, again };
    });
    assert.equal(r.errs[0].class, "NOT_INITIALIZED");
    assert.equal(r.errs[0].name, "ClientfulError");
    assert.match(r.before.user, /^[0-9a-f]{64}$/);
    assert.equal(r.before.name, "Tess");
    assert.equal(r.trapped.name, "WorkerRestarted");
    assert.equal(r.restarts, 1);
    assert.equal(r.after.reopened, r.before.user);
    delete r.after.reopened;
    assert.deepEqual(r.after, r.before, "the same device, reopened from OPFS");
    assert.deepEqual(r.spaces, []);
    // The identity is in OPFS: creating it again is refused.
    assert.equal(r.again.class, "ALREADY_EXISTS");
  });
});
