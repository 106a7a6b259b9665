// The browser side of session.test.mjs, in a dedicated Worker (OPFS sync access
// handles exist only there): the SDK's Device and Space (clientful-web's session
// module). Requests { id, op, ... } get replies { id, ok } or { id, error };
// change events are posted as { change }.
import init, { Device } from "/pkg/clientful_web.js";

const ready = init();
let device;
const spaces = new Map();
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// A home whose previous Worker was terminated stays locked for a moment.
async function retryLocked(f) {
  for (let i = 0; ; i++) {
    try {
      return await f();
    } catch (e) {
      if (i >= 100 || !/NoModificationAllowed|InvalidState|lock/i.test(String(e))) throw e;
      await sleep(100);
    }
  }
}

function track(space) {
  spaces.set(space.id(), space);
  space.setOnChange((change) => postMessage({ change: { space: space.id(), ...change } }));
  return space.id();
}

const ops = {
  async create(o) {
    device = await retryLocked(() => Device.create(o.dir, o.user));
    for (const [k, v] of Object.entries(o.vars ?? {})) device.setVar(k, v);
    return { user: device.userId(), device: device.deviceId(), name: device.userName() };
  },
  async open(o) {
    device = await retryLocked(() => Device.open(o.dir));
    for (const [k, v] of Object.entries(o.vars ?? {})) device.setVar(k, v);
    return { user: device.userId(), spaces: device.spaces() };
  },
  async acceptInvite(o) {
    return track(await device.acceptInvite(o.code, o.name, o.storage));
  },
  async createSpace(o) {
    return track(await device.createSpace(o.name, o.storage));
  },
  async openSpace(o) {
    return track(await device.openSpace(o.selector));
  },
  // Any Space method: { space, method, args }.
  async call(o) {
    const s = spaces.get(o.space);
    if (!s) throw new Error(`no open space ${o.space}`);
    const toBytes = (a) => (a && a.bytes ? Uint8Array.from(a.bytes) : a);
    const args = (o.args ?? []).map((a) => (Array.isArray(a) ? a.map(toBytes) : toBytes(a)));
    const r = await s[o.method](...args);
    const fromBytes = (x) => (x instanceof Uint8Array ? { bytes: Array.from(x) } : x);
    return Array.isArray(r) ? r.map(fromBytes) : fromBytes(r);
  },
  // A second device of this user in `dir2` (its sealed backup restored there), added
  // by this device through a device link and joined; syncs until it can read.
  async linkDevice(o) {
    const s = spaces.get(o.space);
    const pass = "orange kettle sings under the bridge";
    const second = await Device.restoreSealed(o.dir2, device.backupSealed(pass), pass);
    for (const [k, v] of Object.entries(o.vars ?? {})) second.setVar(k, v);
    const request = second.deviceRequest();
    const link = await s.addDevice(request);
    await s.sync();
    const joined = await second.joinDevice(link, "team-second", o.storage);
    for (let i = 0; i < 20 && !(await joined.hasAccess()); i++) {
      await s.sync();
      await joined.sync();
    }
    const result = {
      request: request.slice(0, 10),
      link: link.slice(0, 8),
      sameUser: second.userId() === device.userId(),
      otherDevice: second.deviceId() !== device.deviceId(),
      access: await joined.hasAccess(),
      text: await joined.text(o.doc),
    };
    joined.close();
    return result;
  },
  // putFile with random bytes made here; returns the reference and the bytes' hex.
  async putRandomFile(o) {
    const s = spaces.get(o.space);
    const bytes = new Uint8Array(o.size);
    for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
    const progress = [];
    const ref = await s.putFile("image/jpeg", bytes, (done, total) => progress.push([done, total]));
    const hex = Array.from(bytes, (x) => x.toString(16).padStart(2, "0")).join("");
    return { ref, hex, progress };
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
