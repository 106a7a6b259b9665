// The web demo as a newcomer runs it (issue 16 Build item 5): the real `clientful demo
// --web` process (embedded broker, WebDAV storage with CORS on a local folder, the demo
// app's static server, all on loopback), and two Chromium contexts (two users) on the URL
// it prints. The first creates the space and shows an invite link; the second opens the
// link and joins once the first tab's periodic sync admitted it. Both type into the notes
// (Yjs) and add tasks (Automerge) through the UI, concurrently; the notes, the tasks and
// the replicas' digests converge; presence shows both names in both tabs; a photo attached
// in one tab is shown in the other, byte for byte. Then the README screenshot
// (docs/img/web-demo.png with CLIENTFUL_SCREENSHOT=1) is taken of the second tab, and the storage folder is scanned
// for the plaintext markers (ciphertext only).
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildNative, launchChromium, repo, start, until, watchErrors } from "./harness.mjs";

// The README screenshot: written to docs/img/ when CLIENTFUL_SCREENSHOT=1 (to refresh the
// committed one), else next to the run's temporary files so a test run leaves the tree clean.
const SCREENSHOT =
  process.env.CLIENTFUL_SCREENSHOT === "1"
    ? join(repo, "docs/img/web-demo.png")
    : join(tmpdir(), `clientful-web-demo-${process.pid}.png`);

/** Every file under `dir`. */
function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)],
  );
}

test("clientful demo --web: two tabs join one space, edit notes and tasks, and converge", async () => {
  const { cli } = buildNative();
  const dir = mkdtempSync(join(tmpdir(), "clientful-web-demo-"));
  const demo = start(cli, ["demo", "--web", "--web-root", join(repo, "packages/web"), "--dir", dir]);
  const browser = await launchChromium();
  try {
    const appUrl = /open:\s+(\S+)/.exec(await demo.waitFor(/^open:/, 60000))[1];
    const storageDir = /\(folder (.+)\)$/.exec(await demo.waitFor(/^storage:/))[1];
    assert.match(appUrl, /^http:\/\/localhost:\d+\/demo\/$/);
    const m = {
      a: `alpha-${randomBytes(4).toString("hex")}`,
      b: `bravo-${randomBytes(4).toString("hex")}`,
      taskA: `task-a-${randomBytes(4).toString("hex")}`,
      taskB: `task-b-${randomBytes(4).toString("hex")}`,
    };

    const open = async (name, url) => {
      const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
      const page = await context.newPage();
      const errors = watchErrors(page);
      await page.goto(url);
      await page.fill("#name", name);
      await page.click("#setup-go");
      return { context, page, errors, name };
    };
    const state = (tab) => tab.page.evaluate(() => window.demo.state());
    // Presence: both names in both tabs (awareness over the space's sealed ephemeral messages).
    const presenceOk = (s) => Array.isArray(s.presence) && s.presence.join() === "Alice,Bob";

    // Tab 1 creates the space and shows the invite link.
    const alice = await open("Alice", appUrl);
    const link = await until("the invite link", () => alice.page.inputValue("#invite-link").catch(() => ""), 60000);
    assert.match(link, /#invite=/);
    await alice.page.waitForSelector("#app:not([hidden])");

    // Tab 2 opens the link and joins (admitted by tab 1's next sync).
    const bob = await open("Bob", link);
    await bob.page.waitForSelector("#app:not([hidden])", { timeout: 90000 });

    // Concurrent edits through the UI: both type into the notes, both add a task.
    await Promise.all([
      alice.page.locator("#notes").pressSequentially(`${m.a} `),
      bob.page.locator("#notes").pressSequentially(`${m.b} `),
    ]);
    await alice.page.fill("#task-title", m.taskA);
    await alice.page.press("#task-title", "Enter");
    await bob.page.fill("#task-title", m.taskB);
    await bob.page.press("#task-title", "Enter");
    await bob.page.locator("#tasks li", { hasText: m.taskA }).locator("input").check({ timeout: 30000 });

    // A photo attached in tab 1 is shown in tab 2 (a PNG Chromium renders: a gradient).
    const photoPage = await alice.context.newPage();
    await photoPage.setContent(
      '<div id="p" style="width:320px;height:240px;background:linear-gradient(135deg,#f6d365,#fda085 45%,#5b8def)"></div>',
    );
    const photo = await photoPage.locator("#p").screenshot();
    await photoPage.close();
    await alice.page.setInputFiles("#photo", { name: "sunset.png", mimeType: "image/png", buffer: photo });

    let last;
    const s = await until(
      "both tabs converge",
      async () => {
        const [a, b] = (last = [await state(alice), await state(bob)]);
        const ok =
          a.notes === b.notes &&
          a.notes === a.notesReplica &&
          b.notes === b.notesReplica &&
          a.notesDigest === b.notesDigest &&
          a.tasksDigest === b.tasksDigest &&
          [m.a, m.b].every((x) => a.notes.includes(x)) &&
          JSON.stringify(a.tasks) === JSON.stringify(b.tasks) &&
          a.tasks.some((t) => t.title === m.taskA && t.done) &&
          a.tasks.some((t) => t.title === m.taskB) &&
          b.photos.some((p) => p.size === photo.length) &&
          presenceOk(a) &&
          presenceOk(b);
        return ok ? [a, b] : null;
      },
      90000,
    ).catch((e) => {
      throw new Error(`${e.message}; last states: ${JSON.stringify(last)}`);
    });
    // The app makes a Tasks change again on a fresh binding when the session refuses it
    // for a moved Automerge actor (a known session issue, see packages/web/demo/app.js).
    const rebinds = s[0].tasksRebinds + s[1].tasksRebinds;
    if (rebinds > 0) console.log(`# Tasks changes made again after an actor refusal: ${rebinds}`);
    assert.deepEqual(s[0].errors, []);
    assert.deepEqual(s[1].errors, []);
    // The textareas show the converged text.
    assert.equal(await alice.page.inputValue("#notes"), s[0].notes);
    assert.equal(await bob.page.inputValue("#notes"), s[1].notes);
    await bob.page.locator("#photos img").first().waitFor();

    // The README screenshot, of the joined tab.
    await bob.page.screenshot({ path: SCREENSHOT });
    assert.ok(statSync(SCREENSHOT).size < 300 * 1024, "the screenshot stays under 300 KB");

    // The WebDAV folder holds ciphertext only.
    const stored = files(storageDir);
    assert.ok(stored.length > 0, "the browsers wrote to the demo's storage");
    for (const f of stored) {
      const bytes = readFileSync(f);
      for (const marker of Object.values(m)) assert.ok(!bytes.includes(Buffer.from(marker)), `${f} holds ${marker}`);
    }
    for (const tab of [alice, bob]) {
      assert.deepEqual(tab.errors.filter((e) => !/favicon/.test(e)), []);
    }
  } finally {
    await browser.close();
    demo.stop();
    rmSync(dir, { recursive: true, force: true });
    if (process.env.CLIENTFUL_SCREENSHOT !== "1") rmSync(SCREENSHOT, { force: true });
  }
});
