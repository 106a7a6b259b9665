/**
 * The page side of the remote call protocol (`rpc.ts`): `WorkerClient` starts the
 * dedicated Worker that hosts the wasm module, sends calls and routes results, errors,
 * callbacks and pushed events; and restarts the Worker when its instance traps.
 *
 * Restart: every object the page holds in the Worker was opened by a call the client
 * remembers with a *reopen* call (the device: `Device.open(dir)`; a space:
 * `device.openSpace(id)`), and calls marked sticky (`goLive`) are remembered too. When
 * the Worker reports a trap, the client terminates it, rejects the calls in flight with
 * `WorkerRestarted`, starts a new Worker, replays the reopen calls under the same handles
 * (so proxies on the page stay valid), each followed by its sticky calls; calls made meanwhile
 * wait for that. Three failed restarts in a row end the client (every call then rejects).
 */
import { ClientfulError, WorkerRestarted } from "./errors.js";
import { type CallRequest, type Handle, type Reply, type Request, type WireError, isHandleRef } from "./rpc.js";

/** How to (re)build an object in the Worker: a static call of `cls`, or a call on `target`. */
export interface Recipe {
  target: Handle | null;
  cls?: string;
  method: string;
  args: unknown[];
}

/** Options of a {@link WorkerClient}. */
export interface WorkerClientOptions {
  /** The Worker script (default: `worker.js` beside this module). */
  workerUrl?: string | URL;
  /** Called after each restart, with the trap's message. */
  onRestart?: (cause: string) => void;
}

type Callback = (...args: unknown[]) => void;

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  callbacks: Callback[];
}

const MAX_RESTARTS_IN_A_ROW = 3;

/** An OPFS file still held by a Worker that is going away (terminated, or its page reloaded). */
const LOCKED = /NoModificationAllowed|InvalidState|lock/i;

/**
 * Runs `f` again while it fails because an OPFS file is still held by a Worker that is
 * going away (it lets go within a moment), for at most `ms`.
 */
export async function retryLocked<T>(f: () => Promise<T>, ms = 10000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await f();
    } catch (e) {
      if (Date.now() > end || !(e instanceof ClientfulError) || !LOCKED.test(e.message)) throw e;
      await new Promise((ok) => setTimeout(ok, 100));
    }
  }
}

function toError(e: WireError): Error {
  if (e.trap) return new WorkerRestarted(e.message);
  return new ClientfulError(e.message, e.class);
}

export class WorkerClient {
  private readonly url: string | URL;
  private readonly onRestart: ((cause: string) => void) | undefined;
  private worker!: Worker;
  private nextId = 1;
  private nextHandle = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly reopen = new Map<Handle, () => Recipe>();
  private readonly sticky = new Map<Handle, Recipe[]>();
  private readonly listeners = new Map<Handle, Map<string, Set<Callback>>>();
  private ready: Promise<void> = Promise.resolve();
  private restarting = false;
  private failedRestarts = 0;
  private broken: Error | undefined;
  /** Times the Worker was restarted after a trap. */
  restarts = 0;

  constructor(options: WorkerClientOptions = {}) {
    this.url = options.workerUrl ?? new URL("./worker.js", import.meta.url);
    this.onRestart = options.onRestart;
    this.ready = this.startWorker();
  }

  /** Calls `method` on the object under `target`. Sticky calls are replayed after a restart. */
  async call(target: Handle, method: string, args: unknown[] = [], sticky = false): Promise<unknown> {
    await this.ready;
    const value = await this.send({ target, method, args });
    if (sticky) {
      const list = this.sticky.get(target) ?? [];
      list.push({ target, method, args });
      this.sticky.set(target, list);
    }
    return value;
  }

  /**
   * Opens an object with `recipe` (a static call or a call on another object) and keeps
   * it under a new handle; `reopen(handle)` says how to open it again after a restart
   * (default: the same recipe).
   */
  async open(recipe: Recipe, reopen?: () => Recipe): Promise<Handle> {
    await this.ready;
    const handle = this.nextHandle++;
    const value = await this.send({ ...recipe, bind: handle });
    if (!isHandleRef(value)) throw new ClientfulError(`${recipe.method} returned no object`, "INVALID_ARGUMENT");
    this.reopen.set(handle, reopen ?? (() => recipe));
    return handle;
  }

  /** Changes how the object under `handle` is opened again after a restart. */
  setReopen(handle: Handle, reopen: () => Recipe): void {
    this.reopen.set(handle, reopen);
  }

  /** Forgets the object under `handle` here and in the Worker. */
  release(handle: Handle): void {
    this.reopen.delete(handle);
    this.sticky.delete(handle);
    this.listeners.delete(handle);
    this.post({ kind: "release", handle });
  }

  /**
   * Frees the object under `handle` in the Worker but keeps how to open it again, its
   * sticky calls and its listeners here: `reopenNow(handle)` brings it back under the
   * same handle (a space closed around a user-key rotation).
   */
  suspend(handle: Handle): void {
    this.post({ kind: "release", handle });
  }

