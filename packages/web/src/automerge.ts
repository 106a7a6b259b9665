/**
 * `AutomergeBinding`: a JavaScript Automerge document (`@automerge/automerge`) bound to an
 * Automerge document of a space opened through the `Clientful` facade.
 *
 * - The JS document uses the actor the replica assigns (`space.automergeActor(docId)`,
 *   spec DOC-3), so its changes are this device's.
 * - `change(fn)` applies `fn` to the JS document at once (`doc` shows it) and hands the
 *   change to the replica, which checks it as every receiver will (DOC-3, DOC-4, DOC-5),
 *   seals and signs it and stores and sends it; a refused change goes to `onError`.
 * - What reaches the replica from others (verified envelopes only) comes out as the
 *   Automerge changes beyond the JS document's heads (`automergeChangesSince`), applied
 *   with `Automerge.applyChanges`; listeners of `change` get the new document.
 *
 * The document is ready after `whenSynced()`; `change` before that throws.
 */
import * as Automerge from "@automerge/automerge";
import type { ChangeEvent, SpaceProxy } from "./clientful.js";

/** Options of an {@link AutomergeBinding}. */
export interface AutomergeBindingOptions {
  /** Called with each local change the replica refused, and any other failure. */
  onError?: (error: unknown) => void;
}

type Listener<T> = (doc: Automerge.Doc<T>) => void;

export class AutomergeBinding<T = Record<string, unknown>> {
  readonly space: SpaceProxy;
  readonly docId: string;
  private current: Automerge.Doc<T> | undefined;
  private queue: Promise<void>;
  private readonly ready: Promise<void>;
  private readonly listeners = new Set<Listener<T>>();
  private readonly onError: (error: unknown) => void;
  private readonly onSpaceChange: (c: ChangeEvent) => void;
  private readonly onRestart: () => void;
  private destroyed = false;
  private pullQueued = false;

  constructor(space: SpaceProxy, docId: string, options: AutomergeBindingOptions = {}) {
    this.space = space;
    this.docId = docId;
    this.onError = options.onError ?? ((e) => console.error("clientful automerge:", e));
    this.ready = (async () => {
      const actor = await space.automergeActor(docId);
      this.current = Automerge.init<T>({ actor });
      await this.pullNow();
    })();
    this.queue = this.ready.catch((e: unknown) => this.onError(e));
    this.onSpaceChange = (c) => {
      if (c.docId === undefined || c.docId === docId) this.pull();
    };
    space.on("change", this.onSpaceChange);
    // A restarted Worker's replica may bind a new actor (a new incarnation, DOC-3): the JS
    // document takes it (`Automerge.clone`) for its next changes.
    this.onRestart = () => {
      this.queue = this.queue
        .then(async () => {
          const actor = await space.automergeActor(docId);
          if (this.current !== undefined && Automerge.getActorId(this.current) !== actor) {
            this.current = Automerge.clone(this.current, { actor });
          }
        })
        .catch((e: unknown) => this.onError(e));
      this.pull();
    };
    space.on("restart", this.onRestart);
  }

  /** The JS document (throws before `whenSynced()` resolved). */
  get doc(): Automerge.Doc<T> {
    if (this.current === undefined) throw new Error("AutomergeBinding: not synced yet (await whenSynced())");
    return this.current;
  }

  /** Resolves once the JS document holds the replica's state. */
  whenSynced(): Promise<void> {
    return this.ready;
  }

  /** Changes the document: at once here, then through the replica's check to the others. */
  change(fn: Automerge.ChangeFn<T>): Automerge.Doc<T> {
    const before = this.doc;
    const after = Automerge.change(before, fn);
    if (after === before) return after;
    this.current = after;
    const change = Automerge.getLastLocalChange(after);
    if (change) {
      this.queue = this.queue
        .then(() => this.space.applyLocalAutomergeChanges(this.docId, [change]))
        .catch((e: unknown) => this.onError(e));
    }
    this.emit();
    return after;
  }

  /** Listens for new states of the document (local or remote changes). */
  on(event: "change", cb: Listener<T>): void {
    if (event === "change") this.listeners.add(cb);
  }

  off(event: "change", cb: Listener<T>): void {
    if (event === "change") this.listeners.delete(cb);
  }

  /** Resolves when every change so far was taken by the replica and every pull is done. */
  flush(): Promise<void> {
    return this.queue;
  }

  /** Stops following the space. */
  destroy(): void {
    this.destroyed = true;
    this.space.off("change", this.onSpaceChange);
    this.space.off("restart", this.onRestart);
  }

  private emit(): void {
    const doc = this.current;
    if (doc === undefined) return;
    for (const cb of this.listeners) {
      try {
        cb(doc);
      } catch (e) {
        this.onError(e);
      }
    }
  }

  /** Queues one pull after the local changes sent so far (coalescing pulls not yet started). */
  private pull(): void {
    if (this.pullQueued || this.destroyed) return;
    this.pullQueued = true;
    this.queue = this.queue
      .then(() => {
        this.pullQueued = false;
        return this.pullNow();
      })
      .catch((e: unknown) => this.onError(e));
  }

  private async pullNow(): Promise<void> {
    if (this.current === undefined || this.destroyed) return;
    const changes = await this.space.automergeChangesSince(this.docId, Automerge.getHeads(this.current));
    if (changes.length === 0 || this.current === undefined) return;
    const before = this.current;
    [this.current] = Automerge.applyChanges(before, changes);
    if (this.current !== before) this.emit();
  }
}
