/**
 * The page facade of issue 16: `Clientful.create/open/restoreSealed` start a dedicated
 * Worker running the wasm `Device` (kept in OPFS, see web-contract) and return a
 * `DeviceProxy`; its spaces are `SpaceProxy`s. Every method returns a Promise and runs in
 * the Worker; what a space pushes (SDK change events, presence messages) reaches
 * `space.on("change" | "ephemeral", cb)`. If the Worker's instance traps, the facade
 * restarts it and reopens the device and spaces from OPFS (see `client.ts`); only the calls
 * in flight reject, with `WorkerRestarted`.
 */
import { type Recipe, WorkerClient, type WorkerClientOptions, retryLocked } from "./client.js";
import type { Handle } from "./rpc.js";

/** A space this device belongs to. */
export interface SpaceInfo {
  id: string;
  name: string;
  storageUrl: string;
}

/** A member of a space (the membership holds no display names). */
export interface MemberInfo {
  user: string;
  role: string;
  devices: number;
  /** Whether the member's admission is settled (visible to every member). */
  settled?: boolean;
}

/** The document CRDTs. */
export type DocumentKind = "yjs" | "automerge";

/** A document of a space. */
export interface DocumentInfo {
  id: string;
  kind: DocumentKind;
  /** Its title (empty for a document this device cannot open). */
  title: string;
  /** Envelopes held. */
  envelopes?: number;
}

/** What one sync through storage moved. */
export interface SyncResult {
  uploaded: number;
  downloaded: number;
}

/**
 * An SDK change event: `kind` (`document`, `membership`, `preview`, `withholding`,
 * `evidence`, `staleEpoch`, `lagged`) and the document it concerns; the facade adds
 * `live` when the space (re)joined its broker room (`goLive`, or back `online`).
 */
export interface ChangeEvent {
  kind: string;
  docId?: string;
}

/** The roles an invite grants. */
export type Role = "admin" | "writer" | "reader";

/** What a space pushes, by event name. */
export interface SpaceEvents {
  change: (change: ChangeEvent) => void;
  ephemeral: (from: string, data: Uint8Array) => void;
  /** The Worker was restarted after a trap and the space reopened: re-read what you hold. */
  restart: () => void;
}

/** The kinds of attestation a page can make (spec §14.3). */
export type AttestationKind = "webauthn" | "siwe" | "oidc" | "did";

/**
 * What evidence must commit to for this user (ATT-6), from `space.attestationNonce()`.
 * Pass `salt` back with the evidence.
 */
export interface AttestationNonce {
  /** 16 fresh bytes. */
  salt: Uint8Array<ArrayBuffer>;
  /** `HashWithLabel("attest/binding", userKey || salt)`: the WebAuthn challenge (a `BufferSource`). */
  binding: Uint8Array<ArrayBuffer>;
  /** The user key (hex). */
  userKey: string;
  /** The id_token `nonce` to request from the OpenID provider. */
  oidcNonce: string;
  /** The SIWE message's `Nonce` (hex of the binding). */
  siweNonce: string;
  /** The SIWE message's resource naming the user key (`clientful:user-key:…`). */
  siweResource: string;
  /** The `publicKeyMultibase` a did:web document's verification method lists. */
  didKey: string;
}

/** A passkey's assertion over `binding` (from `navigator.credentials.get`). */
export interface WebAuthnAttestationEvidence {
  kind: "webauthn";
  salt: Uint8Array;
  /** The relying party id the credential is scoped to (`localhost`, `app.example.com`). */
  rpId: string;
  /**
   * The registration's authenticator data (`response.getAuthenticatorData()` of
   * `navigator.credentials.create`): the credential id and COSE key are read from it.
   * Or give `credentialId` and `coseKey` instead.
   */
  registration?: Uint8Array;
  credentialId?: Uint8Array;
  coseKey?: Uint8Array;
  /** The assertion's `authenticatorData`, `clientDataJSON` and `signature`. */
  authenticatorData: Uint8Array;
  clientDataJSON: Uint8Array;
  signature: Uint8Array;
  /** The origin the assertion was made on (default: the Worker's, i.e. the page's). */
  origin?: string;
  /** Whether the UV flag is required (default true). */
  requireUserVerification?: boolean;
}

