// The live room in the browser against a real broker: a `clientful broker` process on
// loopback (ws://), a Chromium page running clientful-net's room driver compiled to wasm
// (Room, over the page's WebSocket) and a native member (clientful-net's `room_peer`
// example, the same driver on tokio) in one room; the page takes the room's events from a
// setOnEvent callback (pushed, no polling). Messages and ephemeral messages go
// both ways; the page goes offline (context.setOffline), the native side keeps
// publishing, and the page resumes from its cursor with nothing lost and nothing
// duplicated; no frame the page sent or received carries the plaintext. A second test
// keeps a Yjs document replica in sync over the room (clientful-net's DocClient in both),
// with edits made while the page is offline.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { openPage, start, until, withBrokerAndBrowser } from "./harness.mjs";

test("a page and a native client share a broker room; the page resumes after going offline", async () => {
  await withBrokerAndBrowser(async ({ peer, url, server, browser, track }) => {
    const hex = () => randomBytes(32).toString("hex");
    const creds = { space: hex(), epochId: hex(), epochSecret: hex() };
    const pageSeed = hex();
    const nativeSeed = hex();
    // Unique markers, so the plaintext scan cannot match by accident.
    const marker = `plain-${randomBytes(6).toString("hex")}`;

    const context = await browser.newContext();
    // frames: every frame the page's WebSockets carry, as the broker sees them.
    const { page, errors, frames } = await openPage(context, `${server.url}/test/pages/room.html`);
    const pageKey = await page.evaluate((s) => window.devicePublicKey(s), pageSeed);

    const native = track(start(peer, [url, creds.space, creds.epochId, creds.epochSecret, nativeSeed, pageKey]));
    const nativeKey = (await native.waitFor(/^device /)).split(" ")[1];
    await native.waitFor(/^joined resumed=false/);
    await page.evaluate((a) => window.roomConnect(a), { url, ...creds, seed: pageSeed, members: [nativeKey] });
    const log = () => page.evaluate(() => window.roomLog);
    const delivered = async () => (await log()).filter((e) => e.kind === "deliver").map((e) => e.text);
    await until("page joined", async () => (await log()).some((e) => e.kind === "joined"));

    // Messages both ways.
    native.send(`pub ${marker} native-1`);
    await until("page got native-1", async () => (await delivered()).includes(`${marker} native-1`));
    await page.evaluate((m) => window.roomPublish(`${m} page-1`), marker);
    await native.waitFor(new RegExp(`^deliver ${marker} page-1$`));

    // Ephemeral messages both ways, signed by the sender's device and checked.
    native.send(`eph ${marker} native-eph`);
    const eph = await until("page got the ephemeral message", async () =>
      (await log()).find((e) => e.kind === "ephemeral"),
    );
    assert.equal(eph.text, `${marker} native-eph`);
    assert.equal(eph.sender, nativeKey);
    await page.evaluate((m) => window.roomEphemeral(`${m} page-eph`), marker);
    await native.waitFor(new RegExp(`^ephemeral ${marker} page-eph$`));

    // Offline: the page loses the broker; the native side keeps publishing; the page
    // publishes into its outbox.
    await context.setOffline(true);
    await until("page saw the disconnect", async () => (await log()).some((e) => e.kind === "disconnected"));
    const offline = [];
    for (let i = 0; i < 20; i++) {
      offline.push(`${marker} offline-${i}`);
      native.send(`pub ${marker} offline-${i}`);
    }
    await page.evaluate((m) => window.roomPublish(`${m} page-while-offline`), marker);
    // Let the native publishes reach the broker while the page is still away, and let
    // the page's reconnection attempts fail.
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(!(await delivered()).some((t) => t.includes("offline-")), "nothing reaches an offline page");

    await context.setOffline(false);
    await until(
      "page rejoined",
      async () => (await log()).filter((e) => e.kind === "joined").length >= 2,
      30000,
    );
    const rejoin = (await log()).filter((e) => e.kind === "joined")[1];
    assert.equal(rejoin.resumed, true, "the page resumed at the same broker");
    native.send(`pub ${marker} native-after`);
    await until("page caught up", async () => (await delivered()).includes(`${marker} native-after`));
    await native.waitFor(new RegExp(`^deliver ${marker} page-while-offline$`));

    // Nothing lost, nothing duplicated, in order. The page's resume cursor counts what
    // was delivered to it, not its own acknowledged publishes, so the broker's backlog
    // may replay the page's own `page-1` once on resume (clientful-broker-proto's client
    // session, the same natively); what the native side sent arrives exactly once.
    const got = await delivered();
    const fromNative = got.filter((t) => !t.startsWith(`${marker} page-`));
    assert.deepEqual(fromNative, [`${marker} native-1`, ...offline, `${marker} native-after`]);
    const own = got.filter((t) => t.startsWith(`${marker} page-`));
    assert.ok(own.every((t, i) => own.indexOf(t) === i), `own payload twice: ${own}`);
    const nativeGot = native.lines.filter((l) => l.startsWith("deliver "));
    assert.deepEqual(nativeGot, [`deliver ${marker} page-1`, `deliver ${marker} page-while-offline`]);
    assert.ok(!native.lines.some((l) => l.startsWith("bad ")), native.lines.join("\n"));
    assert.ok(!(await log()).some((e) => e.kind === "rejected"));
    // Every event was pushed to the page's setOnEvent callback: nothing waits in the
    // polling queue.
    assert.equal(await page.evaluate(() => window.room.takeEvents().length), 0);

    // The broker saw ciphertext only: no frame of the page's sockets holds the marker,
    // while the page opened every payload to text holding it.
    assert.ok(frames.length > got.length, `captured ${frames.length} frames`);
    const needle = Buffer.from(marker);
    assert.equal(frames.filter((f) => f.includes(needle)).length, 0, "a frame carries plaintext");
    const sealed = (await log()).filter((e) => e.kind === "deliver").map((e) => Buffer.from(e.sealed));
    assert.ok(sealed.every((s) => !s.includes(needle)));
    assert.deepEqual(errors.filter((e) => !/ERR_INTERNET_DISCONNECTED/.test(e)), []);
  });
});

