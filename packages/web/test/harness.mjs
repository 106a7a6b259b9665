// Test harness for the browser tests: a static file server for packages/web (the built
// module in pkg/, the compiled TypeScript in dist/, the test pages in test/pages/) and
// headless Chromium through playwright-core. Chromium is Debian's package
// (scripts/services/chromium.sh); CLIENTFUL_CHROMIUM overrides its path.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const packageRoot = resolve(fileURLToPath(new URL("..", import.meta.url)));

const types = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".css": "text/css; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

/** Serves `root` (default: packages/web) on 127.0.0.1 at a free port; resolves to { url, close }. */
export async function serveStatic(root = packageRoot) {
  const server = createServer(async (req, res) => {
    try {
      const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
      if (path === "/favicon.ico") {
        res.writeHead(204).end();
        return;
      }
      const file = normalize(join(root, path.endsWith("/") ? path + "index.html" : path));
      if (!file.startsWith(root)) {
        res.writeHead(403).end();
        return;
      }
      const body = await readFile(file);
      res.writeHead(200, {
        "content-type": types[extname(file)] ?? "application/octet-stream",
        "cache-control": "no-store",
      });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address();
  return {
    // `localhost`, not 127.0.0.1: WebAuthn refuses IP addresses as relying-party ids.
    url: `http://localhost:${port}`,
    close: () => new Promise((ok) => server.close(ok)),
  };
}

/** Launches headless Chromium. */
export async function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CLIENTFUL_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
  });
}

/** Collects a page's console errors and uncaught exceptions, so a test can assert there were none. */
export function watchErrors(page) {
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  return errors;
}