/** A Sign-In with Ethereum message (EIP-4361) naming `siweNonce` and `siweResource`, wallet-signed (EIP-191). */
export interface SiweAttestationEvidence {
  kind: "siwe";
  salt: Uint8Array;
  /** The message exactly as the wallet signed it. */
  message: string;
  /** The 65-byte signature (a Uint8Array, or hex as wallets return it). */
  signature: Uint8Array | string;
  /** The domain the message must name (your app's). */
  domain: string;
  /** The chain id the message must name (default 1). */
  chainId?: number;
}

/** An OpenID Connect id_token whose `nonce` is `oidcNonce`, with the issuer's JWKS as the page fetched it. */
export interface OidcAttestationEvidence {
  kind: "oidc";
  salt: Uint8Array;
  idToken: string;
  /** The issuer's JWKS document (text or bytes). */
  jwks: string | Uint8Array;
  /** If given, must equal the token's `iss`. */
  issuer?: string;
  /** The audience to check (default: the token's only one). */
  audience?: string;
}

/** A did:web DID document (as fetched) listing `didKey`. */
export interface DidAttestationEvidence {
  kind: "did";
  did: string;
  document: string | Uint8Array;
}

/** Evidence for `space.attest`. */
export type AttestationEvidence =
  | WebAuthnAttestationEvidence
  | SiweAttestationEvidence
  | OidcAttestationEvidence
  | DidAttestationEvidence;

/** The record `space.attest` published. */
export interface AttestationReceipt {
  /** The record id (hex). */
  id: string;
  kind: AttestationKind;
  /** The account: `<rpId>|<credential id>`, `eip155:<chain>:<address>`, `<issuer>|<sub>`, the DID. */
  subject: string;
}

/** What `space.attestations` checks records against (the JWKS as the page fetched them). */
export interface AttestationVerifierContext {
  oidc?: { issuers: { issuer: string; jwks: string | Uint8Array }[]; audiences: string[] };
  siwe?: { domains: string[]; chainIds: number[] };
  webauthn?: { origins: string[]; rpIds: string[]; requireUserVerification?: boolean };
  /** The verifier's clock (ms since the Unix epoch); default now. */
  nowMs?: number;
}

/** The account a verified attestation shows. */
export type AttestedAccount =
  | { kind: "webauthn"; subject: string; userVerified: boolean }
  | { kind: "siwe"; subject: string; address: string; chainId: number }
  | { kind: "oidc"; subject: string; issuer: string; audience: string; expiresAt: number }
  | { kind: "did"; subject: string; methodId: string };

/** What every listed attestation carries (fields absent if the record does not decode). */
export interface AttestationRecordInfo {
  id?: string;
  /** The attested user key (hex). */
  user?: string;
  kind?: AttestationKind;
  subject?: string;
  createdAtMs?: number;
  /** The user of the device whose carrier brought it, if the space knows it. */
  signerUser?: string;
}

/** One attestation of a space with its verdict: verified, or refused with its error class. */
export type AttestationEntry = AttestationRecordInfo &
  (
    | { verified: true; account: AttestedAccount }
    | {
        verified: false;
        /** `BAD_SIGNATURE`, `WRONG_CONTEXT`, `EXPIRED`, `REPLAY`, `UNKNOWN_SIGNER`, ... */
        class: string;
        message: string;
      }
  );

/** What `device.rotateUserKey` did. */
export interface RotationReport {
  oldUserKey: string;
  newUserKey: string;
  spaces: { id: string; name: string; outcome: "rotated" | "alreadyRotated" | "notAMember"; operation?: string }[];
  /** The new key's sealed backup (`cfbackup1-…`), if a passphrase was given: replace the old one. */
  backup?: string;
}

/** Options of `Clientful.create/open/restoreSealed`. `dir`: 1 to 100 of `[A-Za-z0-9_-]` (it names OPFS files). */
export type ClientfulOptions = WorkerClientOptions;

