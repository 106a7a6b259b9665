// Test harness for the browser tests: a static file server for packages/web (the built
// module in pkg/, the compiled TypeScript in dist/, the test pages in test/pages/) and
// headless Chromium through playwright-core. Chromium is Debian's package
// (scripts/services/chromium.sh); CLIENTFUL_CHROMIUM overrides its path.
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { createInterface } from "node:readline";
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
      // Bare-module subpaths mapped by a page's import map ("lib0/" to
      // /node_modules/lib0/) name files without their ".js", as Node's resolver allows.
      const body = await readFile(file).catch((e) =>
        extname(file) === "" ? readFile(file + ".js") : Promise.reject(e),
      );
      res.writeHead(200, {
        "content-type": types[extname(file) || ".js"] ?? "application/octet-stream",
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

/** The repository root. */
export const repo = join(packageRoot, "../..");
/** The cargo target directory the test command builds into. */
export const targetDir = process.env.CARGO_TARGET_DIR ?? join(process.env.HOME, ".cache/clientful/target");

/** Builds (if needed) the CLI and the native room peer; returns their paths. */
export function buildNative() {
  execFileSync(
    "cargo",
    ["build", "-q", "-p", "clientful-cli", "--bin", "clientful", "-p", "clientful-net", "--example", "room_peer"],
    { cwd: repo, stdio: "inherit", env: { ...process.env, CARGO_TARGET_DIR: targetDir } },
  );
  return { cli: join(targetDir, "debug/clientful"), peer: join(targetDir, "debug/examples/room_peer") };
}

/** Starts a process and collects its stdout lines; `waitFor(re)` resolves to the first line matching. */
export function start(cmd, args) {
  const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "inherit"] });
  const lines = [];
  const waiters = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.re.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.ok(line);
      }
    }
  });
  return {
    child,
    lines,
    send: (line) => child.stdin.write(line + "\n"),
    waitFor: (re, ms = 20000) =>
      new Promise((ok, fail) => {
        const hit = lines.find((l) => re.test(l));
        if (hit) return ok(hit);
        const w = { re, ok };
        waiters.push(w);
        setTimeout(() => fail(new Error(`timed out waiting for ${re} in ${cmd}; got:\n${lines.join("\n")}`)), ms);
      }),
    stop: () => child.kill("SIGTERM"),
  };
}

/** Polls `f` every 50 ms until it returns something truthy, or fails after `ms`. */
export const until = async (what, f, ms = 20000) => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

/**
 * Opens `path` of the static server in a new page of `context` and waits for its
 * `window.ready`. Returns the page, its console errors (see `watchErrors`), and every
 * WebSocket frame it sends or receives, as the broker sees them (for plaintext scans).
 */
export async function openPage(context, url) {
  const page = await context.newPage();
  const errors = watchErrors(page);
  const frames = [];
  page.on("websocket", (ws) => {
    ws.on("framesent", (f) => frames.push(Buffer.from(f.payload)));
    ws.on("framereceived", (f) => frames.push(Buffer.from(f.payload)));
  });
  await page.goto(url);
  await page.waitForFunction(() => window.ready);
  return { page, errors, frames };
}

/** Starts a `clientful broker` on loopback ports; resolves to it and its `ws://` URL. */
export async function startBroker(cli) {
  const broker = start(cli, ["broker", "--ws-listen", "127.0.0.1:0", "--quic-listen", "127.0.0.1:0"]);
  const wsAddr = /ws=(\S+)/.exec(await broker.waitFor(/listening ws=/))[1];
  return { broker, url: `ws://${wsAddr}/v1/ws` };
}

/**
 * Runs `body` with a real `clientful broker` on loopback, the static server and headless
 * Chromium, and always tears them down, with every native process `body` handed to
 * `track` (each told `quit`, then stopped). `body` gets `{ peer, url, server, browser,
 * track }`: the native room peer's path, the broker's `ws://` URL, the server (its `url`),
 * the browser, and `track(process) -> process`.
 */
export async function withBrokerAndBrowser(body) {
  const { cli, peer } = buildNative();
  const { broker, url } = await startBroker(cli);
  const server = await serveStatic();
  const browser = await launchChromium();
  const natives = [];
  const track = (p) => (natives.push(p), p);
  try {
    return await body({ peer, url, server, browser, track });
  } finally {
    for (const p of natives) {
      p.send("quit");
      p.stop();
    }
    broker.stop();
    await browser.close();
    await server.close();
  }
}
