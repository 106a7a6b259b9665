// The Worker side of passkey.test.mjs: Device.createWithPasskey / open /
// openWithPasskey on an OPFS home (OPFS sync access handles exist only in a Worker).
import init, { Device } from "/pkg/clientful_web.js";

const ready = init();
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// A home whose previous Worker was terminated (a reload) stays locked for a moment.
async function retryBusy(f) {
  for (let i = 0; ; i++) {
    try {
      return await f();
    } catch (e) {
      if (i >= 100 || !/NoModificationAllowed|InvalidState/i.test(String(e))) throw e;
      await sleep(100);
    }
  }
}

const info = (d) => ({ user: d.userId(), device: d.deviceId(), name: d.userName() });
const ops = {
  async create(o) {
    return info(await retryBusy(() => Device.createWithPasskey(o.dir, o.name, Uint8Array.from(o.prf))));
  },
  async open(o) {
    return info(await retryBusy(() => Device.open(o.dir)));
  },
  async openWithPasskey(o) {
    return info(await retryBusy(() => Device.openWithPasskey(o.dir, Uint8Array.from(o.prf))));
  },
};

onmessage = async (e) => {
  const { id, op } = e.data;
  try {
    await ready;
    postMessage({ id, ok: await ops[op](e.data) });
  } catch (err) {
    postMessage({ id, error: String(err?.message ?? err), class: err?.class });
  }
};
postMessage({ started: true });
