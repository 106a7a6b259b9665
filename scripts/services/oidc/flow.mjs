// Obtains an id_token from the loopback provider (server.mjs) through the authorization
// code flow with PKCE, driving the provider's development login and consent forms over
// HTTP exactly as a browser would (cookies, redirects), then redeeming the code at the
// token endpoint. Prints the id_token on stdout.
//
//   node flow.mjs ISSUER CLIENT_ID NONCE [LOGIN]
import { createHash, randomBytes } from 'node:crypto';

const [issuer, clientId, nonce, login = 'bob'] = process.argv.slice(2);
if (!issuer || !clientId || !nonce) {
  console.error('usage: node flow.mjs ISSUER CLIENT_ID NONCE [LOGIN]');
  process.exit(2);
}
const redirect = 'http://127.0.0.1/cb';
const b64url = (b) => b.toString('base64url');
const verifier = b64url(randomBytes(32));
const challenge = b64url(createHash('sha256').update(verifier).digest());

const jar = new Map();
const keep = (res) => {
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    jar.set(pair.slice(0, i), pair.slice(i + 1));
  }
};
const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
const go = async (url, init = {}) => {
  const res = await fetch(new URL(url, issuer), {
    ...init,
    redirect: 'manual',
    headers: { ...(init.headers || {}), cookie: cookie() },
  });
  keep(res);
  return res;
};

const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
const auth = new URL(discovery.authorization_endpoint);
for (const [k, v] of Object.entries({
  client_id: clientId, response_type: 'code', scope: 'openid', redirect_uri: redirect,
  nonce, state: b64url(randomBytes(8)), code_challenge: challenge, code_challenge_method: 'S256',
})) auth.searchParams.set(k, v);

let res = await go(auth);
let code;
for (let step = 0; step < 12 && !code; step += 1) {
  if (res.status >= 300 && res.status < 400) {
    const loc = new URL(res.headers.get('location'), issuer);
    if (loc.href.startsWith(redirect)) {
      code = loc.searchParams.get('code');
      if (!code) throw new Error(`no code in redirect: ${loc.href}`);
      break;
    }
    res = await go(loc);
    continue;
  }
  const html = await res.text();
  const prompt = /name="prompt" value="(login|consent)"/.exec(html);
  if (!prompt) throw new Error(`unexpected page (${res.status}): ${html.slice(0, 400)}`);
  const body = new URLSearchParams({ prompt: prompt[1] });
  if (prompt[1] === 'login') {
    body.set('login', login);
    body.set('password', 'any');
  }
  res = await go(res.url || new URL(res.headers.get('content-location') || '', issuer), {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
}
if (!code) throw new Error('the flow did not reach the redirect URI');

const tok = await fetch(discovery.token_endpoint, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({
    grant_type: 'authorization_code', code, redirect_uri: redirect, client_id: clientId,
    code_verifier: verifier,
  }),
});
const json = await tok.json();
if (!json.id_token) throw new Error(`token endpoint: ${JSON.stringify(json)}`);
process.stdout.write(json.id_token);
