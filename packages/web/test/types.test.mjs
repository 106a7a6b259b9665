// The TypeScript types generated for the module (pkg/clientful_web.d.ts) type DocReplica's
// configuration and results: a typed use compiles, a config without `signers` does not.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
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
