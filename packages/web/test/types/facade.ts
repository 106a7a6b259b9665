// Compiled (not run) by types.test.mjs: a web app's typed use of the facade, as a
// developer writes it (dist/index.d.ts): devices, spaces, events, the Yjs provider and
// the Automerge binding.
import * as Y from "yjs";
import * as Automerge from "@automerge/automerge";
import {
  type AttestationEntry,
  AutomergeBinding,
  type ChangeEvent,
  Clientful,
  ClientfulError,
  ClientfulProvider,
  type DeviceProxy,
  type SpaceProxy,
  WorkerRestarted,
} from "../../dist/index.js";

export async function app(code: string, storage: string, broker: string): Promise<string> {
  const device: DeviceProxy = await Clientful.create("alice", "Alice");
  await device.setVar("AWS_ACCESS_KEY_ID", "key");
  const space: SpaceProxy = await device.acceptInvite(code, "team", storage);
  await space.goLive(broker);
  space.on("change", (c: ChangeEvent) => console.log(c.kind, c.docId ?? ""));
  space.on("ephemeral", (from: string, data: Uint8Array) => console.log(from, data.length));
  const docs = await space.documents();
  const yjs = docs.find((d) => d.kind === "yjs");
  if (!yjs) return "";
  const ydoc = new Y.Doc();
  const provider = new ClientfulProvider(ydoc, space, yjs.id, { onError: console.error });
  provider.on("synced", () => console.log("synced"));
  await provider.whenSynced();
  ydoc.getText("text").insert(0, "hi");
  provider.awareness.setLocalState({ user: "Alice" });
  const tasks = new AutomergeBinding<{ text: string }>(space, await space.newDocument("automerge", "Tasks"));
  await tasks.whenSynced();
  tasks.change((d) => Automerge.splice(d, ["text"], 0, 0, "milk"));
  tasks.on("change", (doc) => console.log(doc.text));
  const ref: string = await space.putFile("image/png", new Uint8Array(3), (done, total) => console.log(done / total));
  const bytes: Uint8Array = await space.getFile(ref);
  try {
    await space.sync();
  } catch (e) {
    if (e instanceof WorkerRestarted) return "restarted";
    if (e instanceof ClientfulError && e.class === "ACCESS") return "removed";
  }
  return `${bytes.length} ${tasks.doc.text}`;
}

// Attestations and the user-key rotation.
export async function identity(space: SpaceProxy, device: DeviceProxy, signature: Uint8Array): Promise<string> {
  const n = await space.attestationNonce();
  const cred = await navigator.credentials.get({ publicKey: { challenge: n.binding, rpId: "localhost" } });
  if (!(cred instanceof PublicKeyCredential) || !(cred.response instanceof AuthenticatorAssertionResponse)) return "";
  const r = cred.response;
  await space.attest({
    kind: "webauthn",
    salt: n.salt,
    rpId: "localhost",
    registration: new Uint8Array(32),
    authenticatorData: new Uint8Array(r.authenticatorData),
    clientDataJSON: new Uint8Array(r.clientDataJSON),
    signature: new Uint8Array(r.signature),
  });
  const siwe = await space.attest({ kind: "siwe", salt: n.salt, message: n.siweResource, signature, domain: "app.example.com" });
  const all: AttestationEntry[] = await space.attestations({
    siwe: { domains: ["app.example.com"], chainIds: [1] },
    webauthn: { origins: [location.origin], rpIds: ["localhost"] },
  });
  const why = all.map((a) => (a.verified ? `${a.account.kind} ${a.account.subject}` : a.class));
  const report = await device.rotateUserKey("a long passphrase");
  return `${siwe.subject} ${why.join()} ${report.newUserKey} ${report.backup ?? ""} ${report.spaces[0]?.outcome ?? ""}`;
}
