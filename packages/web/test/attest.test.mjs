// Attestations published from a page and the user-key rotation in the browser (issue 18,
// spec §14, §5.7), in real headless Chromium: the Clientful facade (the SDK in a
// Worker, its device in OPFS) is alice; bob is a native `clientful` CLI device, the
// space's admin, on S3 (SeaweedFS, CLIENTFUL_S3_*; started here when unset).
// 1. Attestations: alice's page registers a passkey in the DevTools WebAuthn virtual
//    authenticator, asserts over the binding of space.attestationNonce() and publishes
//    it with space.attest; the same evidence published again is a replay; a tampered
//    assertion is refused by attest() ([BAD_SIGNATURE]); a SIWE message signed by viem
//    (fresh secp256k1 key) is published too, and one naming another domain is refused
//    ([WRONG_CONTEXT]). Bob syncs and lists (`space attestations`): the passkey and SIWE
//    records verified, the replay REPLAY, and under another origin WRONG_CONTEXT; the
//    page's own attestations(context) gives the same verdicts.
// 2. Rotation: alice's page rotates the user key (device.rotateUserKey, with a new sealed
//    backup) with the space open; the first attempt is cut off (the browser offline) and
//    a reloaded page resumes it from the pending state in OPFS. Bob sees the new key as
//    the member (the old one gone), reads the page's post-rotation edit, the page reads
//    bob's; and a device certified by the old key (restored natively from the page's old
//    sealed backup) is refused by bob (REMOVED_MEMBER).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launchChromium, repo, serveStatic, targetDir } from "./harness.mjs";

const keys = { AWS_ACCESS_KEY_ID: "clientful", AWS_SECRET_ACCESS_KEY: "clientful-secret" };
let services;
let server;
let browser;
let cli;
let tmp;

before(async () => {
  if (!process.env.CLIENTFUL_S3_ENDPOINT) {
    services = mkdtempSync(join(tmpdir(), "clientful-web-attest-"));
    const out = execFileSync("bash", [join(repo, "scripts/services/s3.sh"), "start", services], { encoding: "utf8" });
    for (const [, k, v] of out.matchAll(/export (\w+)=(\S+)/g)) process.env[k] = v;
  }
  // The CLI only (the harness's buildNative also builds the room peer, not needed here).
  execFileSync("cargo", ["build", "-q", "-p", "clientful-cli", "--bin", "clientful"], {
    cwd: repo,
    stdio: "inherit",
    env: { ...process.env, CARGO_TARGET_DIR: targetDir },
  });
  cli = join(targetDir, "debug/clientful");
  tmp = mkdtempSync(join(tmpdir(), "clientful-web-attest-cli-"));
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
    stdio: ["ignore", "pipe", "pipe"],
  });
}
/** Runs the native CLI, expecting failure; returns stderr. */
function nativeFails(home, ...args) {
  try {
    native(home, ...args);
  } catch (e) {
    return String(e.stderr);
  }
  assert.fail(`clientful ${args.join(" ")} should fail`);
}
const lastLine = (s) => s.trim().split("\n").at(-1).trim();

/**
 * Bob (native) creates a space on S3 with a Yjs document `Notes` ("hello") and invites;
 * alice's page (a new context) creates her device and joins. Returns the page helpers.
 */
async function setup(tag) {
  const storage = `s3://${process.env.CLIENTFUL_S3_BUCKET ?? "clientful-test"}/${tag}?endpoint=${process.env.CLIENTFUL_S3_ENDPOINT}`;
  const bob = `bob-${tag}`;
  native(bob, "identity", "create", "--name", "bob");
  native(bob, "space", "create", "team", "--storage", storage);
  const notes = lastLine(native(bob, "doc", "new", "--crdt", "yjs", "--title", "Notes"));
  native(bob, "doc", "edit", notes, "--append", "hello");
  const code = lastLine(native(bob, "invite", "create", "--role", "writer"));
  native(bob, "sync");

  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const open = async () => {
    await page.goto(`${server.url}/test/pages/attest.html`);
    await page.waitForFunction(() => window.ready);
  };
  await open();
  const raw = (f, ...args) => page.evaluate(([f, args]) => window[f](...args), [f, args]);
  const run = async (f, ...args) => {
    const r = await raw(f, ...args);
    assert.equal(r.error, undefined, `${f}: ${JSON.stringify(r.error)}`);
    return r.ok;
  };
  const dir = `alice${process.pid}x${Date.now()}`;
  const alice = await run("start", { dir, name: "alice", vars: keys });
  await run("accept", code, storage);
  native(bob, "sync");
  await run("space", "sync");
  assert.equal(await run("space", "hasAccess"), true);
  const docs = await run("space", "documents");
  const notesId = docs.find((d) => d.id.startsWith(notes)).id;
  assert.equal(await run("space", "text", notesId), "hello");
  return { bob, notes, notesId, context, page, errors, open, raw, run, dir, alice };
}