/** One space, in the Worker. */
export class SpaceProxy {
  private liveUrl: string | undefined;
  private onOnline: (() => void) | undefined;
  /** @internal */
  constructor(
    private readonly rpc: WorkerClient,
    /** @internal */
    readonly handle: Handle,
    private readonly onClose: () => void = () => undefined,
  ) {}

  private call<T>(method: string, ...args: unknown[]): Promise<T> {
    return this.rpc.call(this.handle, method, args) as Promise<T>;
  }

  id(): Promise<string> {
    return this.call("id");
  }
  name(): Promise<string> {
    return this.call("name");
  }
  members(): Promise<MemberInfo[]> {
    return this.call("members");
  }
  /** False once this user was removed from the space. */
  hasAccess(): Promise<boolean> {
    return this.call("hasAccess");
  }
  /** An invite code (the CLI's code or link form), a secret to hand to the invitee. */
  createInvite(role: Role, singleUse: boolean): Promise<string> {
    return this.call("createInvite", role, singleUse);
  }
  /** Removes a member by user id prefix and rotates the keys (they read nothing new). */
  removeMember(userPrefix: string): Promise<void> {
    return this.call("removeMember", userPrefix);
  }
  /**
   * Adds a device from its request (`deviceRequest()` on the new device): another device of
   * this user, or, for an admin, a device a member's user key certified. Resolves to the link
   * code the new device passes to `joinDevice`.
   */
  addDevice(request: string): Promise<string> {
    return this.call("addDevice", request);
  }
  /** Everything this device can read as plain JSON text (documents, members): keep it private. */
  exportJson(): Promise<string> {
    return this.call("exportJson");
  }
  documents(): Promise<DocumentInfo[]> {
    return this.call("documents");
  }
  /** Creates a document; resolves to its id. */
  newDocument(kind: DocumentKind, title: string): Promise<string> {
    return this.call("newDocument", kind, title);
  }
  /** A document's title (stored encrypted in the document). */
  title(docId: string): Promise<string> {
    return this.call("title", docId);
  }
  text(docId: string): Promise<string> {
    return this.call("text", docId);
  }
  json(docId: string): Promise<string> {
    return this.call("json", docId);
  }
  stateDigest(docId: string): Promise<string> {
    return this.call("stateDigest", docId);
  }
  yjsClientId(docId: string): Promise<number> {
    return this.call("yjsClientId", docId);
  }
  applyLocalYjsUpdate(docId: string, update: Uint8Array): Promise<void> {
    return this.call("applyLocalYjsUpdate", docId, update);
  }
  yjsDiff(docId: string, stateVector: Uint8Array): Promise<Uint8Array> {
    return this.call("yjsDiff", docId, stateVector);
  }
  automergeActor(docId: string): Promise<string> {
    return this.call("automergeActor", docId);
  }
  applyLocalAutomergeChanges(docId: string, changes: Uint8Array[]): Promise<void> {
    return this.call("applyLocalAutomergeChanges", docId, changes);
  }
  automergeChangesSince(docId: string, heads: string[]): Promise<Uint8Array[]> {
    return this.call("automergeChangesSince", docId, heads);
  }
  insertText(docId: string, index: number, text: string): Promise<void> {
    return this.call("insertText", docId, index, text);
  }
  /** Stores a file (encrypted, chunked); resolves to its reference. */
  putFile(name: string, bytes: Uint8Array, onProgress?: (done: number, total: number) => void): Promise<string> {
    return onProgress ? this.call("putFile", name, bytes, onProgress) : this.call("putFile", name, bytes);
  }
  getFile(ref: string): Promise<Uint8Array> {
    return this.call("getFile", ref);
  }
  /** One sync through storage. */
  sync(): Promise<SyncResult> {
    return this.call("sync");
  }
  /**
   * Stays live over the broker at `brokerUrl`: again after a Worker restart, and at once
   * when the browser says it is back `online` (rather than after the retry backoff).
   */
  async goLive(brokerUrl: string): Promise<void> {
    await this.rpc.call(this.handle, "goLive", [brokerUrl], true);
    this.liveUrl = brokerUrl;
    this.rpc.emit(this.handle, "change", { kind: "live" });
    if (!this.onOnline && typeof globalThis.addEventListener === "function") {
      this.onOnline = () => {
        const url = this.liveUrl;
        if (url === undefined) return;
        this.rpc
          .call(this.handle, "goLive", [url])
          .then(() => this.rpc.emit(this.handle, "change", { kind: "live" }))
          .catch(() => undefined);
      };
      globalThis.addEventListener("online", this.onOnline);
    }
  }
  /** Sends a presence message (sealed, ephemeral) to the space's members online. */
  ephemeral(data: Uint8Array): Promise<void> {
    return this.call("ephemeral", data);
  }
  on<E extends keyof SpaceEvents>(event: E, cb: SpaceEvents[E]): void {
    this.rpc.on(this.handle, event, cb as (...args: unknown[]) => void);
  }
  off<E extends keyof SpaceEvents>(event: E, cb: SpaceEvents[E]): void {
    this.rpc.off(this.handle, event, cb as (...args: unknown[]) => void);
  }
  /** A fresh salt and what attestation evidence must commit to for this user (ATT-6). */
  attestationNonce(): Promise<AttestationNonce> {
    return this.call("attestationNonce");
  }
  /**
   * Makes an attestation of this user's key from `evidence`, signs it with the user key,
   * checks it as members will, and publishes it (stored now, in storage with the next
   * `sync`). Evidence that does not verify rejects with its class
   * (`ClientfulError`, `[BAD_SIGNATURE] …`, `[WRONG_CONTEXT] …`, `[EXPIRED] …`).
   */
  attest(evidence: AttestationEvidence): Promise<AttestationReceipt> {
    return this.call("attest", evidence);
  }
  /** Every attestation of the space with its verdict under `context` (ATT-13). */
  attestations(context: AttestationVerifierContext): Promise<AttestationEntry[]> {
    return this.call("attestations", context);
  }
  /** Closes the space in the Worker. */
  async close(): Promise<void> {
    if (this.onOnline) globalThis.removeEventListener("online", this.onOnline);
    this.liveUrl = undefined;
    await this.call("close");
    this.rpc.release(this.handle);
    this.onClose();
  }
  /** @internal Frees the space in the Worker (its store closes) until `resume`. */
  async suspend(): Promise<void> {
    await this.call("close");
    this.rpc.suspend(this.handle);
  }
  /** @internal Opens the space again under the same handle (and goes live again if it was). */
  async resume(): Promise<void> {
    await this.rpc.reopenNow(this.handle);
  }
}

