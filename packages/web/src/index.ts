/**
 * `@clientful/web`: Clientful in the browser. The wasm module (`pkg/clientful_web.js`,
 * built by `scripts/web/build.sh`) runs in a dedicated Worker (`worker.js`); the page
 * uses the facade (`Clientful`, `DeviceProxy`, `SpaceProxy`), the Yjs provider and the
 * Automerge binding. A Yjs-only app can import `client.js`/`clientful.js`/`provider.js`
 * directly and never load Automerge.
 */
export { Clientful, DeviceProxy, SpaceProxy } from "./clientful.js";
export type {
  AttestationEntry,
  AttestationEvidence,
  AttestationKind,
  AttestationNonce,
  AttestationReceipt,
  AttestationRecordInfo,
  AttestationVerifierContext,
  AttestedAccount,
  ChangeEvent,
  ClientfulOptions,
  DocumentInfo,
  DocumentKind,
  MemberInfo,
  OidcAttestationEvidence,
  DidAttestationEvidence,
  Role,
  RotationReport,
  SiweAttestationEvidence,
  SpaceEvents,
  SpaceInfo,
  SyncResult,
  WebAuthnAttestationEvidence,
} from "./clientful.js";
export { WorkerClient } from "./client.js";
export type { Recipe, WorkerClientOptions } from "./client.js";
export { ClientfulError, WorkerRestarted } from "./errors.js";
export { ClientfulProvider } from "./provider.js";
export type { ClientfulProviderOptions, YjsRoomReplica } from "./provider.js";
export { AutomergeBinding } from "./automerge.js";
export type { AutomergeBindingOptions } from "./automerge.js";
