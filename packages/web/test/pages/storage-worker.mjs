// The browser side of storage.test.mjs, in a dedicated Worker (where OPFS sync access
// handles exist): clientful-storage's Space over S3/WebDAV through fetch, and its
// LocalStore over an OPFS file. Requests: { op, ... }; replies { ok, ... } or { error }.
import init, { openDeviceStore, openSpace } from "/pkg/clientful_web.js";

const ready = init();
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const bytes = (h) => Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16));
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

function spaceOptions(o) {
  return {
    ...o.store,
    spaceId: bytes(o.keys.spaceId),
    deviceSeed: bytes(o.keys.deviceSeed),
    epochId: bytes(o.keys.epochId),
    epochSecret: bytes(o.keys.epochSecret),
    signers: o.keys.signers.map(bytes),
  };
}

// A file whose previous owner (a terminated worker, a reloaded page) is going away
// stays locked for a moment: retry the open for a few seconds.
async function openStore(name) {
  for (let i = 0; ; i++) {
    try {
      return await openDeviceStore(name);
    } catch (e) {
      if (i >= 100 || !/NoModificationAllowed|InvalidState|lock/i.test(String(e))) throw e;
      await sleep(100);
    }
  }
}

const ops = {
  // Writes one Yjs edit per text through Space, flushes; returns the envelopes.
  async write(o) {
    const space = await openSpace(spaceOptions(o), undefined);
    const written = [];
    for (const t of o.texts) written.push(...space.writeText(bytes(o.keys.docId), t));
    if (!(await space.flush())) throw new Error("flush wrote no segment");
    return { envelopes: written.map(hex) };
  },
  // Pulls with a fresh device store; returns every envelope held.
  async read(o) {
    const space = await openSpace(spaceOptions(o), undefined);
    const fresh = await space.pull();
    return { fresh, envelopes: space.envelopes().map(hex) };
  },
  // Writes to the OPFS device store until terminated, posting each acknowledged batch.
  async crashWriter(o) {
    const store = await openStore(o.name);
    const space = await openSpace(spaceOptions({ ...o, store: { backend: "memory" } }), store);
    for (let n = 0; ; n++) {
      const acked = space.writeText(bytes(o.keys.docId), `${o.round}.${n} `);
      postMessage({ ack: acked.map(hex) });
      if (n % 4 === 3) await sleep(0);
    }
  },
  // Opens the OPFS device store (integrity and consistency checks) and lists it.
  async readStore(o) {
    const store = await openStore(o.name);
    const check = store.check();
    const envelopes = store.envelopes().map(hex);
    store.free();
    return { check: { envelopes: check.envelopes, outbox: check.outbox }, envelopes };
  },
};

onmessage = async (e) => {
  try {
    await ready;
    postMessage({ ok: true, ...(await ops[e.data.op](e.data)) });
  } catch (err) {
    postMessage({ error: String(err?.stack ?? err) });
  }
};
