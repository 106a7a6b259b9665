/**
 * The messages between the page (`client.ts`) and the dedicated Worker that hosts the
 * wasm module (`worker-host.ts`): a generic remote call protocol. The page names the
 * objects living in the Worker by handles it chooses itself, so that a restarted Worker
 * can rebuild the same objects under the same handles and nothing on the page has to
 * be renumbered.
 *
 * - `call`: `id` (unique per page), `target` (a handle, or `null` for a static method
 *   of the module's class `cls`), `method`, `args`. Functions cannot cross
 *   `postMessage`: an argument that is a function travels as `{ $callback: n }` and the
 *   Worker calls it back with `callback` messages. If the result is an object of the
 *   module (a wasm-bindgen class instance), it is kept in the Worker under `bind` and the
 *   reply carries `{ $handle: bind }`.
 * - `result` / `error`: the outcome of call `id`; an error keeps the spec's error class.
 *   `trap` is true when the wasm instance trapped (`WebAssembly.RuntimeError`): the
 *   instance is dead and the page starts a new Worker.
 * - `event`: something an object pushed (`setOnChange`, `setOnEphemeral`, installed by
 *   the Worker on every object that has them), for the page's listeners.
 * - `trapped`: the instance trapped outside any call (in a task the module runs itself).
 */

/** An object kept in the Worker, named by the page. */
export type Handle = number;

/** A reference to an object kept in the Worker, as a result carries it. */
export interface HandleRef {
  $handle: Handle;
}

/** A function argument, replaced for the trip (functions cannot be cloned). */
export interface CallbackRef {
  $callback: number;
}

export interface CallRequest {
  kind: "call";
  id: number;
  target: Handle | null;
  cls?: string;
  method: string;
  args: unknown[];
  bind?: Handle;
}

/** Drops the Worker's reference to an object (and calls its `free`). */
export interface ReleaseRequest {
  kind: "release";
  handle: Handle;
}

export type Request = CallRequest | ReleaseRequest;

/** A failure, as it crosses `postMessage` (an `Error`'s own fields do not). */
export interface WireError {
  name: string;
  message: string;
  /** The spec's error class (`ACCESS`, `NOT_FOUND`, `MALFORMED`, ...), when known. */
  class?: string;
  trap: boolean;
}

export type Reply =
  | { kind: "ready" }
  | { kind: "result"; id: number; value: unknown }
  | { kind: "error"; id: number; error: WireError }
  | { kind: "callback"; id: number; callback: number; args: unknown[] }
  | { kind: "event"; handle: Handle; event: string; args: unknown[] }
  | { kind: "trapped"; error: WireError };

/** Whether `v` is a handle reference. */
export function isHandleRef(v: unknown): v is HandleRef {
  return typeof v === "object" && v !== null && typeof (v as HandleRef).$handle === "number";
}

/** Whether `v` is a callback reference. */
export function isCallbackRef(v: unknown): v is CallbackRef {
  return typeof v === "object" && v !== null && typeof (v as CallbackRef).$callback === "number";
}

/** The error class of a failure: an own `class` field, or a leading `[CLASS]` in the message. */
export function errorClass(e: unknown): string | undefined {
  if (typeof e === "object" && e !== null) {
    const c = (e as { class?: unknown }).class;
    if (typeof c === "string") return c;
  }
  const message = e instanceof Error ? e.message : String(e);
  const m = /^\[([A-Z][A-Z0-9_]*)\]/.exec(message);
  return m?.[1];
}

/** The `ArrayBuffer`s a value owns whole, for the transfer list of `postMessage`. */
export function transferables(value: unknown, out: ArrayBuffer[] = [], depth = 0): ArrayBuffer[] {
  if (depth > 4 || value === null || typeof value !== "object") return out;
  if (value instanceof Uint8Array) {
    const buf = value.buffer;
    // Only a buffer the array covers whole (a copy out of wasm memory), never a view.
    if (buf instanceof ArrayBuffer && value.byteOffset === 0 && value.byteLength === buf.byteLength && !out.includes(buf)) {
      out.push(buf);
    }
    return out;
  }
  if (Array.isArray(value)) {
    for (const v of value) transferables(v, out, depth + 1);
    return out;
  }
  if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value as Record<string, unknown>)) transferables(v, out, depth + 1);
  }
  return out;
}