test("a page publishes passkey and SIWE attestations into a space; a native member verifies them, and bad ones get their class", async () => {
  const wallet = join(repo, "scripts/attest");
  if (!existsSync(join(wallet, "node_modules/viem/package.json"))) {
    execFileSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: wallet, stdio: "inherit" });
  }
  const s = await setup(`web-attest-${process.pid}-${Date.now()}`);
  const { bob, page, context, run, raw } = s;
  try {
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true },
    });
    const credentialId = await run("register", "alice");
    const subject = `localhost|${credentialId}`;

    // The passkey's assertion over the binding, published; the same evidence again (a replay).
    const n = await run("passkeyEvidence");
    assert.equal(n.userKey, s.alice.user);
    const first = await run("attestEvidence");
    assert.deepEqual({ kind: first.kind, subject: first.subject }, { kind: "webauthn", subject });
    const again = await run("attestEvidence");
    assert.notEqual(again.id, first.id);
    // A tampered assertion is refused before it is published.
    await run("passkeyEvidence", { tamper: true });
    const tampered = await raw("attestEvidence");
    assert.equal(tampered.error?.name, "ClientfulError", JSON.stringify(tampered));
    assert.equal(tampered.error.class, "BAD_SIGNATURE", JSON.stringify(tampered));
    assert.match(tampered.error.message, /^\[BAD_SIGNATURE\]/);

    // SIWE: viem signs a message naming the nonce and the user key's resource.
    const { nonce, resource } = await run("siweNonce");
    const request = (domain) => ({
      domain,
      uri: `https://${domain}/attest`,
      chainId: 1,
      nonce,
      issuedAt: new Date(Date.now() - 5000).toISOString(),
      resources: [resource],
    });
    const [good, evil] = JSON.parse(
      execFileSync("node", ["siwe-sign.mjs"], {
        cwd: wallet,
        input: JSON.stringify([request("app.example.com"), request("evil.example.com")]),
        encoding: "utf8",
      }),
    );
    const siwe = await run("attestSiwe", good.message, good.signature, "app.example.com");
    assert.equal(siwe.subject, `eip155:1:${good.address}`);
    const wrong = await raw("attestSiwe", evil.message, evil.signature, "app.example.com");
    assert.equal(wrong.error?.class, "WRONG_CONTEXT", JSON.stringify(wrong));
    await run("space", "sync");

    // Bob (native) syncs and lists: both verified, the replay REPLAY.
    native(bob, "sync");
    const trust = ["--webauthn-origin", server.url, "--webauthn-rp-id", "localhost", "--siwe-domain", "app.example.com", "--siwe-chain", "1"];
    const listed = native(bob, "space", "attestations", ...trust);
    const who = s.alice.user.slice(0, 12);
    const lines = listed.split("\n").filter((l) => l.startsWith(`user ${who}`));
    assert.equal(lines.length, 3, listed);
    assert.ok(lines.includes(`user ${who}  WEBAUTHN  ${subject}  verified`), listed);
    assert.ok(lines.includes(`user ${who}  SIWE  eip155:1:${good.address}  verified`), listed);
    assert.ok(lines.some((l) => l.startsWith(`user ${who}  WEBAUTHN  ${subject}  REFUSED REPLAY:`)), listed);
    // Under another origin the passkey records do not verify.
    const other = native(bob, "space", "attestations", "--webauthn-origin", "https://app.example.com", "--webauthn-rp-id", "localhost");
    assert.equal(other.split("\n").filter((l) => l.includes("WEBAUTHN") && l.includes("REFUSED WRONG_CONTEXT")).length, 2, other);
    assert.ok(other.includes("SIWE") && other.includes("REFUSED WRONG_CONTEXT"), other);

    // The page's own listing, under its context: the same verdicts.
    const mine = await run("space", "attestations", {
      webauthn: { origins: [server.url], rpIds: ["localhost"] },
      siwe: { domains: ["app.example.com"], chainIds: [1] },
    });
    const verdicts = mine.map((a) => `${a.kind} ${a.verified ? "verified" : a.class}`).sort();
    assert.deepEqual(verdicts, ["siwe verified", "webauthn REPLAY", "webauthn verified"]);
    const ok = mine.find((a) => a.verified && a.kind === "webauthn");
    assert.deepEqual(ok.account, { kind: "webauthn", subject, userVerified: true });
    assert.equal(ok.user, s.alice.user);
    assert.equal(mine.find((a) => a.kind === "siwe").account.address, good.address);
    assert.deepEqual(s.errors, []);
  } finally {
    await context.close();
  }
});

