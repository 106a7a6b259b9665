// The web demo: a small collaborative notes-and-tasks app on @clientful/web, static files
// only. `clientful demo --web` serves it with a broker and WebDAV storage on loopback and
// writes their addresses to ./config.json.
//
// - The first tab creates a user, a space on the storage and two documents (Notes: Yjs,
//   Tasks: Automerge), and shows an invite link; a tab opening the link creates its own
//   user, accepts the invite and joins once an admin's tab admitted it (every tab syncs
//   with the storage every few seconds, which is also when an admin admits).
// - Notes: a Y.Doc bound by ClientfulProvider, shown in a plain textarea (the binding
//   below turns input into Y.Text edits and remote edits into the textarea).
// - Tasks and the photo list: an Automerge document bound by AutomergeBinding.
// - Photos: space.putFile (chunked, encrypted), listed in the Automerge document, read
//   back with space.getFile and shown as images.
// - Presence: the provider's awareness (y-protocols), sealed ephemeral messages.
//
// Each tab keeps its device in OPFS under a directory named in sessionStorage, so a
// reload reopens the same device and space.
import * as Y from "yjs";
import { Clientful, ClientfulProvider, AutomergeBinding } from "@clientful/web";

const $ = (id) => document.getElementById(id);
const SPACE = "demo";
const SYNC_EVERY_MS = 3000;
const COLORS = ["#2f6fde", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#0b7285"];

const app = { errors: [], photos: new Map() };
window.demo = app; // for tests and the curious: app.space, app.ydoc, app.am, app.state()

function fail(e) {
  const text = e?.class ? `${e.class}: ${e.message}` : String(e?.message ?? e);
  app.errors.push(text);
  console.error("clientful demo:", e);
  status(`error: ${text}`);
}
function status(text, live = false) {
  $("status").textContent = text;
  $("status").classList.toggle("live", live);
}
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

async function main() {
  const config = await (await fetch("./config.json")).json();
  const invite = new URLSearchParams(location.hash.slice(1)).get("invite");
  let dir = sessionStorage.getItem("clientful-demo-dir");
  if (dir) {
    status("reopening this tab's device…");
    app.device = await Clientful.open(dir);
    app.space = await app.device.openSpace(SPACE);
    app.name = await app.device.userName();
  } else {
    const { name } = await askName(invite);
    dir = `demo-${crypto.randomUUID()}`;
    status("creating your device…");
    app.device = await Clientful.create(dir, name);
    sessionStorage.setItem("clientful-demo-dir", dir);
    app.name = name;
    if (invite) {
      status("accepting the invite…");
      app.space = await app.device.acceptInvite(invite, SPACE, config.storage);
      history.replaceState(null, "", location.pathname);
    } else {
      status("creating the space…");
      app.space = await app.device.createSpace(SPACE, config.storage);
      await app.space.newDocument("yjs", "Notes");
      await app.space.newDocument("automerge", "Tasks");
      await app.space.sync();
    }
  }
  syncLoop();
  const docs = await documents();
  await app.space.goLive(config.broker);
  await bind(docs);
  await showInvite();
  status(`${app.name} · live`, true);
}

/** Asks for the user's name (and says whether this tab creates or joins). */
function askName(invite) {
  $("setup").hidden = false;
  $("setup-title").textContent = invite ? "Join a space" : "Start";
  $("setup-text").textContent = invite
    ? "You opened an invite link. Pick a name; this tab gets its own user and device."
    : "Pick a name. This tab creates a user, a space on the demo's storage and an invite link.";
  $("setup-go").textContent = invite ? "Join" : "Create a space";
  $("name").focus();
  return new Promise((ok) => {
    $("setup-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      $("setup-go").disabled = true;
      $("setup").hidden = true;
      ok({ name: $("name").value.trim() || "someone" });
    });
  });
}

/** Syncs with the storage now and then: admits invitees (admins), fetches what the
 * broker could not deliver (a tab that was offline), uploads what waits. */
async function syncLoop() {
  for (;;) {
    try {
      await app.space.sync();
    } catch (e) {
      if (!/offline|fetch|network/i.test(String(e?.message))) fail(e);
    }
    await sleep(SYNC_EVERY_MS);
  }
}

/** The Notes and Tasks documents, once this device can read them (a new member: once an
 * admin admitted it). */
async function documents() {
  for (let i = 0; ; i++) {
    // Items are { id, kind }; the title is read per document.
    const found = {};
    // Before admission the space may not be readable yet: try again.
    const listed = await app.space.documents().catch(() => []);
    for (const d of listed) {
      const title = await app.space.title(d.id).catch(() => undefined);
      if (d.kind === "yjs" && title === "Notes") found.notes = d.id;
      if (d.kind === "automerge" && title === "Tasks") found.tasks = d.id;
    }
    if (found.notes && found.tasks) return found;
    status(i === 0 ? "waiting to be admitted…" : `waiting to be admitted… (${i})`);
    await sleep(1000);
  }
}

