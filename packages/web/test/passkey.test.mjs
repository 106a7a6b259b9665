// Passkeys (issue 18, item 4; spec §14.11, §14.12) in real headless Chromium, with the
// DevTools protocol's WebAuthn virtual authenticator (ctap2, internal, resident keys,
// user verification, PRF) on http://localhost:
// - a passkey is registered; its COSE key comes from the attested credential data
//   (clientful-web's webauthnCredential); the Worker creates a device whose home is
//   sealed under the passkey's PRF output (Device.createWithPasskey);
// - an assertion over the user key's binding (attestationChallenge) is made and its
//   evidence (webauthnEvidence) verifies in wasm (verifyWebauthn) AND natively (the
//   same bytes given to `clientful-attest`'s attest_check example): same subject;
// - bad assertions get their class in both: a tampered clientDataJSON BAD_SIGNATURE,
//   a verifier expecting another origin WRONG_CONTEXT, an assertion over another
//   challenge WRONG_CONTEXT, another user key WRONG_CONTEXT;
// - after a reload, Device.open is [LOCKED]; a second passkey's PRF output leaves it
//   [LOCKED]; the first passkey's PRF output unlocks it (openWithPasskey): same user
//   and device.
// A second test: SIWE messages signed by viem (scripts/attest/siwe-sign.mjs, fresh secp256k1
// keys) verify in the page's wasm build (verifySiwe); a wrong domain, nonce (another salt),
// chain and an expired message give WRONG_CONTEXT, WRONG_CONTEXT, WRONG_CONTEXT, EXPIRED.
// CLIENTFUL_PASSKEY_FIXTURE=FILE writes the run's evidence to FILE (how
// reference/clientful-attest/tests/fixtures/chromium-passkey.json was captured).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { launchChromium, repo, serveStatic, targetDir, watchErrors } from "./harness.mjs";

let server;
let browser;
let check;

before(async () => {
  execFileSync("cargo", ["build", "-q", "-p", "clientful-attest", "--example", "attest_check"], {
    cwd: repo,
    stdio: "inherit",
    env: { ...process.env, CARGO_TARGET_DIR: targetDir },
  });
  check = join(targetDir, "debug/examples/attest_check");
  server = await serveStatic();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** The native verdict on WebAuthn evidence: { subject } or { class, message }. */
function nativeVerify(evidence, userKey, salt, origins) {
  const input = { kind: "webauthn", evidence, userKey, salt, origins, rpIds: ["localhost"], requireUserVerification: true };
  return JSON.parse(execFileSync(check, { input: JSON.stringify(input), encoding: "utf8" }));
}

test("a passkey attests the user key (wasm and native verify the same bytes), bad assertions get their class, and its PRF unlocks the sealed device home after a reload", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = watchErrors(page);
  await page.goto(`${server.url}/test/pages/passkey.html`);
  await page.waitForFunction(() => window.ready);
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      hasPrf: true,
    },
  });
  const origin = server.url;
  const dir = `pk${process.pid}x${Date.now()}`;

  // Register passkey A; the home is created sealed under its PRF output.
  const credA = await page.evaluate(() => window.register("alice"));
  assert.ok(credA.sameId, "the credential id in the attested data is the rawId");
  assert.ok(credA.prfEnabled, "the virtual authenticator supports PRF");
  assert.match(credA.coseKey, /^a5/, "an ES256 COSE key is a 5-entry map");
  const prfA = await page.evaluate(async (c) => (await window.assertion(c.id, crypto.getRandomValues(new Uint8Array(32)))).prf, credA);
  assert.equal(prfA?.length, 32);
  const created = await page.evaluate((o) => window.call("create", o), { dir, name: "Alice", prf: prfA });
  assert.ok(created.ok, `createWithPasskey: ${created.error}`);
  const userKey = created.ok.user;

  // An attestation of the user key by passkey A: valid in wasm and natively.
  const att = await page.evaluate(([c, k]) => window.attest(c, k), [credA, userKey]);
  assert.match(att.clientDataJSON, /"type":"webauthn.get"/);
  const wasm = await page.evaluate(([a, k]) => window.verify(a.evidence, k, a.salt, [a.origin], ["localhost"]), [att, userKey]);
  assert.equal(wasm.subject, `localhost|${credA.id}`, JSON.stringify(wasm));
  const native = nativeVerify(att.evidence, userKey, att.salt, [origin]);
  assert.deepEqual(native, { subject: wasm.subject });
  if (process.env.CLIENTFUL_PASSKEY_FIXTURE) {
    writeFileSync(
      process.env.CLIENTFUL_PASSKEY_FIXTURE,
      JSON.stringify({ kind: "webauthn", evidence: att.evidence, userKey, salt: att.salt, origins: [origin], rpIds: ["localhost"], requireUserVerification: true, subject: wasm.subject }, null, 2) + "\n",
    );
  }

  // Bad assertions: one class each, the same in wasm and natively.
  const both = async (evidence, key, salt, origins) => {
    const w = await page.evaluate(([e, k, s, o]) => window.verify(e, k, s, o, ["localhost"]), [evidence, key, salt, origins]);
    const n = nativeVerify(evidence, key, salt, origins);
    assert.equal(w.class, n.class, `wasm ${JSON.stringify(w)} native ${JSON.stringify(n)}`);
    return w.class;
  };
  // clientDataJSON tampered (still valid JSON: a space added after the origin's value).
  const cdjHex = Buffer.from(att.clientDataJSON).toString("hex");
  const tamperedCdj = Buffer.from(att.clientDataJSON.replace(`"origin":"${origin}"`, `"origin": "${origin}"`)).toString("hex");
  assert.notEqual(cdjHex, tamperedCdj);
  const lenHex = (h) => (h.length / 2).toString(16).padStart(4, "0");
  const tampered = att.evidence.replace(lenHex(cdjHex) + cdjHex, lenHex(tamperedCdj) + tamperedCdj);
  assert.notEqual(tampered, att.evidence);
  assert.equal(await both(tampered, userKey, att.salt, [origin]), "BAD_SIGNATURE");
  // A verifier that expects another origin.
  assert.equal(await both(att.evidence, userKey, att.salt, ["https://app.example.com"]), "WRONG_CONTEXT");
  // An assertion over another challenge (the binding of another salt).
  const other = await page.evaluate(([c, k]) => window.attest(c, k, { challengeFor: "other" }), [credA, userKey]);
  assert.equal(await both(other.evidence, userKey, other.salt, [origin]), "WRONG_CONTEXT");
  // Checked against another user key.
  assert.equal(await both(att.evidence, "ab".repeat(32), att.salt, [origin]), "WRONG_CONTEXT");
  // A signature byte flipped.
  const sigFlipped = att.evidence.slice(0, -2) + ((parseInt(att.evidence.slice(-2), 16) ^ 1).toString(16).padStart(2, "0"));
  assert.equal(await both(sigFlipped, userKey, att.salt, [origin]), "BAD_SIGNATURE");

  // Passkey B: another credential, another PRF output.
  const credB = await page.evaluate(() => window.register("mallory"));
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  assert.equal(credentials.length, 2, "the virtual authenticator holds passkeys A and B");

  // Reload: the Worker is gone; the home stays sealed.
  await page.reload();
  await page.waitForFunction(() => window.ready);
  const locked = await page.evaluate((d) => window.call("open", { dir: d }), dir);
  assert.equal(locked.class, "LOCKED", JSON.stringify(locked));
  assert.match(locked.error, /sealed under a passkey/);
  const prfB = await page.evaluate(async (c) => (await window.assertion(c.id, crypto.getRandomValues(new Uint8Array(32)))).prf, credB);
  assert.notDeepEqual(prfB, prfA);
  await page.evaluate(() => window.startWorker());
  const wrong = await page.evaluate(([d, p]) => window.call("openWithPasskey", { dir: d, prf: p }), [dir, prfB]);
  assert.equal(wrong.class, "LOCKED", JSON.stringify(wrong));
  assert.match(wrong.error, /does not unlock/);
  // Passkey A again (a fresh assertion after the reload): unlocked, same identity.
  const prfA2 = await page.evaluate(async (c) => (await window.assertion(c.id, crypto.getRandomValues(new Uint8Array(32)))).prf, credA);
  assert.deepEqual(prfA2, prfA, "the same passkey and PRF input give the same output");
  await page.evaluate(() => window.startWorker());
  const opened = await page.evaluate(([d, p]) => window.call("openWithPasskey", { dir: d, prf: p }), [dir, prfA2]);
  assert.ok(opened.ok, `openWithPasskey: ${opened.error}`);
  assert.deepEqual(opened.ok, created.ok);

  assert.deepEqual(errors, []);
  await context.close();
});

