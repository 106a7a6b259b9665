// Must NOT compile (types.test.mjs): a config without `signers`.
import { DocReplica } from "../../pkg/clientful_web.js";
const key = () => new Uint8Array(32);
DocReplica.create({ crdt: "yjs", spaceId: key(), docId: key(), deviceSeed: key(), epochId: key(), epochSecret: key(), rngSeed: key() });
