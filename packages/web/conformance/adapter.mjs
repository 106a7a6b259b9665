#!/usr/bin/env node
// The conformance adapter of the wasm build (harness protocol v1, spec §12): reads framed
// Request messages on stdin (a 4-byte little-endian length, then the protobuf bytes) and
// answers one framed Response each on stdout. Replica commands are answered by the
// module's DocReplica (reference/clientful-web/src/doc.rs, i.e. clientful-doc compiled to
// wasm32); everything else is `unsupported`. Logs go to stderr only.
//
//   clientful-conformance run --impl-cmd "node packages/web/conformance/adapter.mjs"
//
// The harness messages are decoded and encoded by protobufjs from the .proto files in
// proto/, loaded at start-up: the adapter never drifts from the schema and needs no
// generated code or build step (see packages/web/README.md).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";

const here = dirname(fileURLToPath(import.meta.url));
const pkgRoot = join(here, "..");
const protoRoot = join(pkgRoot, "../../proto");
const pkgDir = process.env.CLIENTFUL_WEB_PKG ?? join(pkgRoot, "pkg");

const MAX_FRAME = 64 * 1024 * 1024;
const NAME = "clientful-web (wasm)";
const CAPABILITIES = ["replica/yjs", "replica/automerge", "replica/restart"];

const log = (...args) => process.stderr.write(`[web-adapter] ${args.join(" ")}\n`);

// ---- the schema
const root = new protobuf.Root();
root.resolvePath = (_origin, target) => join(protoRoot, target);
root.loadSync("clientful/conformance/v1/harness.proto", { keepCase: false });
root.resolveAll();
const Request = root.lookupType("clientful.conformance.v1.Request");
const Response = root.lookupType("clientful.conformance.v1.Response");
const Disposition = root.lookupEnum("clientful.conformance.v1.Disposition").values;
const ErrorClass = root.lookupEnum("clientful.v1.ErrorClass").values;

// ---- the module
const wasm = await import(join(pkgDir, "clientful_web.js"));
wasm.initSync({ module: readFileSync(join(pkgDir, "clientful_web_bg.wasm")) });

const fromHex = (h, what) => {
  if (typeof h !== "string" || !/^([0-9a-f]{2})*$/.test(h)) throw new Error(`${what}: not hex`);
  return Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
};

/// The replica configuration DocReplica takes, from the world JSON of the document
/// vector families (test-vectors/README.md).
function replicaConfig(worldJson, deviceSeed, rngSeed) {
  const w = JSON.parse(worldJson);
  const roots = JSON.stringify(w.yjsRoots ?? null);
  if (w.crdt === "yjs" && roots !== '[{"name":"text","kind":"text"},{"name":"data","kind":"map"}]') {
    throw new Error(`unsupported yjsRoots ${roots}`);
  }
  return {
    crdt: w.crdt,
    spaceId: fromHex(w.spaceId, "spaceId"),
    docId: fromHex(w.docId, "docId"),
    epochId: fromHex(w.epoch?.epochId, "epochId"),
    epochSecret: fromHex(w.epoch?.secret, "secret"),
    signers: (w.signers ?? []).map((s) => fromHex(s, "signer")),
    deviceSeed,
    rngSeed,
  };
}

// Persisted state: every envelope as a 4-byte little-endian length and its bytes.
function encodeState(envelopes) {
  const size = envelopes.reduce((n, e) => n + 4 + e.length, 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const e of envelopes) {
    view.setUint32(at, e.length, true);
    out.set(e, at + 4);
    at += 4 + e.length;
  }
  return out;
}

