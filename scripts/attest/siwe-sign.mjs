// Signs Sign-In with Ethereum messages with viem, a standard wallet library, for
// reference/clientful-attest/tests/siwe_wallet.rs. Reads one JSON array of requests on
// stdin and writes one JSON array of results on stdout.
//
// Request: { domain, uri, chainId, nonce, issuedAt (ISO 8601), expirationTime?,
//            notBefore?, statement?, resources: [..] }
// Result:  { privateKey, address, message, signature } with a fresh secp256k1 key
//          (viem's generatePrivateKey), the EIP-4361 text viem writes
//          (createSiweMessage), and the EIP-191 personal-sign signature
//          (account.signMessage, 65 bytes hex: r || s || v). verifyMessage checks it.
import { createSiweMessage } from 'viem/siwe';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { verifyMessage } from 'viem';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const requests = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const out = [];
for (const r of requests) {
  const privateKey = generatePrivateKey();
  const account = privateKeyToAccount(privateKey);
  const message = createSiweMessage({
    domain: r.domain,
    address: account.address,
    uri: r.uri,
    version: '1',
    chainId: r.chainId,
    nonce: r.nonce,
    issuedAt: new Date(r.issuedAt),
    ...(r.expirationTime ? { expirationTime: new Date(r.expirationTime) } : {}),
    ...(r.notBefore ? { notBefore: new Date(r.notBefore) } : {}),
    ...(r.statement ? { statement: r.statement } : {}),
    resources: r.resources,
  });
  const signature = await account.signMessage({ message });
  if (!(await verifyMessage({ address: account.address, message, signature }))) {
    throw new Error('viem does not verify its own signature');
  }
  out.push({ privateKey, address: account.address, message, signature });
}
process.stdout.write(JSON.stringify(out));
