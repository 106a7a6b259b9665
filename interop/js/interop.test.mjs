// Interop between the Clientful Rust reference and the JavaScript Yjs and Automerge
// libraries. Run with `node --test interop/js/` (after `npm ci --prefix interop/js`), or
// `bash scripts/interop-js.sh`. See README.md beside this file.

import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import * as Y from 'yjs'
import * as A from '@automerge/automerge'

const repoRoot = fileURLToPath(new URL('../..', import.meta.url))

/** Runs the reference's interop example (`export` or `import`) on `dir`. */
function reference (command, dir) {
  return execFileSync(
    'cargo',
    ['run', '-q', '--locked', '-p', 'clientful-doc', '--example', 'interop', '--', command, dir],
    { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 600_000 }
  )
}

const CHUNK_MAGIC = [0x85, 0x6f, 0x4a, 0x83]
const CHUNK_CHANGE = 1 // uncompressed change chunk; 2 is a deflate-compressed one

/** The chunk type byte of one Automerge chunk (magic, 4-byte checksum, type). */
function chunkType (bytes) {
  assert.deepEqual([...bytes.subarray(0, 4)], CHUNK_MAGIC, 'Automerge chunk magic')
  return bytes[8]
}

/**
 * The reference accepts only uncompressed change chunks in an envelope (DOC-5).
 * Automerge JS 3.x returns uncompressed chunks from getChanges (checked below); should a
 * later version return a compressed chunk (type 2), re-encode it uncompressed: the change
 * hash covers the uncompressed bytes, so it is the same change.
 */
function uncompressedChange (bytes) {
  if (chunkType(bytes) === CHUNK_CHANGE) return bytes
  const again = A.encodeChange(A.decodeChange(bytes))
  assert.equal(chunkType(again), CHUNK_CHANGE, 're-encoded change is uncompressed')
  assert.equal(A.decodeChange(again).hash, A.decodeChange(bytes).hash)
  return again
}

function concat (chunks) {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
  let at = 0
  for (const c of chunks) { out.set(c, at); at += c.length }
  return out
}

