// The facade's Worker for facade.test.mjs: the real module (pkg/clientful_web.js) served
// by the real worker host (dist/worker-host.js), plus two test classes: `Trap`, which
// traps the way a panic does (a wasm `unreachable`, a WebAssembly.RuntimeError) inside
// a call or in a task of its own, and `Ticker`, an object that pushes events.
import { serve } from "/dist/worker-host.js";

// (module (func (export "f") unreachable))
const unreachable = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00,
  0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00, 0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b,
]);
const trap = () => new WebAssembly.Instance(new WebAssembly.Module(unreachable)).exports.f();

class Trap {
  static now() {
    trap();
  }
  // Traps in a task of its own, after the call returned (as a live connection's future would).
  static later() {
    setTimeout(trap, 10);
    return "scheduled";
  }
}

class Ticker {
  static create() {
    return new Ticker();
  }
  setOnChange(cb) {
    this.cb = cb;
  }
  tick(kind, docId) {
    this.cb?.(docId === undefined ? { kind } : { kind, docId });
  }
  async slowly(ms, onProgress) {
    for (let i = 1; i <= 4; i++) {
      await new Promise((ok) => setTimeout(ok, ms));
      onProgress?.(i, 4);
    }
    return new Uint8Array([1, 2, 3]);
  }
}

serve(async () => {
  const module = await import("/pkg/clientful_web.js");
  await module.default();
  return { ...module, Trap, Ticker };
});
