// A real OpenID provider (npm oidc-provider, pinned in package.json) on loopback for the
// attestation tests (spec §14, docs/identity.md). Started by scripts/services/oidc.sh.
//
//   node server.mjs PORT
//
// Issuer http://127.0.0.1:PORT. Three public clients (token endpoint auth `none`, PKCE):
//   clientful-test  id_token signed RS256 (the audience the tests expect)
//   clientful-es    id_token signed ES256
//   other-app       id_token signed RS256 (a token for someone else: wrong audience)
// Their redirect URI is http://127.0.0.1/cb: flow.mjs never follows the last redirect, it
// reads the code from its Location. Signing keys (RSA 2048, EC P-256) are generated at
// start. The provider's development interactions (login form, consent form) are on: any
// login name is accepted as the account id, which is what a test needs.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node server.mjs PORT');
  process.exit(2);
}

const jwk = (alg, kid, options) => {
  const { privateKey } = generateKeyPairSync(alg === 'ES256' ? 'ec' : 'rsa', options);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid };
};

const redirect = 'http://127.0.0.1/cb';
const client = (client_id, alg) => ({
  client_id,
  token_endpoint_auth_method: 'none',
  application_type: 'native',
  redirect_uris: [redirect],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  id_token_signed_response_alg: alg,
});

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    client('clientful-test', 'RS256'),
    client('clientful-es', 'ES256'),
    client('other-app', 'RS256'),
  ],
  jwks: {
    keys: [
      jwk('RS256', 'rsa-1', { modulusLength: 2048 }),
      jwk('ES256', 'ec-1', { namedCurve: 'P-256' }),
    ],
  },
  enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES256'] },
  pkce: { required: () => true },
  cookies: { keys: ['clientful-test-cookie-key'] },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub }),
  }),
  ttl: { IdToken: 3600, AccessToken: 3600, AuthorizationCode: 60 },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on http://127.0.0.1:${port}`);
});