test("a document replica in the page and a native one converge over the room, offline edits included", async () => {
  await withBrokerAndBrowser(async ({ peer, url, server, browser, track }) => {
    const hex = () => randomBytes(32).toString("hex");
    const creds = { space: hex(), doc: hex(), epochId: hex(), epochSecret: hex() };
    const pageSeed = hex();
    const nativeSeed = hex();
    const marker = `plain-${randomBytes(6).toString("hex")}`;
    const context = await browser.newContext();
    const { page, errors, frames } = await openPage(context, `${server.url}/test/pages/room.html`);
    const signers = await page.evaluate((s) => s.map((x) => window.devicePublicKey(x)), [pageSeed, nativeSeed]);
    const native = track(start(peer, ["--doc", url, creds.space, creds.doc, creds.epochId, creds.epochSecret, nativeSeed, "yjs", ...signers]));
    await page.evaluate((a) => window.docConnect(a), { url, ...creds, seed: pageSeed, signers, crdt: "yjs" });
    const pageState = () => page.evaluate(() => window.docState());
    let asked = 0;
    const nativeState = async () => {
      asked += 1;
      native.send("state");
      await until("native state", async () => native.lines.filter((l) => l.startsWith("state ")).length >= asked);
      const [, joins, digest, ...json] = native.lines.filter((l) => l.startsWith("state "))[asked - 1].split(" ");
      return { joins: Number(joins), digest, json: json.join(" ") };
    };
    const converged = async (texts) => {
      const [a, b] = [await pageState(), await nativeState()];
      return a.digest === b.digest && texts.every((t) => a.json.includes(t)) ? a : null;
    };
    await until("page joined", async () => (await pageState()).joins >= 1);
    await until("native joined", async () => (await nativeState()).joins >= 1);

    await page.evaluate((m) => window.docInsert(0, `${m} page-a `), marker);
    native.send(`ins ${marker} native-a `);
    await until("online edits converge", () => converged([`${marker} page-a`, `${marker} native-a`]));

    // Offline: both sides edit; the page's edit waits in its outbox.
    await context.setOffline(true);
    await new Promise((r) => setTimeout(r, 300));
    await page.evaluate((m) => window.docInsert(0, `${m} page-offline `), marker);
    for (let i = 0; i < 3; i++) native.send(`ins ${marker} native-offline-${i} `);
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(!(await pageState()).json.includes("native-offline"), "an offline page received an edit");
    assert.ok(!(await nativeState()).json.includes("page-offline"), "an offline page's edit arrived");

    await context.setOffline(false);
    await until("page rejoined", async () => (await pageState()).joins >= 2, 30000);
    const texts = [`${marker} page-a`, `${marker} native-a`, `${marker} page-offline`,
      ...[0, 1, 2].map((i) => `${marker} native-offline-${i}`)];
    const end = await until("edits converge after reconnecting", () => converged(texts), 30000);
    for (const t of texts) assert.equal(end.json.split(t).length - 1, 1, `${t} once in ${end.json}`);
    assert.ok(!native.lines.some((l) => l.startsWith("bad ")), native.lines.join("\n"));
    const needle = Buffer.from(marker);
    assert.ok(frames.length > 0);
    assert.equal(frames.filter((f) => f.includes(needle)).length, 0, "a frame carries plaintext");
    assert.deepEqual(errors.filter((e) => !/ERR_INTERNET_DISCONNECTED/.test(e)), []);
  });
});