describe('Clientful reference <-> JavaScript Yjs and Automerge', () => {
  let dir
  let manifest
  const js = { yjs: { payloads: [], forged: [] }, automerge: { payloads: [], forged: [] } }
  const jsText = {}

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'clientful-interop-'))
    reference('export', dir)
    manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'))
  })

  after(() => {
    if (dir && !process.env.CLIENTFUL_INTEROP_KEEP) rmSync(dir, { recursive: true, force: true })
  })

  const payload = (file) => new Uint8Array(readFileSync(join(dir, file)))
  const write = (crdt, list, file, bytes) => {
    writeFileSync(join(dir, file), bytes)
    js[crdt][list].push(file)
  }

  it('the exported text exercises UTF-16 (non-BMP characters)', () => {
    for (const crdt of ['yjs', 'automerge']) {
      const text = manifest[crdt].text
      assert.ok([...text].length < text.length, `${crdt}: no surrogate pairs in ${text}`)
    }
    assert.equal(manifest.yjs.text, manifest.automerge.text)
  })

  it('Yjs: JS applies the reference updates, then edits as the bound client id', () => {
    const m = manifest.yjs
    const doc = new Y.Doc()
    doc.clientID = m.js_yjs_client_id
    for (const p of m.payloads) Y.applyUpdate(doc, payload(p.payload))
    const text = doc.getText(m.text_root)
    assert.equal(text.toString(), m.text)

    // Local updates, collected per commit (one envelope each).
    let pending = []
    doc.on('update', (update, origin, _doc, tr) => { if (tr.local) pending.push(update) })
    const commit = (file) => {
      assert.ok(pending.length > 0)
      write('yjs', 'payloads', file, Y.mergeUpdates(pending))
      pending = []
    }

    doc.transact(() => {
      text.insert(0, '🎉 ')
      text.insert(text.length, ' — JS ✓ 😀')
    })
    commit('js-yjs-01.bin')
    // Delete the reference's 𝄞 (a surrogate pair) and type after the emoji.
    const s = text.toString()
    text.delete(s.indexOf('𝄞'), '𝄞'.length)
    text.insert(s.indexOf('🤝') + '🤝'.length, '🙂')
    commit('js-yjs-02.bin')
    jsText.yjs = text.toString()
    assert.equal(doc.clientID, m.js_yjs_client_id, 'Yjs kept the bound client id')
    for (const f of js.yjs.payloads) {
      const clients = new Set(Y.decodeUpdate(payload(f)).structs.map((s) => s.id.client))
      assert.deepEqual([...clients], [m.js_yjs_client_id])
    }

    // Forged: content written under device 0's client id, to be sealed by the JS device.
    // (Set the client id after loading: Yjs picks a new one when a remote update
    // already contains its own.)
    const forged = new Y.Doc()
    Y.applyUpdate(forged, Y.encodeStateAsUpdate(doc))
    forged.clientID = m.devices[0].yjs_client_id
    const sv = Y.encodeStateVector(forged)
    forged.getText(m.text_root).insert(0, 'forged ')
    const forgedUpdate = Y.encodeStateAsUpdate(forged, sv)
    assert.deepEqual(
      Y.decodeUpdate(forgedUpdate).structs.map((s) => s.id.client),
      [m.devices[0].yjs_client_id]
    )
    write('yjs', 'forged', 'js-yjs-forged.bin', forgedUpdate)
  })

  it('Automerge: JS applies the reference changes, then edits as the bound actor', () => {
    const m = manifest.automerge
    let doc = A.init({ actor: m.js_automerge_actor })
    for (const p of m.payloads) {
      const bytes = payload(p.payload)
      assert.equal(chunkType(bytes), CHUNK_CHANGE, 'the reference sends uncompressed changes')
      doc = A.loadIncremental(doc, bytes)
    }
    assert.equal(doc[m.text_root], m.text)
    assert.equal(A.getActorId(doc), m.js_automerge_actor)

    const commit = (before, after, file) => {
      const changes = A.getChanges(before, after)
      assert.equal(changes.length, 1)
      for (const c of changes) {
        assert.equal(chunkType(c), CHUNK_CHANGE, 'Automerge JS emits uncompressed change chunks')
        assert.equal(A.decodeChange(c).actor, m.js_automerge_actor)
      }
      write('automerge', 'payloads', file, concat(changes.map(uncompressedChange)))
    }

    let next = A.change(doc, (d) => {
      A.splice(d, [m.text_root], 0, 0, '🎉 ')
      A.splice(d, [m.text_root], d[m.text_root].length, 0, ' — JS ✓ 😀')
    })
    commit(doc, next, 'js-automerge-01.bin')
    doc = next
    const s = doc[m.text_root]
    next = A.change(doc, (d) => {
      A.splice(d, [m.text_root], s.indexOf('𝄞'), '𝄞'.length)
      A.splice(d, [m.text_root], s.indexOf('🤝') + '🤝'.length, 0, '🙂')
    })
    commit(doc, next, 'js-automerge-02.bin')
    doc = next
    jsText.automerge = doc[m.text_root]
    // A large change: still an uncompressed chunk?
    const big = A.change(doc, (d) => { A.splice(d, [m.text_root], 0, 0, 'ü🌍'.repeat(400)) })
    assert.equal(chunkType(A.getChanges(doc, big)[0]), CHUNK_CHANGE, 'large change uncompressed')

    // Forged: a change by device 0's actor, to be sealed by the JS device.
    let forged = A.clone(doc, { actor: m.devices[0].automerge_actor })
    const before = forged
    forged = A.change(forged, (d) => { A.splice(d, [m.text_root], 0, 0, 'forged ') })
    write('automerge', 'forged', 'js-automerge-forged.bin', concat(A.getChanges(before, forged)))

    // Both CRDTs made the same edits on the same text.
    assert.equal(jsText.automerge, jsText.yjs)
  })

  it('the reference seals the JS payloads as the JS device and applies them', () => {
    writeFileSync(join(dir, 'js-manifest.json'), JSON.stringify(js, null, 2))
    const out = reference('import', dir)
    const result = JSON.parse(readFileSync(join(dir, 'import-result.json'), 'utf8'))
    for (const crdt of ['yjs', 'automerge']) {
      assert.equal(result[crdt].text, jsText[crdt], `${crdt}: reference text after import`)
      assert.equal(result[crdt].applied.length, js[crdt].payloads.length)
      assert.equal(result[crdt].rejected.length, js[crdt].forged.length, `${crdt}: forged rejected`)
      assert.ok(out.includes(JSON.stringify(jsText[crdt])), `${crdt}: printed text`)
    }
  })
})
