// The TypeScript types generated for the module (pkg/clientful_web.d.ts) type DocReplica's
// configuration and results: a typed use compiles, a config without `signers` does not.
// The facade's declarations (dist/) type a web app's use of it, with no `any`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "./harness.mjs";

const tsc = (file) =>
  spawnSync(
    join(packageRoot, "node_modules/.bin/tsc"),
    ["--ignoreConfig", "--noEmit", "--strict", "--target", "es2022", "--lib", "esnext,dom", "--module", "nodenext", file],
    { cwd: packageRoot, encoding: "utf8" },
  );

test("a typed use of DocReplica compiles against the generated .d.ts", () => {
  const r = tsc("test/types/doc.ts");
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test("a DocReplica config without signers is a type error", () => {
  const r = tsc("test/types/bad-config.ts");
  assert.notEqual(r.status, 0);
  assert.match(r.stdout, /signers/);
});

// The facade (dist/*.d.ts, compiled from src/ by the test script).
test("a typed use of the facade compiles against dist/index.d.ts", () => {
  const r = tsc("test/types/facade.ts");
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test("an unknown role or space event is a type error at the facade", () => {
  const r = tsc("test/types/bad-facade.ts");
  assert.notEqual(r.status, 0);
  assert.match(r.stdout, /"owner"/);
  assert.match(r.stdout, /"presence"/);
});

test("the facade's public declarations use no `any`", () => {
  for (const f of readdirSync(join(packageRoot, "dist")).filter((f) => f.endsWith(".d.ts"))) {
    const code = readFileSync(join(packageRoot, "dist", f), "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
    assert.doesNotMatch(code, /\bany\b/, f);
  }
});
