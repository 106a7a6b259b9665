// Issue 16's first Must-show, in real headless Chromium: two browser contexts (two users,
// each the Clientful facade: the SDK in a dedicated Worker, its device in OPFS) and one
// native CLI device (`clientful`) in one space on S3 (SeaweedFS, CLIENTFUL_S3_*), with a
// real `clientful broker` (capturing every frame):
// - the CLI user creates the space and a Yjs and an Automerge document, and invites;
//   both browsers accept the invite and are admitted when the CLI syncs;
// - concurrent edits: the Yjs document through ClientfulProvider on a JS Y.Doc, the
//   Automerge document through AutomergeBinding, and the CLI, converge everywhere;
// - one context offline (context.setOffline) edits, the other too; back online it converges;
// - a page reload keeps everything (OPFS) and the JS documents come back from it;
// - a photo uploaded in the browser is read by the CLI byte for byte;
// - presence (awareness) set in one context is visible in the other;
// - a trap in one context's Worker: a new Worker reopens the device and space from OPFS,
//   goes live again, and the JS documents carry on;
// - the CLI admin removes the second browser user: that browser reads nothing new;
// - every replica ends with equal digests;
// - a plaintext scan of the bucket's objects and of the broker's frames finds no marker.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildNative, launchChromium, openPage, repo, serveStatic, start, until } from "./harness.mjs";

const S3_KEYS = { AWS_ACCESS_KEY_ID: "clientful", AWS_SECRET_ACCESS_KEY: "clientful-secret" };

function services(tmp) {
  if (process.env.CLIENTFUL_S3_ENDPOINT) return () => undefined;
  const out = execFileSync("bash", [join(repo, "scripts/services/s3.sh"), "start", tmp], { encoding: "utf8" });
  for (const [, k, v] of out.matchAll(/export (\w+)=(\S+)/g)) process.env[k] = v;
  return () => {
    try {
      execFileSync("bash", [join(repo, "scripts/services/s3.sh"), "stop", tmp]);
    } catch {}
    delete process.env.CLIENTFUL_S3_ENDPOINT;
  };
}

/** Every object of the bucket under `prefix` (anonymous S3 listing, as SeaweedFS allows). */
async function bucketObjects(endpoint, bucket, prefix) {
  const objects = [];
  let token;
  for (;;) {
    const q = new URLSearchParams({ "list-type": "2", prefix });
    if (token) q.set("continuation-token", token);
    const xml = await (await fetch(`${endpoint}/${bucket}?${q}`)).text();
    for (const [, key] of xml.matchAll(/<Key>([^<]+)<\/Key>/g)) {
      const res = await fetch(`${endpoint}/${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`);
      assert.equal(res.status, 200, `GET ${key}`);
      objects.push({ key, body: Buffer.from(await res.arrayBuffer()) });
    }
    const next = /<NextContinuationToken>([^<]+)<\/NextContinuationToken>/.exec(xml);
    if (!/<IsTruncated>true<\/IsTruncated>/.test(xml) || !next) return objects;
    token = next[1];
  }
}

