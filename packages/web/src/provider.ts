/**
 * `ClientfulProvider`: binds a JavaScript `Y.Doc` to a Clientful document, the way
 * `y-websocket`'s provider binds one to a server, so that editor bindings (y-prosemirror,
 * y-codemirror, y-quill) work unchanged. Two forms:
 *
 * - `new ClientfulProvider(ydoc, space, docId)`: a document of a space opened through the
 *   `Clientful` facade (`SpaceProxy`, the SDK in a Worker); changes arrive as the space's
 *   `change` events, presence as its `ephemeral` messages.
 * - `new ClientfulProvider(ydoc, room)`: a `DocRoom` of `clientful_web.js` (a replica in
 *   sync over one broker room, the caller holding its credentials).
 *
 * In both:
 * - The `Y.Doc` takes the replica's Yjs client id (spec DOC-3, DOC-19), so its updates are
 *   this device's. Each local update goes to the replica, which checks it with the rule
 *   every receiver applies, seals and signs it into an envelope and publishes it.
 * - Whatever reaches the replica (accepted envelopes only: every byte was verified there)
 *   reaches the `Y.Doc` as one update computed from the replica's state and the `Y.Doc`'s
 *   state vector, with this provider as the transaction origin. Applying it twice changes
 *   nothing, so no delivery can be lost between the two.
 * - Presence and cursors: `provider.awareness` (y-protocols) travels as ephemeral messages
 *   signed by this device and sealed for the room or space (spec BRK-14): relayed to the
 *   members online, never stored. The local state is sent again on every (re)join and
 *   whenever a client not seen before shows up, and renewed by `Awareness` itself every
 *   15 s; remote states expire after 30 s without renewal.
 *
 * With a space, the client id comes from the Worker: edit the `Y.Doc` after `synced`
 * (`whenSynced()`, `on("synced")`); an update written before under another client id is
 * refused by the replica and reported through `onError`.
 *
 * The replica is the source of truth: a local update it refuses (`ClientfulError`) is
 * reported through `onError` and never published.
 */
import * as Y from "yjs";
import {
  Awareness,
  applyAwarenessUpdate,
  encodeAwarenessUpdate,
  removeAwarenessStates,
} from "y-protocols/awareness";
import type { ChangeEvent, SpaceProxy } from "./clientful.js";

/** What the provider needs from a replica in a room: `DocRoom` of `clientful_web.js`. */
export interface YjsRoomReplica {
  /** The client id the bound `Y.Doc` must use. */
  yjsClientId(): number;
  /** Takes a local update of the bound `Y.Doc` as this device's edit and publishes it. */
  applyLocalYjsUpdate(update: Uint8Array): Promise<void>;
  /** What the replica holds beyond a `Y.Doc` state vector, as one Yjs v1 update. */
  yjsDiff(stateVector: Uint8Array): Uint8Array;
  /** Resolves when the room brought something into the replica since the last time. */
  changed(): Promise<void>;
  /** Leaves the room. */
  close(): void;
  /** Sends an ephemeral message (signed, sealed, never stored). */
  ephemeral(data: Uint8Array): void;
  /** The ephemeral messages received since the last call that verify. */
  takeEphemeral(): Array<{ data: Uint8Array; sender: string }>;
  /** Times the room was joined (1 after the first join, +1 per reconnect). */
  joins(): number;
}

/** Options of a {@link ClientfulProvider}. */
export interface ClientfulProviderOptions {
  /** Called with each local update the replica refused, and any other failure. */
  onError?: (error: unknown) => void;
  /** Leave the room when the provider is destroyed (default: true; a room only). */
  closeOnDestroy?: boolean;
}