function decodeState(bytes) {
  const out = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at + 4 <= bytes.length) {
    const n = view.getUint32(at, true);
    if (at + 4 + n > bytes.length) throw new Error("truncated state");
    out.push(bytes.slice(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return out;
}

// ---- replicas: handle -> {replica, world, deviceSeed, rngSeed, restarts}
const slots = new Map();
let next = 0;

function slot(h) {
  const s = slots.get(h);
  if (!s) throw new Error(`no replica ${h}`);
  return s;
}

function add(s) {
  next += 1;
  slots.set(next, s);
  return { replica: { replica: next } };
}

// protobufjs gives an unset bytes field as a plain empty array.
const u8 = (b) => (b instanceof Uint8Array ? b : Uint8Array.from(b ?? []));

const seed32 = (b, what) => {
  if (!b || b.length !== 32) throw new Error(`${what} must be 32 bytes`);
  return Uint8Array.from(b);
};

const DISPOSITIONS = {
  applied: Disposition.DISPOSITION_APPLIED,
  buffered: Disposition.DISPOSITION_BUFFERED,
  duplicate: Disposition.DISPOSITION_DUPLICATE,
  rejected: Disposition.DISPOSITION_REJECTED,
};

function command(name, c) {
  switch (name) {
    case "hello":
      return {
        hello: { harnessVersion: 1, implementation: NAME, version: wasm.version(), capabilities: CAPABILITIES },
      };
    case "configure":
      // The run's seed and clock: nonces come from the per-replica seeds, no clock is read.
      return { done: {} };
    case "shutdown":
      return { done: {} };
    case "createReplica": {
      const deviceSeed = seed32(c.deviceSeed, "device_seed");
      const rngSeed = seed32(c.rngSeed, "rng_seed");
      const replica = wasm.DocReplica.create(replicaConfig(c.worldJson, deviceSeed, rngSeed));
      return add({ replica, world: c.worldJson, deviceSeed, rngSeed, restarts: 0 });
    }
    case "localEdit": {
      const r = slot(c.replica).replica;
      if (c.insert) r.insertText(c.insert.index ?? 0, c.insert.text ?? "");
      else if (c.delete) r.deleteText(c.delete.index ?? 0, c.delete.length ?? 0);
      else if (c.mapSet) r.setValue(c.mapSet.key ?? "", c.mapSet.value ?? "");
      else if (c.mapDelete) r.deleteValue(c.mapDelete.key ?? "");
      else throw new Error("no edit");
      return { done: {} };
    }
    case "commit": {
      const id = slot(c.replica).replica.commit();
      return { commit: { envelopeId: id ?? new Uint8Array() } };
    }
    case "takeOutbox":
      return { outbox: { envelopes: slot(c.replica).replica.drainOutbox().map((o) => o.envelope) } };
    case "deliver": {
      const d = slot(c.replica).replica.receive(u8(c.envelope));
      const disposition = DISPOSITIONS[d.disposition];
      if (disposition === undefined) throw new Error(`disposition ${d.disposition}: ${d.reason}`);
      const error = d.errorClass ? ErrorClass[`ERROR_CLASS_${d.errorClass}`] : 0;
      if (d.errorClass && error === undefined) throw new Error(`unknown error class ${d.errorClass}`);
      return { deliver: { disposition, error } };
    }
    case "observe": {
      const r = slot(c.replica).replica;
      return {
        observation: {
          stateDigest: r.stateDigest(),
          historyDigest: r.historyDigest(),
          materializedJson: r.materialize(),
        },
      };
    }
    case "persist":
      return { persisted: { state: encodeState(slot(c.replica).replica.persistedEnvelopes()) } };
    case "restart": {
      const old = slot(c.replica);
      slots.delete(c.replica);
      old.replica.free();
      const restarts = (old.restarts + 1) & 0xff;
      // A new nonce generator after every restart: nonces never repeat (CONF-38).
      const rngSeed = Uint8Array.from(old.rngSeed);
      rngSeed[31] ^= restarts;
      const replica = wasm.DocReplica.restore(
        replicaConfig(old.world, old.deviceSeed, rngSeed),
        decodeState(u8(c.state)),
      );
      return add({ ...old, replica, restarts });
    }
    default:
      return { unsupported: { command: name ?? "unknown" } };
  }
}

function handle(data) {
  let req;
  try {
    req = Request.decode(data);
  } catch (e) {
    return { response: { id: 0, error: { message: `request does not decode: ${e.message}` } }, stop: false };
  }
  const name = req.command; // the oneof's set field, undefined for an unknown command
  let result;
  try {
    result = command(name, name ? req[name] : undefined);
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) {
      // A trapped instance is not trustworthy any more: stop, the runner reports it.
      log(`wasm trapped: ${e.stack}`);
      process.exit(70);
    }
    const cls = e && e.class ? ` [${e.class}]` : "";
    result = { error: { message: `${e?.name ?? "Error"}${cls}: ${e?.message ?? e}` } };
  }
  return { response: { id: req.id, ...result }, stop: name === "shutdown" };
}

// ---- the stdio loop: frames may arrive split or several per chunk
let buf = Buffer.alloc(0);
const out = process.stdout;

function write(response) {
  const msg = Response.encode(Response.fromObject(response)).finish();
  const head = Buffer.alloc(4);
  head.writeUInt32LE(msg.length, 0);
  out.write(Buffer.concat([head, Buffer.from(msg)]));
}

process.stdin.on("data", (chunk) => {
  buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
  while (buf.length >= 4) {
    const n = buf.readUInt32LE(0);
    if (n > MAX_FRAME) {
      log(`frame of ${n} bytes`);
      process.exit(1);
    }
    if (buf.length < 4 + n) break;
    const frame = buf.subarray(4, 4 + n);
    buf = buf.subarray(4 + n);
    const { response, stop } = handle(frame);
    write(response);
    if (stop) {
      process.stdin.pause();
      out.end(() => process.exit(0));
      return;
    }
  }
});
// End of input: exit (CONF-9).
process.stdin.on("end", () => process.exit(0));