test("two browsers and the CLI in one space on S3 with a broker: issue 16's end-to-end story", async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), "clientful-web-e2e-"));
  const stopServices = services(tmp);
  const { cli } = buildNative();
  const capture = join(tmp, "broker-frames.bin");
  const broker = start(cli, ["broker", "--ws-listen", "127.0.0.1:0", "--quic-listen", "127.0.0.1:0", "--capture", capture]);
  const server = await serveStatic();
  const browser = await launchChromium();
  const nonce = randomBytes(6).toString("hex");
  const endpoint = process.env.CLIENTFUL_S3_ENDPOINT;
  const bucket = process.env.CLIENTFUL_S3_BUCKET ?? "clientful-test";
  const root = `web-e2e-${nonce}`;
  const storage = `s3://${bucket}/${root}?endpoint=${endpoint}`;
  const home = join(tmp, "carol");
  const clientful = (...args) =>
    execFileSync(cli, ["--home", home, ...args], {
      encoding: "utf8",
      env: { ...process.env, ...S3_KEYS, CLIENTFUL_HOME: "", CLIENTFUL_SPACE: "", CLIENTFUL_STORAGE: "", CLIENTFUL_CONFIG: "" },
      stdio: ["ignore", "pipe", "pipe"],
    }).trim();
  const last = (out) => out.split("\n").pop().trim();
  // Markers: text that must never appear in storage or broker frames.
  const marker = (what) => `${what}-${randomBytes(5).toString("hex")}`;
  const m = {
    cli: marker("carolwrites"), yA: marker("alicewrites"), yB: marker("bobwrites"), amA: marker("aliceplans"),
    amB: marker("bobplans"), offline: marker("bobaway"), away: marker("alicemeanwhile"),
    presence: marker("alicecursor"), photo: marker("photobytes"), removed: marker("afterremoval"),
    restart: marker("aliceagain"),
  };
  const contexts = [];
  const pages = [];
  const frames = [];
  try {
    const url = `ws://${/ws=(\S+)/.exec(await broker.waitFor(/listening ws=/))[1]}/v1/ws`;
    // The CLI user: the space, two documents, an invite per browser user.
    clientful("identity", "create", "--name", "carol");
    clientful("space", "create", "team", "--storage", storage);
    const yjsPrefix = last(clientful("doc", "new", "--crdt", "yjs", "--title", "Notes"));
    const amPrefix = last(clientful("doc", "new", "--crdt", "automerge", "--title", "Tasks"));
    // Full ids, from the first browser's listing.
    let yjsDoc;
    let amDoc;
    // The Automerge document's text exists before anyone edits it concurrently (two
    // concurrent creations of one key would make two text objects, one of which wins).
    clientful("doc", "edit", amPrefix, "--append", "plan:");
    const codes = [last(clientful("invite", "create", "--role", "writer")), last(clientful("invite", "create", "--role", "writer"))];
    clientful("sync");

    for (const name of ["alice", "bob"]) {
      const context = await browser.newContext();
      const opened = await openPage(context, `${server.url}/test/pages/e2e.html`);
      contexts.push(context);
      pages.push(opened);
      frames.push(opened.frames);
      opened.name = name;
    }
    const run = async (i, f, ...args) => {
      const r = await pages[i].page.evaluate(([f, args]) => window[f](...args), [f, args]);
      if (r.error) throw new Error(`${pages[i].name} ${f}: ${r.error.name} ${r.error.class ?? ""} ${r.error.message}`);
      return r.ok;
    };
    const call = (i, method, ...args) => run(i, "call", method, ...args);
    const state = (i) => run(i, "state");
    const users = [];

    await t.test("an invite created natively is accepted in both browsers", async () => {
      for (const [i, name] of ["alice", "bob"].entries()) {
        // Alice's Worker is the test one (the same module, plus a way to trap it).
        const workerUrl = i === 0 ? "/test/pages/facade-worker.mjs" : undefined;
        users.push(await run(i, "start", { dir: name, name, vars: S3_KEYS, workerUrl }));
        await run(i, "accept", codes[i], storage);
      }
      // Admitted on the admin's next sync; then the browsers read the space.
      clientful("sync");
      for (const i of [0, 1]) {
        await call(i, "sync");
        assert.equal(await call(i, "hasAccess"), true);
        const docs = await run(i, "documents");
        yjsDoc = docs.find((d) => d.id.startsWith(yjsPrefix))?.id;
        amDoc = docs.find((d) => d.id.startsWith(amPrefix))?.id;
        assert.equal(docs.find((d) => d.id === yjsDoc)?.kind, "yjs");
        assert.equal(docs.find((d) => d.id === amDoc)?.kind, "automerge");
        assert.equal(docs.find((d) => d.id === yjsDoc)?.title, "Notes");
        await call(i, "goLive", url);
        await run(i, "bind", yjsDoc, amDoc);
      }
      const members = clientful("space", "members");
      for (const u of users) assert.ok(members.includes(u.user.slice(0, 12)), members);
    });

    // The CLI's state digest of a document (`doctor report`: `document <prefix> state <digest>`).
    const cliDigest = (doc) => {
      for (const l of clientful("doctor", "report").split("\n")) {
        const r = /^document (\S+)\s+state (\S+)/.exec(l);
        if (r && doc.startsWith(r[1])) return r[2];
      }
      return undefined;
    };
    const converged = async (want) => {
      const [a, b] = [await state(0), await state(1)];
      const ok =
        a.ytext === b.ytext && a.amtext === b.amtext && a.yDigest === b.yDigest && a.amDigest === b.amDigest &&
        a.ytext === a.yReplica && b.ytext === b.yReplica && a.amtext === a.amReplica && want(a);
      return ok ? a : null;
    };

    await t.test("concurrent edits in a Yjs and an Automerge document (browsers and CLI)", async () => {
      clientful("doc", "edit", yjsDoc, "--append", ` ${m.cli}`);
      clientful("sync");
      await Promise.all([
        run(0, "yInsert", 0, `${m.yA} `),
        run(1, "yInsert", 0, `${m.yB} `),
        run(0, "amInsert", 0, `${m.amA} `),
        run(1, "amInsert", 0, `${m.amB} `),
      ]);
      for (const i of [0, 1]) await call(i, "sync");
      const s = await until(
        "browsers converge",
        () => converged((s) => [m.cli, m.yA, m.yB].every((x) => s.ytext.includes(x)) && [m.amA, m.amB].every((x) => s.amtext.includes(x))),
        30000,
      );
      clientful("sync");
      assert.equal(clientful("doc", "print", yjsDoc, "--text"), s.ytext.trim());
      assert.equal(clientful("doc", "print", amDoc, "--text"), s.amtext.trim());
      // All three replicas (both browsers and the CLI) hold equal states.
      assert.equal(cliDigest(yjsDoc), s.yDigest);
      assert.equal(cliDigest(amDoc), s.amDigest);
    });

    await t.test("one context offline edits; back online it converges", async () => {
      await contexts[1].setOffline(true);
      await run(1, "yInsert", 0, `${m.offline} `);
      await run(0, "yInsert", 0, `${m.away} `);
      await new Promise((ok) => setTimeout(ok, 500));
      assert.ok(!(await state(1)).ytext.includes(m.away), "nothing reaches the offline page");
      await contexts[1].setOffline(false);
      await until(
        "convergence after reconnecting",
        async () => {
          await call(1, "sync").catch(() => undefined);
          return converged((s) => s.ytext.includes(m.offline) && s.ytext.includes(m.away));
        },
        45000,
      );
    });

    await t.test("a reload keeps everything (OPFS)", async () => {
      const before = await state(1);
      await pages[1].page.reload();
      await pages[1].page.waitForFunction(() => window.ready);
      await run(1, "start", { dir: "bob", vars: S3_KEYS });
      await run(1, "openSpace");
      // From OPFS alone: offline, so nothing comes from storage or the broker.
      await contexts[1].setOffline(true);
      await run(1, "bind", yjsDoc, amDoc);
      const after = await state(1);
      assert.equal(after.ytext, before.ytext);
      assert.equal(after.amtext, before.amtext);
      assert.equal(after.yDigest, before.yDigest);
      assert.equal(after.amDigest, before.amDigest);
      // The reloaded JS document still writes as this device (its own earlier edits came
      // back from the replica: Yjs would take a new client id, the provider keeps it).
      await run(1, "yInsert", 0, "reloaded ");
      await contexts[1].setOffline(false);
      await call(1, "goLive", url);
      await until(
        "convergence after the reload",
        async () => {
          await call(1, "sync");
          await call(0, "sync");
          return converged((s) => s.ytext.startsWith("reloaded "));
        },
        30000,
      );
    });

    await t.test("a photo uploaded in the browser is read by the CLI byte for byte", async () => {
      const photo = Buffer.concat([Buffer.from("\x89PNG\r\n\x1a\n", "latin1"), Buffer.from(m.photo), randomBytes(300_000)]);
      const { ref, progress } = await run(0, "putFile", [...photo]);
      assert.ok(progress.length > 0, "progress reported");
      await call(0, "sync");
      clientful("sync");
      const out = join(tmp, "photo.png");
      clientful("files", "get", ref, "--out", out);
      assert.ok(readFileSync(out).equals(photo), "the CLI read the photo byte for byte");
    });

    await t.test("presence from one context is visible in the other", async () => {
      const ids = [];
      for (const i of [0, 1]) ids.push(await pages[i].page.evaluate(() => window.app.ydoc.clientID));
      await run(0, "setPresence", { user: m.presence, cursor: 7 });
      const seen = await until("presence in the other context", async () => {
        const p = await run(1, "presence");
        return p[String(ids[0])]?.user === m.presence ? p : null;
      });
      assert.equal(seen[String(ids[0])].cursor, 7);
    });

    await t.test("a trap in a Worker: a new one reopens the device and space from OPFS and goes live again", async () => {
      const before = await state(0);
      const trapped = await run(0, "trap");
      assert.equal(trapped.name, "WorkerRestarted");
      const after = await state(0);
      assert.equal(after.restarts, 1);
      assert.equal(after.yDigest, before.yDigest);
      assert.equal(after.amDigest, before.amDigest);
      // The provider and the binding carry on over the new Worker, live.
      await run(0, "yInsert", 0, `${m.restart} `);
      await run(0, "amInsert", 0, `${m.restart} `);
      await until("convergence after the restart", () =>
        converged((s) => s.ytext.includes(m.restart) && s.amtext.includes(m.restart)),
      );
    });

    await t.test("the native admin removes the second browser user: it reads nothing new", async () => {
      clientful("space", "remove", users[1].user.slice(0, 16));
      for (const i of [0, 1]) await call(i, "sync").catch(() => undefined);
      await until("bob has no access", async () => {
        await call(1, "sync").catch(() => undefined);
        return (await call(1, "hasAccess")) === false;
      });
      // Alice writes once her device has taken the removal (and the rotated keys) in.
      await until("alice sees the removal", async () => {
        await call(0, "sync");
        return (await call(0, "members")).every((x) => x.user !== users[1].user);
      });
      const bobBefore = await state(1);
      await run(0, "yInsert", 0, `${m.removed} `);
      await call(0, "sync");
      clientful("sync");
      await new Promise((ok) => setTimeout(ok, 1000));
      await call(1, "sync").catch(() => undefined);
      const bobAfter = await state(1);
      assert.ok(!bobAfter.ytext.includes(m.removed), "the removed user read a new edit");
      assert.ok(!bobAfter.yReplica.includes(m.removed), "the removed user's replica holds a new edit");
      assert.equal(bobAfter.yDigest, bobBefore.yDigest);
    });

    await t.test("every replica ends with equal digests", async () => {
      await call(0, "sync");
      clientful("sync");
      const a = await state(0);
      for (const [doc, digest, text] of [[yjsDoc, a.yDigest, a.ytext], [amDoc, a.amDigest, a.amtext]]) {
        assert.equal(cliDigest(doc), digest, `CLI and alice on ${doc}`);
        assert.equal(clientful("doc", "print", doc, "--text"), text.trim());
      }
    });

    await t.test("the JS bindings reported no errors", async () => {
      for (const i of [0, 1]) assert.deepEqual((await state(i)).errors, [], pages[i].name);
    });

    await t.test("no marker in the bucket's objects or the broker's frames", async () => {
      broker.stop();
      await new Promise((ok) => setTimeout(ok, 300));
      const objects = await bucketObjects(endpoint, bucket, `${root}/`);
      assert.ok(objects.length > 0, "the space wrote objects");
      const broker_frames = existsSync(capture) ? readFileSync(capture) : Buffer.alloc(0);
      assert.ok(broker_frames.length > 0, "the broker carried frames");
      const page_frames = Buffer.concat(frames.flat());
      const names = ["carol", "alice", "Notes", "Tasks"];
      for (const needle of [...Object.values(m), ...names]) {
        for (const { key, body } of objects) assert.ok(!body.includes(needle), `${needle} in ${key}`);
        assert.ok(!broker_frames.includes(needle), `${needle} in the broker's frames`);
        assert.ok(!page_frames.includes(needle), `${needle} in a page's WebSocket frames`);
      }
    });
  } finally {
    broker.stop();
    await browser.close();
    await server.close();
    stopServices();
    rmSync(tmp, { recursive: true, force: true });
  }
});