/** The provider's view of where the document lives: a room, or a space's document. */
interface YjsLink {
  clientId(): number | Promise<number>;
  applyLocal(update: Uint8Array): Promise<void>;
  diff(stateVector: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /** Resolves when something may have arrived (document, presence, a rejoin). */
  next(): Promise<void>;
  takePresence(): Uint8Array[];
  sendPresence(data: Uint8Array): void | Promise<void>;
  joins(): number;
  close(): void;
}

function roomLink(room: YjsRoomReplica, closeOnDestroy: boolean): YjsLink {
  return {
    clientId: () => room.yjsClientId(),
    applyLocal: (u) => room.applyLocalYjsUpdate(u),
    diff: (sv) => room.yjsDiff(sv),
    next: () => room.changed(),
    takePresence: () => room.takeEphemeral().map((m) => m.data),
    sendPresence: (d) => room.ephemeral(d),
    joins: () => room.joins(),
    close: () => {
      if (closeOnDestroy) room.close();
    },
  };
}

/** Presence of one document among a space's ephemeral messages: tag, id length, id, payload. */
const PRESENCE_TAG = 0x79;

/** Frames an awareness update for document `docId` of a space. */
export function framePresence(docId: string, update: Uint8Array): Uint8Array {
  const id = new TextEncoder().encode(docId);
  const out = new Uint8Array(2 + id.length + update.length);
  out[0] = PRESENCE_TAG;
  out[1] = id.length;
  out.set(id, 2);
  out.set(update, 2 + id.length);
  return out;
}

/** The awareness update of a framed presence message for `docId`, or `undefined`. */
export function unframePresence(docId: string, data: Uint8Array): Uint8Array | undefined {
  if (data.length < 2 || data[0] !== PRESENCE_TAG) return undefined;
  const n = data[1] ?? 0;
  if (data.length < 2 + n) return undefined;
  if (new TextDecoder().decode(data.subarray(2, 2 + n)) !== docId) return undefined;
  return data.subarray(2 + n);
}

function spaceLink(space: SpaceProxy, docId: string, onRestart: () => void): YjsLink & { detach(): void } {
  let wake: (() => void) | undefined;
  let woken = false;
  let joins = 1;
  const presence: Uint8Array[] = [];
  const poke = (): void => {
    woken = true;
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onChange = (c: ChangeEvent): void => {
    if (c.docId !== undefined && c.docId !== docId) return;
    // The space (re)connected to the broker: whoever is there has not seen this device.
    if (c.docId === undefined && /live|connect|join/i.test(c.kind)) joins++;
    poke();
  };
  const onEphemeral = (_from: string, data: Uint8Array): void => {
    const update = unframePresence(docId, data);
    if (!update) return;
    presence.push(update);
    poke();
  };
  space.on("change", onChange);
  space.on("ephemeral", onEphemeral);
  space.on("restart", onRestart);
  return {
    clientId: () => space.yjsClientId(docId),
    applyLocal: (u) => space.applyLocalYjsUpdate(docId, u),
    diff: (sv) => space.yjsDiff(docId, sv),
    next: () => {
      if (woken) {
        woken = false;
        return Promise.resolve();
      }
      return new Promise<void>((ok) => {
        wake = () => {
          woken = false;
          ok();
        };
      });
    },
    takePresence: () => presence.splice(0),
    sendPresence: (d) => space.ephemeral(framePresence(docId, d)),
    joins: () => joins,
    close: () => undefined,
    detach: () => {
      space.off("change", onChange);
      space.off("ephemeral", onEphemeral);
      space.off("restart", onRestart);
      poke();
    },
  };
}

/** An update of at most this many bytes carries nothing (an empty struct and delete set). */
const EMPTY_UPDATE_BYTES = 2;

type ProviderEvents = { synced: () => void };

export class ClientfulProvider {
  readonly doc: Y.Doc;
  /** The `DocRoom`, in the room form. */
  readonly replica: YjsRoomReplica | undefined;
  /** The space and document id, in the space form. */
  readonly space: SpaceProxy | undefined;
  readonly docId: string | undefined;
  /** Presence and cursors of this document's devices (y-protocols). */
  readonly awareness: Awareness;
  private readonly link: YjsLink;
  private readonly detach: () => void;
  private destroyed = false;
  private pending: Promise<void>;
  private readonly onError: (error: unknown) => void;
  private readonly onUpdate: (update: Uint8Array, origin: unknown) => void;
  private syncedOnce = false;
  private readonly syncedWaiters: Array<() => void> = [];
  private readonly listeners: { [E in keyof ProviderEvents]: Set<ProviderEvents[E]> } = { synced: new Set() };
  private readonly onAwareness: (
    change: { added: number[]; updated: number[]; removed: number[] },
    origin: unknown,
  ) => void;
  private joined = 0;
  private presenceOff = false;

  /**
   * Binds `doc` to document `docId` of `space`, or to `room`. `doc` must be new: its
   * client id is set to the replica's before anything is written to it.
   */
  constructor(doc: Y.Doc, space: SpaceProxy, docId: string, options?: ClientfulProviderOptions);
  constructor(doc: Y.Doc, room: YjsRoomReplica, options?: ClientfulProviderOptions);
  constructor(
    doc: Y.Doc,
    target: SpaceProxy | YjsRoomReplica,
    docIdOrOptions?: string | ClientfulProviderOptions,
    spaceOptions?: ClientfulProviderOptions,
  ) {
    if (doc.store.clients.size > 0) {
      throw new Error("ClientfulProvider needs a new Y.Doc: its client id must be the replica's");
    }
    const options = (typeof docIdOrOptions === "string" ? spaceOptions : docIdOrOptions) ?? {};
    this.doc = doc;
    this.onError = options.onError ?? ((e) => console.error("clientful provider:", e));
    if (typeof docIdOrOptions === "string") {
      const space = target as SpaceProxy;
      const docId = docIdOrOptions;
      // A restarted Worker's replica may use a new client id (a new incarnation, DOC-3):
      // take it before the next local update goes out.
      const link = spaceLink(space, docId, () => {
        this.pending = this.pending
          .then(() => space.yjsClientId(docId))
          .then((id) => this.switchClientId(id))
          .catch((e: unknown) => this.onError(e));
      });
      this.space = target as SpaceProxy;
      this.docId = docIdOrOptions;
      this.replica = undefined;
      this.link = link;
      this.detach = () => link.detach();
    } else {
      this.replica = target as YjsRoomReplica;
      this.space = undefined;
      this.docId = undefined;
      this.link = roomLink(this.replica, options.closeOnDestroy ?? true);
      this.detach = () => undefined;
    }
    const id = this.link.clientId();
    // A room gives the client id at once: set before Awareness takes the document's.
    if (typeof id === "number") doc.clientID = id;
    this.awareness = new Awareness(doc);
    const started: Promise<void> =
      typeof id === "number" ? Promise.resolve() : id.then((n) => this.adoptClientId(n));
    this.pending = started.catch((e: unknown) => this.onError(e));
    this.onUpdate = (update, origin) => {
      if (origin === this || this.destroyed) return;
      // In order: each update continues the device's chain (DOC-4).
      this.pending = this.pending
        .then(() => this.link.applyLocal(update))
        .catch((e: unknown) => this.onError(e));
    };
    doc.on("update", this.onUpdate);
    this.onAwareness = ({ added, updated, removed }, origin) => {
      if (this.destroyed) return;
      if (origin === this) {
        // A client not seen before: it has not seen this device's state either.
        if (added.some((c) => c !== this.doc.clientID)) this.announce();
        return;
      }
      const changed = added.concat(updated, removed);
      this.send(encodeAwarenessUpdate(this.awareness, changed));
    };
    this.awareness.on("update", this.onAwareness);
    void started.then(() => this.follow()).catch((e: unknown) => this.onError(e));
  }

  /** Whether the first state from the replica has reached the `Y.Doc`. */
  get synced(): boolean {
    return this.syncedOnce;
  }

  /** Resolves once the first state from the replica has reached the `Y.Doc`. */
  whenSynced(): Promise<void> {
    if (this.syncedOnce) return Promise.resolve();
    return new Promise((ok) => this.syncedWaiters.push(ok));
  }

  /** Listens for `synced` (once the first state from the replica reached the `Y.Doc`). */
  on<E extends keyof ProviderEvents>(event: E, cb: ProviderEvents[E]): void {
    this.listeners[event].add(cb);
  }

  off<E extends keyof ProviderEvents>(event: E, cb: ProviderEvents[E]): void {
    this.listeners[event].delete(cb);
  }

  /** Resolves when every local update so far was taken by the replica (or refused). */
  flush(): Promise<void> {
    return this.pending;
  }

  /** Unbinds the `Y.Doc` (and leaves the room unless told otherwise). */
  destroy(): void {
    if (this.destroyed) return;
    // Tell the others this device left (a null state), then stop.
    removeAwarenessStates(this.awareness, [this.doc.clientID], "destroy");
    this.destroyed = true;
    this.awareness.off("update", this.onAwareness);
    this.awareness.destroy();
    this.doc.off("update", this.onUpdate);
    this.detach();
    this.link.close();
  }

  /** Takes a new client id of the replica's for this device's next inserts (and presence). */
  private switchClientId(id: number): void {
    if (this.destroyed || this.doc.clientID === id) return;
    const old = this.awareness.clientID;
    const state = this.awareness.getLocalState();
    this.doc.clientID = id;
    removeAwarenessStates(this.awareness, [old], this);
    this.awareness.clientID = id;
    this.awareness.setLocalState(state);
  }

  /** Takes the replica's client id (space form), before anything is written. */
  private adoptClientId(id: number): void {
    if (this.doc.clientID === id) return;
    if (this.doc.store.clients.size > 0) {
      throw new Error("the Y.Doc was edited before the provider was synced: edit after whenSynced()");
    }
    const old = this.awareness.clientID;
    const state = this.awareness.getLocalState();
    this.doc.clientID = id;
    this.awareness.states.delete(old);
    this.awareness.meta.delete(old);
    this.awareness.clientID = id;
    this.awareness.setLocalState(state);
  }

  private announce(): void {
    if (this.awareness.getLocalState() !== null) {
      this.send(encodeAwarenessUpdate(this.awareness, [this.doc.clientID]));
    }
  }

  private send(update: Uint8Array): void {
    if (this.presenceOff) return;
    // A build without presence messages (`UNSUPPORTED`): said once, then presence stays local.
    const failed = (e: unknown): void => {
      const cls = (e as { class?: unknown } | null)?.class;
      // Not live (yet): nobody to tell; the state goes out when the space goes live.
      if (cls === "NOT_LIVE") return;
      if (cls === "UNSUPPORTED") {
        if (this.presenceOff) return;
        this.presenceOff = true;
      }
      this.onError(e);
    };
    try {
      const sent = this.link.sendPresence(update);
      if (sent instanceof Promise) sent.catch(failed);
    } catch (e) {
      failed(e);
    }
  }

  /** Brings the `Y.Doc` up to the replica's state, and the awareness up to the others'. */
  private async pull(): Promise<void> {
    try {
      for (const data of this.link.takePresence()) {
        applyAwarenessUpdate(this.awareness, data, this);
      }
      const joins = this.link.joins();
      if (joins !== this.joined) {
        // A (re)join: whoever is there now has not seen this device's state.
        this.joined = joins;
        this.announce();
      }
      const diff = await this.link.diff(Y.encodeStateVector(this.doc));
      if (this.destroyed) return;
      if (diff.byteLength > EMPTY_UPDATE_BYTES) {
        const id = this.doc.clientID;
        Y.applyUpdate(this.doc, diff, this);
        // Yjs takes a new client id when a remote transaction brings structs under its own
        // (a clash with another client, as it must assume). These are this device's own,
        // verified by the replica (after a reload, say): keep the replica's id.
        if (this.doc.clientID !== id) this.doc.clientID = id;
      }
      if (!this.syncedOnce) {
        this.syncedOnce = true;
        for (const ok of this.syncedWaiters.splice(0)) ok();
        for (const cb of this.listeners.synced) cb();
      }
    } catch (e) {
      this.onError(e);
    }
  }

  private async follow(): Promise<void> {
    await this.pull();
    while (!this.destroyed) {
      await this.link.next();
      if (this.destroyed) return;
      await this.pull();
    }
  }
}
