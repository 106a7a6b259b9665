// Makes and changes a did:plc through a PLC directory with @did-plc/lib's client and real
// secp256k1 keys (@atproto/crypto), and signs statements with the DID's `clientful`
// verification key. State (the DID and the exported private keys) lives in a JSON file.
//
//   node did.mjs create URL STATE       new DID (genesis: rotation key R, atproto key P),
//                                       then an update adding verification method
//                                       `clientful` (key C); prints the DID
//   node did.mjs sign STATE FILE        prints base64url(r||s), C's low-S ECDSA-SHA256
//                                       signature over FILE's bytes
//   node did.mjs drop-key URL STATE     an update without the `clientful` method
//   node did.mjs tombstone URL STATE    deactivates the DID
import { readFileSync, writeFileSync } from 'node:fs';
import * as plc from '@did-plc/lib';
import { Secp256k1Keypair } from '@atproto/crypto';

const b64url = (bytes) => Buffer.from(bytes).toString('base64url');
const hex = (bytes) => Buffer.from(bytes).toString('hex');
const load = (path) => JSON.parse(readFileSync(path, 'utf8'));
const key = (h) => Secp256k1Keypair.import(h, { exportable: true });

const [cmd, a, b] = process.argv.slice(2);
if (cmd === 'create') {
  const client = new plc.Client(a);
  const [rot, pds, cf] = await Promise.all(
    [0, 1, 2].map(() => Secp256k1Keypair.create({ exportable: true })),
  );
  const did = await client.createDid({
    signingKey: pds.did(),
    handle: 'bob.test',
    pds: 'https://pds.invalid',
    rotationKeys: [rot.did()],
    signer: rot,
  });
  await client.updateData(did, rot, (op) => ({
    ...op,
    verificationMethods: { ...op.verificationMethods, clientful: cf.did() },
  }));
  writeFileSync(
    b,
    JSON.stringify({
      did,
      rotation: hex(await rot.export()),
      clientful: hex(await cf.export()),
    }),
  );
  console.log(did);
} else if (cmd === 'sign') {
  const st = load(a);
  const cf = await key(st.clientful);
  console.log(b64url(await cf.sign(readFileSync(b))));
} else if (cmd === 'drop-key') {
  const st = load(b);
  const client = new plc.Client(a);
  await client.updateData(st.did, await key(st.rotation), (op) => {
    const { clientful: _dropped, ...rest } = op.verificationMethods;
    return { ...op, verificationMethods: rest };
  });
} else if (cmd === 'tombstone') {
  const st = load(b);
  await new plc.Client(a).tombstone(st.did, await key(st.rotation));
} else {
  console.error('usage: node did.mjs create|sign|drop-key|tombstone ...');
  process.exit(2);
}