  /** Opens the object under `handle` again (its reopen recipe), then replays its sticky calls. */
  async reopenNow(handle: Handle): Promise<void> {
    await this.ready;
    const reopen = this.reopen.get(handle);
    if (!reopen) return;
    await retryLocked(() => this.send({ ...reopen(), bind: handle }));
    for (const c of this.sticky.get(handle) ?? []) await this.send(c);
  }

  /** Adds a listener for what the object under `handle` pushes as `event`. */
  on(handle: Handle, event: string, cb: Callback): void {
    const byEvent = this.listeners.get(handle) ?? new Map<string, Set<Callback>>();
    const set = byEvent.get(event) ?? new Set<Callback>();
    set.add(cb);
    byEvent.set(event, set);
    this.listeners.set(handle, byEvent);
  }

  /** Calls the listeners of `event` on `handle` here, as if the Worker had pushed it. */
  emit(handle: Handle, event: string, ...args: unknown[]): void {
    for (const cb of this.listeners.get(handle)?.get(event) ?? []) {
      try {
        cb(...args);
      } catch (e) {
        console.error("clientful: a listener threw", e);
      }
    }
  }

  /** Removes a listener added with `on`. */
  off(handle: Handle, event: string, cb: Callback): void {
    this.listeners.get(handle)?.get(event)?.delete(cb);
  }

  /** Resolves when the Worker (a restarted one included, with everything reopened) is ready. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  /** Stops the Worker; every call afterwards rejects. */
  terminate(): void {
    this.broken = new ClientfulError("the client was terminated", "CLOSED");
    this.worker.terminate();
    this.failAll(this.broken);
  }

  private post(m: Request): void {
    this.worker.postMessage(m);
  }

  private send(r: Omit<CallRequest, "kind" | "id">): Promise<unknown> {
    if (this.broken) return Promise.reject(this.broken);
    const id = this.nextId++;
    const callbacks: Callback[] = [];
    const args = r.args.map((a) => {
      if (typeof a !== "function") return a;
      callbacks.push(a as Callback);
      return { $callback: callbacks.length - 1 };
    });
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, callbacks });
      const req: CallRequest = { kind: "call", id, target: r.target, method: r.method, args };
      if (r.cls !== undefined) req.cls = r.cls;
      if (r.bind !== undefined) req.bind = r.bind;
      this.post(req);
    });
  }

  private startWorker(): Promise<void> {
    const worker = new Worker(this.url, { type: "module" });
    this.worker = worker;
    return new Promise<void>((ok, fail) => {
      worker.onmessage = (e: MessageEvent<Reply>) => {
        if (e.data.kind === "ready") ok();
        else this.receive(e.data);
      };
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        // A trap the Worker did not report itself: restart.
        if (/RuntimeError/.test(e.message) && this.worker === worker && !this.restarting) {
          this.restart(e.message);
          return;
        }
        // The script itself failed (not found, a syntax error): not something a restart fixes.
        const err = new ClientfulError(`the Worker failed: ${e.message}`, "WORKER");
        this.broken = err;
        this.failAll(err);
        fail(err);
      };
    });
  }

  private receive(m: Reply): void {
    switch (m.kind) {
      case "result": {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        p?.resolve(m.value);
        break;
      }
      case "error": {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.error.trap) {
          p?.reject(new WorkerRestarted(m.error.message));
          this.restart(m.error.message);
        } else {
          p?.reject(toError(m.error));
        }
        break;
      }
      case "callback":
        this.pending.get(m.id)?.callbacks[m.callback]?.(...m.args);
        break;
      case "event":
        this.emit(m.handle, m.event, ...m.args);
        break;
      case "trapped":
        this.restart(m.error.message);
        break;
      case "ready":
        break;
    }
  }

  private failAll(e: Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(e);
  }

  private restart(cause: string): void {
    if (this.restarting || this.broken) return;
    this.restarting = true;
    this.worker.terminate();
    this.failAll(new WorkerRestarted(cause));
    this.ready = (async () => {
      for (;;) {
        try {
          await this.startWorker();
          // In the order they were opened, each followed by its sticky calls (a device's
          // storage credentials before its spaces, a space's goLive after it opened).
          for (const [handle, reopen] of [...this.reopen]) {
            await retryLocked(() => this.send({ ...reopen(), bind: handle }));
            for (const c of this.sticky.get(handle) ?? []) await this.send(c);
          }
          this.failedRestarts = 0;
          this.restarts++;
          this.restarting = false;
          this.onRestart?.(cause);
          // Each reopened object's listeners: what they derived from the old one may be
          // stale (a reopened replica may take a new actor incarnation, DOC-3).
          for (const handle of [...this.reopen.keys()]) this.emit(handle, "restart");
          return;
        } catch (e) {
          if (this.broken) throw this.broken;
          if (++this.failedRestarts >= MAX_RESTARTS_IN_A_ROW) {
            this.broken = e instanceof Error ? e : new Error(String(e));
            this.worker.terminate();
            this.failAll(this.broken);
            throw this.broken;
          }
          this.worker.terminate();
        }
      }
    })();
    // A failed restart is reported by the calls that wait for it.
    this.ready.catch(() => undefined);
  }
}