/** One device of one user, in the Worker. */
export class DeviceProxy {
  private readonly openSpaces = new Set<SpaceProxy>();
  /** @internal */
  constructor(
    /** The Worker connection (restart count, `whenReady`, `terminate`). */
    readonly rpc: WorkerClient,
    /** @internal */
    readonly handle: Handle,
  ) {}

  private call<T>(method: string, ...args: unknown[]): Promise<T> {
    return this.rpc.call(this.handle, method, args) as Promise<T>;
  }

  private async space(recipe: Recipe): Promise<SpaceProxy> {
    const handle = await this.rpc.open(recipe);
    const id = (await this.rpc.call(handle, "id")) as string;
    // After a restart the space is opened by its id, whatever opened it first.
    this.rpc.setReopen(handle, () => ({ target: this.handle, method: "openSpace", args: [id] }));
    const space: SpaceProxy = new SpaceProxy(this.rpc, handle, () => this.openSpaces.delete(space));
    this.openSpaces.add(space);
    return space;
  }

  userId(): Promise<string> {
    return this.call("userId");
  }
  deviceId(): Promise<string> {
    return this.call("deviceId");
  }
  userName(): Promise<string> {
    return this.call("userName");
  }
  /**
   * Sets a variable the storage backends read (`AWS_ACCESS_KEY_ID`,
   * `AWS_SECRET_ACCESS_KEY`, `CLIENTFUL_WEBDAV_USER`, `CLIENTFUL_WEBDAV_PASSWORD`): a
   * browser has no environment. Kept in the Worker's memory only (set again after a
   * restart); call it before opening spaces.
   */
  setVar(key: string, value: string): Promise<void> {
    return this.rpc.call(this.handle, "setVar", [key, value], true) as Promise<void>;
  }
  /** The user key sealed under `passphrase` (for `Clientful.restoreSealed`). */
  backupSealed(passphrase: string): Promise<string> {
    return this.call("backupSealed", passphrase);
  }
  spaces(): Promise<SpaceInfo[]> {
    return this.call("spaces");
  }
  createSpace(name: string, storageUrl: string): Promise<SpaceProxy> {
    return this.space({ target: this.handle, method: "createSpace", args: [name, storageUrl] });
  }
  /** Accepts an invite code (or link) made by an admin, on the space's storage. */
  acceptInvite(code: string, name: string, storageUrl: string): Promise<SpaceProxy> {
    return this.space({ target: this.handle, method: "acceptInvite", args: [code, name, storageUrl] });
  }
  /** This device's request (`cfdevice1-…`) for `addDevice` on a device already in the space. */
  deviceRequest(): Promise<string> {
    return this.call("deviceRequest");
  }
  /** Joins a space with the link code `addDevice` gave for this device's request. */
  joinDevice(code: string, name: string, storageUrl: string): Promise<SpaceProxy> {
    return this.space({ target: this.handle, method: "joinDevice", args: [code, name, storageUrl] });
  }
  /** Opens a space of this device by id prefix or name. */
  openSpace(selector: string): Promise<SpaceProxy> {
    return this.space({ target: this.handle, method: "openSpace", args: [selector] });
  }
  /**
   * Rotates the user key (spec §5.7): a new user key, a continuity statement signed by
   * the old one, `ROTATE_USER` in every space of this device (each synced), then the new
   * key in the home. The other members follow the new key and refuse new operations
   * under the old one; the user's other devices are excluded (add them back with
   * `addDevice`). Open spaces are closed for the rotation and opened again under the
   * same proxies (wait for calls in flight on them first). If it fails (storage
   * unreachable, the tab closed), call it again: it resumes with the same new key (its
   * state is kept in the device's home). With `backupPassphrase`, the report carries
   * the new key's sealed backup to replace the old one.
   */
  async rotateUserKey(backupPassphrase?: string): Promise<RotationReport> {
    const open = [...this.openSpaces];
    for (const s of open) await s.suspend();
    try {
      return await this.call<RotationReport>("rotateUserKey", backupPassphrase ?? null);
    } finally {
      for (const s of open) await s.resume();
    }
  }
  /** Stops the Worker (the device stays in OPFS). */
  close(): void {
    this.rpc.terminate();
  }
}

