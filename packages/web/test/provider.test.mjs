// ClientfulProvider in real headless Chromium: two browser contexts (two devices), each
// with a JS Y.Doc bound to a clientful-doc replica in sync over a real `clientful broker`
// room. Concurrent edits in both converge in the JS documents and the replicas (equal
// digests); one context goes offline (context.setOffline), both keep editing, and it
// catches up when back; presence set in one (y-protocols awareness, carried as signed and
// sealed ephemeral messages) shows in the other, and goes when it leaves; a JS update under
// another client id is refused; no frame carries the text or the presence in the clear.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { openPage, until, withBrokerAndBrowser } from "./harness.mjs";

const hex = () => randomBytes(32).toString("hex");

test("two browsers edit one Yjs document through ClientfulProvider, online and offline", async () => {
  await withBrokerAndBrowser(async ({ url, server, browser }) => {
    const creds = { url, space: hex(), doc: hex(), epochId: hex(), epochSecret: hex() };
    const seeds = [hex(), hex()];
    const marker = `secret-${randomBytes(6).toString("hex")}`;

    const contexts = [await browser.newContext(), await browser.newContext()];
    const opened = [];
    for (const c of contexts) opened.push(await openPage(c, `${server.url}/test/pages/provider.html`));
    const pages = opened.map((o) => o.page);
    const errors = opened.map((o) => o.errors);
    const frames = () => opened.flatMap((o) => o.frames);
    // Signers in device-index order: their public keys (DocRoom derives them from seeds).
    const keys = await pages[0].evaluate(
      async (s) => {
        const { devicePublicKey } = await import("/pkg/clientful_web.js");
        return s.map((x) => devicePublicKey(x));
      },
      seeds,
    );
    const ids = [];
    for (const [i, page] of pages.entries()) {
      ids.push(await page.evaluate((a) => window.connect(a), { ...creds, seed: seeds[i], signers: keys }));
    }
    assert.notEqual(ids[0], ids[1], "each device has its own Yjs client id");
    const state = (i) => pages[i].evaluate(() => window.state());
    const converged = async (want) => {
      const [a, b] = [await state(0), await state(1)];
      return a.digest === b.digest && a.text === b.text && want(a.text) && a.text === a.replica.text && b.text === b.replica.text
        ? [a, b]
        : null;
    };

    // Concurrent edits in both documents.
    await pages[0].evaluate((t) => window.insert(0, t), `hello ${marker} `);
    await pages[1].evaluate(() => window.insert(0, "world "));
    await pages[1].evaluate(() => window.setData("done", true));
    const [a] = await until("online convergence", () =>
      converged((t) => t.includes(marker) && t.includes("world ")),
    );
    assert.deepEqual(a.data, { done: true });

    // The second device goes offline; both keep editing; it catches up when back.
    await contexts[1].setOffline(true);
    await pages[0].evaluate(() => window.insert(0, "while-away-0 "));
    await pages[1].evaluate(() => window.insert(0, "offline-1 "));
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(!(await state(1)).text.includes("while-away-0"), "nothing reaches an offline page");
    await contexts[1].setOffline(false);
    const [final] = await until(
      "convergence after reconnecting",
      () => converged((t) => t.includes("while-away-0") && t.includes("offline-1")),
      30000,
    );
    for (const part of [marker, "world ", "while-away-0 ", "offline-1 "]) {
      assert.equal(final.text.split(part).length, 2, `${part} once in ${final.text}`);
    }

    // Presence: set in the first, visible in the second under the first's client id.
    const who = `alice-${randomBytes(6).toString("hex")}`;
    await pages[0].evaluate((w) => window.setPresence({ user: w, cursor: 3 }), who);
    const seen = await until("presence in the other context", async () => {
      const p = await pages[1].evaluate(() => window.presence());
      return p[String(ids[0])]?.user === who ? p : null;
    });
    assert.equal(seen[String(ids[0])].cursor, 3);

    // A Y.Doc with another client id cannot write as this device.
    assert.equal(await pages[0].evaluate(() => window.foreignWrite()), "INVALID_OPERATION");

    for (const [i, page] of pages.entries()) {
      const s = await page.evaluate(() => window.state());
      assert.deepEqual(s.errors, [], `page ${i} provider errors`);
      // The reconnection attempts while offline are logged by the browser itself.
      const unexpected = errors[i].filter((e) => !/ERR_INTERNET_DISCONNECTED/.test(e));
      assert.deepEqual(unexpected, [], `page ${i} console errors`);
    }
    assert.ok(frames().length > 0);
    for (const f of frames()) {
      assert.ok(!f.includes(marker), "a frame carries the text in the clear");
      assert.ok(!f.includes(who), "a frame carries the presence in the clear");
    }

    // Leaving removes the presence from the other context.
    await pages[0].evaluate(() => window.leave());
    await until("presence removed after leaving", async () => {
      const p = await pages[1].evaluate(() => window.presence());
      return !(String(ids[0]) in p) || p[String(ids[0])] === null ? true : null;
    });
  });
});
