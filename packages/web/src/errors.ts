/**
 * The typed errors of the facade: `ClientfulError` (a failure the SDK reported, with the
 * spec's error class) and `WorkerRestarted` (the Worker's wasm instance trapped during
 * the call; a new Worker was started and the device and spaces reopened from OPFS).
 */

/** A failure reported by the SDK in the Worker. `class` is the spec's error class, if any. */
export class ClientfulError extends Error {
  override readonly name = "ClientfulError";
  /** `ACCESS`, `NOT_FOUND`, `NOT_INITIALIZED`, `MALFORMED`, `INVALID_ARGUMENT`, ... */
  readonly class: string | undefined;
  constructor(message: string, cls: string | undefined) {
    super(message);
    this.class = cls;
  }
}

/**
 * The wasm instance trapped (`WebAssembly.RuntimeError`: a panic, which wasm32 cannot
 * catch) while this call was in flight. Its effect is unknown: it may or may not have
 * been persisted before the trap. The facade has started a new Worker and reopened
 * everything; later calls go to it.
 */
export class WorkerRestarted extends Error {
  override readonly name = "WorkerRestarted";
  /** The trap's own message (`unreachable`, ...). */
  readonly cause: string;
  constructor(cause: string) {
    super(`the Worker's wasm instance trapped (${cause}); it was restarted and reopened from OPFS`);
    this.cause = cause;
  }
}
