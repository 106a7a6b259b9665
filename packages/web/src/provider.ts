/**
 * `ClientfulProvider`: binds a JavaScript `Y.Doc` to a Clientful document replica kept in
 * sync over a broker room, the way `y-websocket`'s provider binds one to a server, so that
 * editor bindings (y-prosemirror, y-codemirror, y-quill) work unchanged.
 *
 * - The `Y.Doc` takes the replica's Yjs client id (spec DOC-3, DOC-19), so its updates are
 *   this device's. Each local update goes to the replica, which checks it with the rule
 *   every receiver applies, seals and signs it into an envelope and publishes it (kept in
 *   an outbox while the broker is away).
 * - Whatever the room brings into the replica (accepted envelopes only: every byte was
 *   verified in the replica) reaches the `Y.Doc` as one update computed from the replica's
 *   state and the `Y.Doc`'s state vector, with this provider as the transaction origin.
 *   Applying it twice changes nothing, so no delivery can be lost between the two.
 *
 * - Presence and cursors: `provider.awareness` (y-protocols) travels as ephemeral room
 *   messages signed by this device and sealed for the room (spec BRK-14): relayed to the
 *   members online, never stored; the broker sees neither who is where nor what. Messages
 *   not signed by one of the document's signers are dropped (BRK-15). The local state is
 *   sent again on every (re)join and renewed by `Awareness` itself every 15 s; remote
 *   states expire after 30 s without renewal.
 *
 * The replica is the source of truth: a local update it refuses (`ClientfulError`, for
 * example when the `Y.Doc` was given another client id) is reported through `onError` and
 * never published.
 */
import * as Y from "yjs";
import {
  Awareness,
  applyAwarenessUpdate,
  encodeAwarenessUpdate,
  removeAwarenessStates,
} from "y-protocols/awareness";

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
  /** Leave the room when the provider is destroyed (default: true). */
  closeOnDestroy?: boolean;
}

/** An update of at most this many bytes carries nothing (an empty struct and delete set). */
const EMPTY_UPDATE_BYTES = 2;

export class ClientfulProvider {
  readonly doc: Y.Doc;
  readonly replica: YjsRoomReplica;
  /** Presence and cursors of this document's devices (y-protocols). */
  readonly awareness: Awareness;
  private destroyed = false;
  private pending: Promise<void> = Promise.resolve();
  private readonly onError: (error: unknown) => void;
  private readonly closeOnDestroy: boolean;
  private readonly onUpdate: (update: Uint8Array, origin: unknown) => void;
  private syncedOnce = false;
  private readonly syncedWaiters: Array<() => void> = [];
  private readonly onAwareness: (
    change: { added: number[]; updated: number[]; removed: number[] },
    origin: unknown,
  ) => void;
  private joined = 0;

  /**
   * Binds `doc` to `replica`. `doc` must be new: its client id is set to the replica's
   * before anything is written to it.
   */
  constructor(doc: Y.Doc, replica: YjsRoomReplica, options: ClientfulProviderOptions = {}) {
    if (doc.store.clients.size > 0) {
      throw new Error("ClientfulProvider needs a new Y.Doc: its client id must be the replica's");
    }
    this.doc = doc;
    this.replica = replica;
    this.onError = options.onError ?? ((e) => console.error("clientful provider:", e));
    this.closeOnDestroy = options.closeOnDestroy ?? true;
    doc.clientID = replica.yjsClientId();
    this.onUpdate = (update, origin) => {
      if (origin === this || this.destroyed) return;
      // In order: each update continues the device's chain (DOC-4).
      this.pending = this.pending
        .then(() => this.replica.applyLocalYjsUpdate(update))
        .catch((e: unknown) => this.onError(e));
    };
    doc.on("update", this.onUpdate);
    // After the client id is set: Awareness takes the document's.
    this.awareness = new Awareness(doc);
    this.onAwareness = ({ added, updated, removed }, origin) => {
      if (origin === this || this.destroyed) return;
      const changed = added.concat(updated, removed);
      this.send(encodeAwarenessUpdate(this.awareness, changed));
    };
    this.awareness.on("update", this.onAwareness);
    this.pull();
    void this.follow();
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
    if (this.closeOnDestroy) this.replica.close();
  }

  private send(update: Uint8Array): void {
    try {
      this.replica.ephemeral(update);
    } catch (e) {
      this.onError(e);
    }
  }

  /** Brings the `Y.Doc` up to the replica's state, and the awareness up to the room's. */
  private pull(): void {
    try {
      for (const { data } of this.replica.takeEphemeral()) {
        applyAwarenessUpdate(this.awareness, data, this);
      }
      const joins = this.replica.joins();
      if (joins !== this.joined) {
        // A (re)join: whoever is in the room now has not seen this device's state.
        this.joined = joins;
        if (this.awareness.getLocalState() !== null) {
          this.send(encodeAwarenessUpdate(this.awareness, [this.doc.clientID]));
        }
      }
      const diff = this.replica.yjsDiff(Y.encodeStateVector(this.doc));
      if (diff.byteLength > EMPTY_UPDATE_BYTES) Y.applyUpdate(this.doc, diff, this);
      if (!this.syncedOnce) {
        this.syncedOnce = true;
        for (const ok of this.syncedWaiters.splice(0)) ok();
      }
    } catch (e) {
      this.onError(e);
    }
  }

  private async follow(): Promise<void> {
    while (!this.destroyed) {
      await this.replica.changed();
      if (this.destroyed) return;
      this.pull();
    }
  }
}