async function bind(docs) {
  app.docs = docs;
  app.ydoc = new Y.Doc();
  app.provider = new ClientfulProvider(app.ydoc, app.space, docs.notes, { onError: providerError });
  await app.provider.whenSynced();
  await bindTasksDoc();
  $("app").hidden = false;
  bindTextarea($("notes"), app.ydoc.getText("text"));
  bindTasks();
  bindPresence();
}

/** The provider's errors; a build whose space cannot send ephemeral messages yet
 * ([UNSUPPORTED]) has no presence, which the page says instead of failing. */
function providerError(e) {
  if (e?.class === "UNSUPPORTED" || /^\[UNSUPPORTED\]/.test(String(e?.message))) {
    app.presence = "unsupported";
    app.showPresence?.();
    return;
  }
  fail(e);
}

// ------------------------------------------------------------------------- notes

/** A plain textarea bound to a Y.Text: local input becomes one delete and one insert at
 * the changed range; remote edits update the textarea and move the caret with the text. */
function bindTextarea(area, ytext) {
  const local = {};
  area.value = ytext.toString();
  area.addEventListener("input", () => {
    const before = ytext.toString();
    const after = area.value;
    let start = 0;
    while (start < before.length && start < after.length && before[start] === after[start]) start++;
    let end = 0;
    while (
      end < before.length - start &&
      end < after.length - start &&
      before[before.length - 1 - end] === after[after.length - 1 - end]
    ) end++;
    app.ydoc.transact(() => {
      if (before.length - start - end > 0) ytext.delete(start, before.length - start - end);
      const inserted = after.slice(start, after.length - end);
      if (inserted) ytext.insert(start, inserted);
    }, local);
  });
  ytext.observe((event, txn) => {
    if (txn.origin === local) return;
    let { selectionStart: s, selectionEnd: e } = area;
    let pos = 0;
    for (const op of event.delta) {
      if (op.retain) pos += op.retain;
      else if (op.insert) {
        const n = op.insert.length;
        if (pos < s) s += n;
        if (pos < e) e += n;
        pos += n;
      } else if (op.delete) {
        const n = op.delete;
        if (pos < s) s -= Math.min(n, s - pos);
        if (pos < e) e -= Math.min(n, e - pos);
      }
    }
    area.value = ytext.toString();
    if (document.activeElement === area) area.setSelectionRange(s, e);
  });
}

// ------------------------------------------------------------------------- tasks and photos

/** Binds the Tasks document (again, after a refusal below). */
async function bindTasksDoc() {
  app.am?.destroy();
  app.am = new AutomergeBinding(app.space, app.docs.tasks, {
    onError: (e) => {
      // Known issue (reported): the session's replica can move to a new Automerge actor
      // incarnation after this tab's own changes were restored, and then refuses the JS
      // document's next change as "change by an actor not bound to its author". The
      // change is made again on a document bound anew (below), not lost.
      if (/actor not bound to its author/.test(String(e?.message))) {
        app.amRefused = true;
        return;
      }
      fail(e);
    },
  });
  await app.am.whenSynced();
  app.am.on("change", render);
}

/** One change of the Tasks document; made again on a fresh binding if refused as above. */
async function tasksChange(fn) {
  app.am.change(fn);
  await app.am.flush();
  if (app.amRefused) {
    app.amRefused = false;
    app.amRebinds = (app.amRebinds ?? 0) + 1;
    console.warn("clientful demo: the Tasks change was refused (actor); binding the document again");
    await bindTasksDoc();
    app.am.change(fn);
    await app.am.flush();
    render(app.am.doc);
  }
}

function bindTasks() {
  $("task-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const title = $("task-title").value.trim();
    if (!title) return;
    $("task-title").value = "";
    // One root key per task (and per photo): concurrent additions never conflict, as
    // two members creating one shared list at the same time would (Automerge keeps one).
    const id = crypto.randomUUID();
    void tasksChange((d) => {
      d[`task:${id}`] = { title, done: false, by: app.name, at: Date.now() };
    });
  });
  $("photo").addEventListener("change", async () => {
    const file = $("photo").files?.[0];
    if (!file) return;
    const progress = $("photo-progress");
    progress.hidden = false;
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      // The SDK keeps a media type with the file (its name goes into the document).
      const ref = await app.space.putFile(file.type || "application/octet-stream", bytes, (done, total) => {
        progress.max = total || 1;
        progress.value = done;
      });
      await tasksChange((d) => {
        d[`photo:${ref}`] = { ref, name: file.name, type: file.type || "image/png", by: app.name, at: Date.now() };
      });
    } catch (e) {
      fail(e);
    } finally {
      progress.hidden = true;
      $("photo").value = "";
    }
  });
  render(app.am.doc);
}

