/**
 * The Worker side of the remote call protocol (`rpc.ts`): hosts the wasm module's objects
 * in a dedicated Worker (where OPFS sync access handles exist and heavy work stays off
 * the page's thread) and runs the page's calls on them.
 *
 * `serve(load)` answers `call`s on the module `load()` resolves to (already initialised):
 * static methods of its classes (`Device.create`) and methods of the objects it keeps
 * under the page's handles. A result that is an instance of one of the module's classes
 * is kept, and every such object that has `setOnX(callback)` methods gets them installed
 * so that what it pushes reaches the page as `event` messages (event `x`, lowercased
 * first letter): `setOnChange` gives `change`, `setOnEphemeral` gives `ephemeral`.
 *
 * Traps: a panic cannot be caught on wasm32; it surfaces as a `WebAssembly.RuntimeError`
 * and leaves the instance's memory untrustworthy. The first one ends this Worker's
 * service: the call gets an error with `trap: true` (or, outside a call, a `trapped`
 * message), every later call too, and the page starts a new Worker.
 */
import {
  type CallRequest,
  type Handle,
  type Reply,
  type Request,
  type WireError,
  errorClass,
  isCallbackRef,
  transferables,
} from "./rpc.js";

/** A module namespace: its classes and functions by name. */
export type ModuleExports = Record<string, unknown>;

type Method = (...args: unknown[]) => unknown;

/** The parts of a dedicated Worker's global scope used here (the DOM lib types `window`). */
interface WorkerScope {
  postMessage(message: Reply, transfer: Transferable[]): void;
  addEventListener(type: "message", listener: (e: MessageEvent<Request>) => void): void;
  addEventListener(type: "error", listener: (e: ErrorEvent) => void): void;
  addEventListener(type: "unhandledrejection", listener: (e: PromiseRejectionEvent) => void): void;
}

function isTrap(e: unknown): boolean {
  return e instanceof WebAssembly.RuntimeError;
}

function toWire(e: unknown): WireError {
  const trap = isTrap(e);
  const err: WireError = {
    name: e instanceof Error ? e.name : "Error",
    message: e instanceof Error ? e.message : String(e),
    trap,
  };
  const cls = errorClass(e);
  if (cls !== undefined) err.class = cls;
  return err;
}

/** Answers the page's calls on the module `load` resolves to; returns when it is loaded. */
export async function serve(load: () => Promise<ModuleExports>): Promise<void> {
  const scope = globalThis as unknown as WorkerScope;
  const post = (m: Reply): void => scope.postMessage(m, transferables(m));
  const objects = new Map<Handle, Record<string, unknown>>();
  let dead: WireError | undefined;
  const die = (e: unknown): void => {
    if (dead) return;
    dead = toWire(e);
    post({ kind: "trapped", error: dead });
  };
  // Traps in tasks the module runs itself (a live connection's futures), outside calls.
  // Handled here (`preventDefault`): the page hears of it as a `trapped` message.
  scope.addEventListener("error", (e) => {
    if (!isTrap(e.error)) return;
    e.preventDefault();
    die(e.error);
  });
  scope.addEventListener("unhandledrejection", (e) => {
    if (!isTrap(e.reason)) return;
    e.preventDefault();
    die(e.reason);
  });

  // Calls that arrive while the module loads wait for it.
  const queue: Request[] = [];
  let module: ModuleExports | undefined;
  const classes = new Set<unknown>();

  const keep = (handle: Handle, obj: Record<string, unknown>): void => {
    objects.set(handle, obj);
    for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(obj) as object)) {
      const m = /^setOn([A-Z]\w*)$/.exec(name);
      const f = obj[name];
      if (!m?.[1] || typeof f !== "function") continue;
      const event = m[1].charAt(0).toLowerCase() + m[1].slice(1);
      try {
        (f as Method).call(obj, (...args: unknown[]) => post({ kind: "event", handle, event, args }));
      } catch {
        // An event source the build does not have (`[UNSUPPORTED]`): its event never comes.
      }
    }
  };

  const run = async (req: CallRequest): Promise<unknown> => {
    let self: unknown;
    if (req.target === null) {
      self = module?.[req.cls ?? ""];
      if (typeof self !== "function") throw new Error(`[INVALID_ARGUMENT] the module has no class ${req.cls}`);
    } else {
      self = objects.get(req.target);
      if (self === undefined) throw new Error(`[INVALID_ARGUMENT] no object under handle ${req.target}`);
    }
    const f = (self as Record<string, unknown>)[req.method];
    if (typeof f !== "function" || req.method.startsWith("setOn") || req.method === "constructor") {
      throw new Error(`[INVALID_ARGUMENT] no method ${req.method}`);
    }
    const args = req.args.map((a) =>
      isCallbackRef(a) ? (...cb: unknown[]) => post({ kind: "callback", id: req.id, callback: a.$callback, args: cb }) : a,
    );
    const value = await (f as Method).apply(self, args);
    if (req.bind !== undefined && typeof value === "object" && value !== null && classes.has(value.constructor)) {
      keep(req.bind, value as Record<string, unknown>);
      return { $handle: req.bind };
    }
    return value;
  };

  const handle = async (req: Request): Promise<void> => {
    if (req.kind === "release") {
      const obj = objects.get(req.handle);
      objects.delete(req.handle);
      const free = obj?.["free"];
      if (!dead && typeof free === "function") (free as Method).call(obj);
      return;
    }
    if (dead) {
      post({ kind: "error", id: req.id, error: dead });
      return;
    }
    try {
      post({ kind: "result", id: req.id, value: await run(req) });
    } catch (e) {
      if (isTrap(e)) die(e);
      post({ kind: "error", id: req.id, error: toWire(e) });
    }
  };

  scope.addEventListener("message", (e) => {
    if (module) void handle(e.data);
    else queue.push(e.data);
  });
  try {
    module = await load();
  } catch (e) {
    die(e);
    dead = { ...toWire(e), trap: true };
  }
  for (const v of Object.values(module ?? {})) if (typeof v === "function") classes.add(v);
  post({ kind: "ready" });
  for (const req of queue.splice(0)) void handle(req);
}
