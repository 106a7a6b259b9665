// Compiled (not run) by types.test.mjs: the generated .d.ts of DocReplica types a web app's
// use of it, and a missing config field is a type error (see bad-config.ts).
import { DocReplica, type DocReplicaConfig, type OutboxItem, type ReceiveResult } from "../../pkg/clientful_web.js";

const key = () => new Uint8Array(32);
const config: DocReplicaConfig = {
  crdt: "yjs",
  spaceId: key(),
  docId: key(),
  deviceSeed: key(),
  epochId: key(),
  epochSecret: key(),
  rngSeed: key(),
  signers: [key()],
};
const replica = DocReplica.create(config);
replica.insertText(0, "hello");
const id: Uint8Array | undefined = replica.commit();
const out: OutboxItem[] = replica.drainOutbox();
const result: ReceiveResult = replica.receive(out[0].envelope);
const updates: Uint8Array[] = result.updates;
const cls: string | undefined = result.errorClass;
const restored: DocReplica = DocReplica.restore(config, replica.persistedEnvelopes());
export { id, updates, cls, restored };