/** The entries of `doc` under keys `prefix:…`, oldest first: `[key, value]`. */
function entries(doc, prefix) {
  return Object.entries(doc)
    .filter(([k, v]) => k.startsWith(prefix) && v && typeof v === "object")
    .sort(([ka, a], [kb, b]) => (a.at ?? 0) - (b.at ?? 0) || (ka < kb ? -1 : 1));
}

function render(doc) {
  const list = $("tasks");
  list.replaceChildren(
    ...entries(doc, "task:").map(([key, t]) => {
      const li = document.createElement("li");
      li.classList.toggle("done", !!t.done);
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = !!t.done;
      box.addEventListener("change", () => void tasksChange((d) => (d[key].done = box.checked)));
      const span = document.createElement("span");
      span.textContent = t.title;
      li.append(box, span);
      return li;
    }),
  );
  for (const [, p] of entries(doc, "photo:")) showPhoto(p);
}

/** Shows a photo once: read from storage (verified, decrypted) and shown from a Blob URL. */
async function showPhoto(p) {
  if (app.photos.has(p.ref)) return;
  const figure = document.createElement("figure");
  const img = document.createElement("img");
  img.alt = p.name;
  const caption = document.createElement("figcaption");
  caption.textContent = `${p.name} · ${p.by ?? ""}`;
  figure.append(img, caption);
  $("photos").append(figure);
  app.photos.set(p.ref, { img, bytes: null });
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const bytes = await app.space.getFile(p.ref);
      app.photos.get(p.ref).bytes = bytes;
      img.src = URL.createObjectURL(new Blob([bytes], { type: p.type }));
      return;
    } catch {
      // Not in storage yet (the uploader's sync is on its way): try again.
      await sleep(1000);
    }
  }
}

// ------------------------------------------------------------------------- presence

function bindPresence() {
  const awareness = app.provider.awareness;
  const color = COLORS[app.ydoc.clientID % COLORS.length];
  awareness.setLocalStateField("user", { name: app.name, color });
  const show = () => {
    const people = [...awareness.getStates().entries()]
      .filter(([, s]) => s?.user)
      .sort(([a], [b]) => (a === app.ydoc.clientID ? -1 : b === app.ydoc.clientID ? 1 : a - b))
      .map(([id, s]) => {
        const li = document.createElement("li");
        li.style.background = s.user.color ?? "#555";
        li.textContent = id === app.ydoc.clientID ? `${s.user.name} (you)` : s.user.name;
        return li;
      });
    if (app.presence === "unsupported") {
      people.push(Object.assign(document.createElement("li"), { textContent: "presence: not in this build", className: "off" }));
    }
    $("presence").replaceChildren(...people);
  };
  app.showPresence = show;
  awareness.on("change", show);
  show();
}

// ------------------------------------------------------------------------- invite

async function showInvite() {
  let code;
  try {
    code = await app.space.createInvite("writer", false);
  } catch {
    return; // not an admin: no invite link here
  }
  const link = `${location.origin}${location.pathname}#invite=${encodeURIComponent(code)}`;
  $("invite").hidden = false;
  $("invite-link").value = link;
  $("invite-copy").addEventListener("click", () => navigator.clipboard?.writeText(link));
}

/** What this tab shows and holds, for tests: the texts, the tasks, the digests, who is here. */
app.state = async () => {
  await app.provider?.flush?.();
  await app.am?.flush?.();
  const s = app.space;
  return {
    notes: app.ydoc?.getText("text").toString(),
    tasks: app.am ? entries(app.am.doc, "task:").map(([, t]) => ({ title: t.title, done: !!t.done })) : [],
    photos: app.am
      ? entries(app.am.doc, "photo:").map(([, p]) => ({ name: p.name, size: app.photos.get(p.ref)?.bytes?.length ?? null }))
      : [],
    notesReplica: app.docs ? await s.text(app.docs.notes) : undefined,
    notesDigest: app.docs ? await s.stateDigest(app.docs.notes) : undefined,
    tasksDigest: app.docs ? await s.stateDigest(app.docs.tasks) : undefined,
    presence:
      app.presence === "unsupported"
        ? "unsupported"
        : [...(app.provider?.awareness.getStates().values() ?? [])].map((v) => v?.user?.name).filter(Boolean).sort(),
    errors: app.errors,
    tasksRebinds: app.amRebinds ?? 0,
  };
};

main().catch(fail);
