// The built module loads in Node and in headless Chromium and answers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { launchChromium, packageRoot, serveStatic, watchErrors } from "./harness.mjs";

const cargoVersion = async () => {
  const toml = await readFile(join(packageRoot, "../../Cargo.toml"), "utf8");
  return /\[workspace\.package\][^[]*?version = "([^"]+)"/.exec(toml)[1];
};

test("the module loads in Node", async () => {
  const mod = await import(join(packageRoot, "pkg/clientful_web.js"));
  mod.initSync({ module: await readFile(join(packageRoot, "pkg/clientful_web_bg.wasm")) });
  assert.equal(mod.version(), await cargoVersion());
});

test("the module loads in headless Chromium", async () => {
  const server = await serveStatic();
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const errors = watchErrors(page);
    await page.goto(`${server.url}/test/pages/smoke.html`);
    const result = await page.waitForFunction(() => window.result).then((h) => h.jsonValue());
    assert.equal(result.version, await cargoVersion());
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