test("SIWE messages signed by viem verify in the browser's wasm build, and bad ones get their class", async () => {
  const wallet = join(repo, "scripts/attest");
  if (!existsSync(join(wallet, "node_modules/viem/package.json"))) {
    execFileSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: wallet, stdio: "inherit" });
  }
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = watchErrors(page);
  await page.goto(`${server.url}/test/pages/passkey.html`);
  await page.waitForFunction(() => window.ready);

  const userKey = randomBytes(32).toString("hex");
  const salt = randomBytes(16);
  const t = Date.UTC(2026, 11, 7, 1, 0, 0);
  const nonceOf = (s) => page.evaluate(([k, h]) => window.hex(window.cf.attestationChallenge(k, Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16)))), [userKey, s.toString("hex")]);
  const nonce = await nonceOf(salt);
  const resource = `clientful:user-key:${Buffer.from(userKey, "hex").toString("base64url")}`;
  const req = (o) => ({
    domain: "app.example.com",
    uri: "https://app.example.com/attest",
    chainId: 1,
    nonce,
    issuedAt: new Date(t - 5000).toISOString(),
    resources: [resource],
    ...o,
  });
  const requests = [
    req({}),
    req({ domain: "evil.example.com" }),
    req({ nonce: await nonceOf(randomBytes(16)) }),
    req({ chainId: 5 }),
    req({ expirationTime: new Date(t - 120000).toISOString() }),
  ];
  const signed = JSON.parse(execFileSync("node", ["siwe-sign.mjs"], { cwd: wallet, input: JSON.stringify(requests), encoding: "utf8" }));
  const verdicts = [];
  for (const s of signed) {
    const evidence = Buffer.concat([Buffer.from(s.message, "utf8"), Buffer.from(s.signature.slice(2), "hex")]).toString("hex");
    verdicts.push(await page.evaluate((a) => window.verifySiwe(...a), [evidence, userKey, salt.toString("hex"), t, ["app.example.com"], [1, 10]]));
  }
  assert.deepEqual(verdicts[0], { subject: `eip155:1:${signed[0].address}` });
  assert.deepEqual(verdicts.slice(1).map((v) => v.class), ["WRONG_CONTEXT", "WRONG_CONTEXT", "WRONG_CONTEXT", "EXPIRED"]);
  assert.deepEqual(errors, []);
  await context.close();
});