test("a page rotates the user key (resumed after an interruption); the native member follows the new key and refuses the old one", async () => {
  const s = await setup(`web-rotate-${process.pid}-${Date.now()}`);
  const { bob, notes, notesId, context, run, raw } = s;
  const pass = "tangerine ladder quietly folds the map";
  try {
    const oldKey = s.alice.user;
    const oldBackup = await run("device", "backupSealed", pass);
    await run("space", "insertText", notesId, 5, " before");
    await run("space", "sync");

    // Cut off mid-way (offline: storage unreachable): the rotation stays pending in OPFS.
    await context.setOffline(true);
    const cut = await raw("device", "rotateUserKey", pass);
    assert.ok(cut.error, JSON.stringify(cut));
    await context.setOffline(false);
    assert.equal(await run("device", "userId"), oldKey, "the old key stays until the rotation completes");
    // The tab is reloaded: a new Worker opens the same OPFS home and resumes.
    await s.open();
    await run("start", { dir: s.dir, vars: keys });
    await run("openSpace");
    const report = await run("device", "rotateUserKey", pass);
    assert.equal(report.oldUserKey, oldKey);
    assert.notEqual(report.newUserKey, oldKey);
    assert.deepEqual(report.spaces.map((x) => x.outcome), ["rotated"]);
    assert.match(report.backup, /^cfbackup1-/);
    const newKey = report.newUserKey;
    assert.equal(await run("device", "userId"), newKey);

    // The same space proxy works after the rotation: an edit under the new key.
    await run("space", "insertText", notesId, 0, "after-rotation ");
    await run("space", "sync");

    // Bob follows: the new key is the member (same role), the old one is gone; he reads
    // the page's edit made after the rotation, and the page reads his.
    assert.match(native(bob, "sync"), /access: yes/);
    const members = native(bob, "space", "members");
    const line = members.split("\n").find((l) => l.startsWith(newKey.slice(0, 16)));
    assert.ok(line?.includes("Writer"), members);
    assert.ok(!members.includes(oldKey.slice(0, 16)), members);
    assert.equal(lastLine(native(bob, "doc", "print", notes, "--text")), "after-rotation hello before");
    native(bob, "doc", "edit", notes, "--append", ", and bob");
    native(bob, "sync");
    await run("space", "sync");
    assert.equal(await run("space", "text", notesId), "after-rotation hello before, and bob");

    // The new sealed backup restores the new key natively; a device the old key
    // certifies (restored from the page's old backup) is refused by bob.
    const passFile = join(tmp, `pass-${s.dir}`);
    writeFileSync(passFile, `${pass}\n`);
    const restore = (home, code) => {
      const file = join(tmp, `${home}.cfbackup`);
      writeFileSync(file, code);
      native(home, "identity", "restore", "--from", file, "--passphrase-file", passFile);
      return /user key:\s*(\S+)/.exec(native(home, "identity", "show"))[1];
    };
    assert.equal(restore(`spare-${s.dir}`, report.backup), newKey);
    const stale = `stale-${s.dir}`;
    assert.equal(restore(stale, oldBackup), oldKey);
    const request = lastLine(native(stale, "devices", "request"));
    assert.match(nativeFails(bob, "devices", "add", request), /RemovedMember/);
    assert.deepEqual(s.errors, []);
  } finally {
    await context.close();
  }
});
