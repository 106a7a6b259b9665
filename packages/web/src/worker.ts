/**
 * The dedicated Worker the `Clientful` facade starts: loads the wasm module
 * (`pkg/clientful_web.js`, built by `scripts/web/build.sh`) and serves the page's calls
 * on it (`worker-host.ts`). A page never loads the module itself.
 */
import { serve } from "./worker-host.js";

const moduleUrl = new URL("../pkg/clientful_web.js", import.meta.url).href;

void serve(async () => {
  const module = (await import(moduleUrl)) as Record<string, unknown> & { default: () => Promise<unknown> };
  await module.default();
  return module;
});