async function start(recipe: Recipe, dir: string, options: ClientfulOptions): Promise<DeviceProxy> {
  const rpc = new WorkerClient(options);
  try {
    // However the device was made, a restarted Worker opens it from OPFS.
    // A Worker of a page just reloaded may still hold the device's files for a moment.
    const handle = await retryLocked(() =>
      rpc.open(recipe, () => ({ target: null, cls: "Device", method: "open", args: [dir] })),
    );
    return new DeviceProxy(rpc, handle);
  } catch (e) {
    rpc.terminate();
    throw e;
  }
}

/** Entry points: a device in OPFS directory `dir`, run in a dedicated Worker. */
export const Clientful = {
  /** Creates a new user with this device as its first; fails if `dir` holds an identity. */
  create(dir: string, userName: string, options: ClientfulOptions = {}): Promise<DeviceProxy> {
    return start({ target: null, cls: "Device", method: "create", args: [dir, userName] }, dir, options);
  },
  /** Opens the device kept in `dir` (`NOT_INITIALIZED` if there is none). */
  open(dir: string, options: ClientfulOptions = {}): Promise<DeviceProxy> {
    return start({ target: null, cls: "Device", method: "open", args: [dir] }, dir, options);
  },
  /** Restores a user from a sealed backup as a new device in `dir`. */
  restoreSealed(dir: string, backup: string, passphrase: string, options: ClientfulOptions = {}): Promise<DeviceProxy> {
    return start({ target: null, cls: "Device", method: "restoreSealed", args: [dir, backup, passphrase] }, dir, options);
  },
};
