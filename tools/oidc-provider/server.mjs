// A real OpenID provider (the OpenID Certified `oidc-provider` package) for Custos's tests.
//
// Start it from the directory install.sh prepared (server.mjs is copied there, beside
// node_modules/, so `oidc-provider` resolves from DIR/node_modules):
//
//   node DIR/server.mjs ['{"port":0,"clients":[...]}']
//
// Configuration (a JSON argument wins over the environment; see README.md):
//   PORT / "port"            listen port, 0 (default) picks a free one
//   HOST / "host"            listen address, default 127.0.0.1 (also [::1] when free, so that
//                            `localhost` works whichever address a client tries first)
//   ISSUER / "issuer"        default http://localhost:PORT; `{port}` in it is replaced by the
//                            listening port; a path (http://localhost:{port}/realms/x) mounts
//                            the provider under that path
//   CLIENTS / "clients"      JSON list of {client_id, client_secret, redirect_uris, ...}
//   CODE_TTL / "code_ttl"    authorization code lifetime in seconds, default 60
//   EXIT_ON_STDIN_CLOSE / "exit_on_stdin_close"   "1"/true: exit when stdin reaches EOF
//
// stdout carries exactly one line, `{"issuer":"http://localhost:N","port":N}`, once listening.
// Everything else (library notices, errors) goes to stderr.
//
// Test-only routes (not part of any real provider):
//   GET  /interaction/:uid?sub=SUB[&amr=pwd,otp][&acr=ACR]   login + consent in one step
//   POST /test/rotate-keys[?keep_old=0]                       new signing keys, {"kid": ...}

// The library prints its notices with console.info (stdout): keep stdout for the ready line.
for (const name of ['log', 'info', 'debug']) {
  console[name] = (...args) => console.error(...args);
}

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

// Resolve `oidc-provider` from beside this file (DIR/node_modules), else from NODE_PATH
// entries or the working directory, so that `node DIR/server.mjs` works from anywhere.
async function loadProvider() {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const bases = [here, ...(process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean)
    .map((p) => path.dirname(path.resolve(p))), process.cwd()];
  for (const base of bases) {
    try {
      const resolved = createRequire(path.join(base, 'noop.js')).resolve('oidc-provider');
      return await import(pathToFileURL(resolved).href);
    } catch (err) {
      if (err?.code !== 'MODULE_NOT_FOUND' && err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
    }
  }
  throw new Error(`cannot find oidc-provider (looked beside ${here}, in NODE_PATH and in ${process.cwd()}); run install.sh DIR first`);
}

function fail(message) {
  console.error(`oidc-provider test server: ${message}`);
  process.exit(2);
}

function readConfig() {
  let arg = {};
  if (process.argv[2] !== undefined) {
    try {
      arg = JSON.parse(process.argv[2]);
    } catch (err) {
      fail(`the argument is not JSON: ${err.message}`);
    }
    if (arg === null || typeof arg !== 'object' || Array.isArray(arg)) fail('the argument must be a JSON object');
  }
  const env = process.env;
  const pick = (key, envKey) => (arg[key] !== undefined ? arg[key] : env[envKey]);

  const port = Number(pick('port', 'PORT') ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad port ${pick('port', 'PORT')}`);

  let clients = pick('clients', 'CLIENTS');
  if (typeof clients === 'string') {
    try {
      clients = JSON.parse(clients);
    } catch (err) {
      fail(`CLIENTS is not JSON: ${err.message}`);
    }
  }
  clients ??= [{
    client_id: 'custos-test',
    client_secret: 'custos-test-secret',
    redirect_uris: ['http://127.0.0.1:9/cb'],
  }];
  if (!Array.isArray(clients)) fail('clients must be a JSON list');
  for (const c of clients) {
    if (!c || typeof c.client_id !== 'string' || typeof c.client_secret !== 'string'
      || !Array.isArray(c.redirect_uris) || !c.redirect_uris.length) {
      fail(`each client needs client_id, client_secret and a non-empty redirect_uris list: ${JSON.stringify(c)}`);
    }
  }

  const codeTtl = Number(pick('code_ttl', 'CODE_TTL') ?? 60);
  if (!Number.isInteger(codeTtl) || codeTtl < 1) fail('code_ttl must be a positive integer (seconds)');

  const exitOnStdin = pick('exit_on_stdin_close', 'EXIT_ON_STDIN_CLOSE');
  return {
    port,
    host: pick('host', 'HOST') || '127.0.0.1',
    issuer: pick('issuer', 'ISSUER') || undefined,
    clients,
    codeTtl,
    exitOnStdinClose: exitOnStdin === true || exitOnStdin === '1' || exitOnStdin === 'true',
  };
}

// ---------------------------------------------------------------------------------------------
// Signing keys: one generation = an RS256 (RSA 2048) key, an ES256 (P-256) key and an EdDSA
// (Ed25519) key, generated here, each with a fresh kid.

let generation = 0;

// A full garbage collection on demand (the flag is set at run time, so `node server.mjs`
// needs no `--expose-gc`).
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc');

function newGeneration() {
  generation += 1;
  const tag = `${generation}-${crypto.randomBytes(6).toString('base64url')}`;
  const jwk = (keyObject, kid, alg) => ({
    ...keyObject.export({ format: 'jwk' }), kid, alg, use: 'sig',
  });
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const ed = crypto.generateKeyPairSync('ed25519').privateKey;
  // Node 20 can deadlock when a garbage collection during `export({format: 'jwk'})` finalizes
  // the key-generation job of the key being exported (the job's destructor takes the lock the
  // export holds; seen here as a provider that never prints its ready line). Collecting the
  // finished jobs first leaves nothing to finalize during the export.
  collectGarbage();
  return [
    jwk(rsa, `rs256-${tag}`, 'RS256'),
    jwk(ec, `es256-${tag}`, 'ES256'),
    jwk(ed, `eddsa-${tag}`, 'EdDSA'),
  ];
}

// ---------------------------------------------------------------------------------------------

const config = readConfig();
const { default: Provider } = await loadProvider().catch((err) => fail(err.message));

// Cookie signing keys stay the same for the whole run (also across key rotation).
const cookieKeys = [crypto.randomBytes(32).toString('base64url')];

let currentKeys = newGeneration();
let previousKeys = [];
let provider; // the Provider instance serving requests; replaced on key rotation
let handle; // provider.callback() of that instance

function account(sub) {
  return {
    accountId: sub,
    async claims() {
      return {
        sub,
        email: `${sub}@example.test`,
        email_verified: true,
        name: sub,
        preferred_username: sub,
      };
    },
  };
}

function buildProvider(issuer) {
  const p = new Provider(issuer, {
    // The library's in-memory adapter keeps its store at module level, so sessions, grants,
    // interactions and codes survive the re-creation of the Provider on key rotation.
    clients: config.clients.map((c) => ({
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      ...c,
    })),
    // A client registered with either method may use both: the library accepts a secret in the
    // Authorization header or in the body for client_secret_basic and client_secret_post alike.
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    responseTypes: ['code'],
    pkce: { required: () => true }, // S256 is the only method this library supports
    jwks: { keys: [...currentKeys, ...previousKeys] }, // first key of an alg signs
    cookies: { keys: cookieKeys },
    findAccount: async (_ctx, sub) => account(sub),
    // amr, acr (when the login gave one) and auth_time come with the openid scope, so every
    // ID token carries them without a `claims` request parameter.
    claims: {
      iss: null,
      sid: null,
      openid: ['sub', 'amr', 'acr', 'auth_time'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    // Claims of the granted scopes (email, profile) go into the ID token too, not only userinfo.
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: false },
      claimsParameter: { enabled: true }, // the `claims` request parameter; granted as asked
      userinfo: { enabled: true },
    },
    interactions: { url: (_ctx, interaction) => `${mountPath}/interaction/${interaction.uid}` },
    ttl: {
      AuthorizationCode: config.codeTtl,
      AccessToken: 3600,
      IdToken: 3600,
      Interaction: 3600,
      Session: 86400,
      Grant: 86400,
    },
    renderError: async (ctx, out) => {
      ctx.type = 'application/json; charset=utf-8';
      ctx.body = out;
    },
  });
  for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error']) {
    p.on(event, (_ctx, err) => {
      console.error(`oidc-provider test server: ${event}: ${err?.message}${err?.error_description ? ` (${err.error_description})` : ''}`);
    });
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Routes of this test server.

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

// GET /interaction/:uid?sub=SUB&amr=pwd,otp&acr=ACR: logs in SUB and grants what the
// authorization request asked for (its scopes and requested claims) in one step, then
// redirects (303) back into the flow. Needs the provider's `_interaction` cookie.
async function interaction(req, res, url) {
  const p = provider;
  const sub = url.searchParams.get('sub');
  if (!sub) {
    sendJson(res, 400, { error: 'invalid_request', error_description: 'the test login needs ?sub=<subject>' });
    return;
  }
  let details;
  try {
    details = await p.interactionDetails(req, res);
  } catch (err) {
    sendJson(res, 400, { error: err.error || 'invalid_request', error_description: err.error_description || err.message });
    return;
  }
  const { params } = details;
  const amrParam = url.searchParams.get('amr');
  const amr = amrParam ? amrParam.split(',').map((s) => s.trim()).filter(Boolean) : ['pwd'];
  const acr = url.searchParams.get('acr') || undefined;

  let grant;
  if (details.session?.accountId && details.session.accountId !== sub) {
    // Another account is signed in on this browser session. The library would answer with an
    // auto-submitting logout form here; a plain HTTP client can't follow that, so end the old
    // session ourselves and detach it from this interaction: the flow resumes with a new one.
    const old = details.session.cookie ? await p.Session.find(details.session.cookie) : undefined;
    if (old) await old.destroy();
    details.session = undefined;
    details.grantId = undefined;
    await details.persist();
  } else if (details.grantId) {
    grant = await p.Grant.find(details.grantId);
  }
  grant ??= new p.Grant({ accountId: sub, clientId: params.client_id });
  if (params.scope) grant.addOIDCScope(params.scope);
  if (params.claims) {
    try {
      const claims = JSON.parse(params.claims);
      const names = new Set([...Object.keys(claims.id_token || {}), ...Object.keys(claims.userinfo || {})]);
      if (names.size) grant.addOIDCClaims([...names]);
    } catch {
      // the provider already validated the claims parameter; nothing to add
    }
  }
  const grantId = await grant.save();

  const result = {
    login: { accountId: sub, amr, ...(acr ? { acr } : {}), remember: true },
    consent: { grantId },
  };
  await p.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
}

// POST /test/rotate-keys[?keep_old=0]: a new generation of signing keys signs from now on.
// By default the JWKS keeps the previous generation (one only) after the new one, so tokens
// signed before this rotation still verify; keep_old=0 drops it.
function rotateKeys(res, url, issuer) {
  const keepOld = !['0', 'false', 'no'].includes(url.searchParams.get('keep_old') || '');
  previousKeys = keepOld ? currentKeys : [];
  currentKeys = newGeneration();
  provider = buildProvider(issuer);
  handle = provider.callback();
  const kids = Object.fromEntries(currentKeys.map((k) => [k.alg, k.kid]));
  console.error(`oidc-provider test server: rotated keys, now signing with ${JSON.stringify(kids)}; previous kept: ${keepOld}`);
  sendJson(res, 200, {
    kid: kids.RS256, kids, previous_kids: previousKeys.map((k) => k.kid),
  });
}

// ---------------------------------------------------------------------------------------------

let issuer;
let mountPath = ''; // the issuer's path without a trailing slash, '' for none
const server = http.createServer((req, res) => {
  if (mountPath) {
    // Mount everything under the issuer's path; oidc-provider derives its mount path from
    // originalUrl vs url, as under an Express mount.
    const rest = req.url.startsWith(`${mountPath}/`) || req.url === mountPath
      || req.url.startsWith(`${mountPath}?`) ? req.url.slice(mountPath.length) : undefined;
    if (rest === undefined) {
      sendJson(res, 404, { error: 'not_found', error_description: `everything is under ${mountPath}/` });
      return;
    }
    req.originalUrl = req.url;
    req.url = rest.startsWith('/') ? rest : `/${rest}`;
  }
  const url = new URL(req.url, 'http://internal');
  const done = (err) => {
    console.error(`oidc-provider test server: ${req.method} ${req.url}: ${err?.stack || err}`);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err?.message || err) });
    else res.destroy();
  };
  try {
    if (url.pathname.startsWith('/interaction/') && req.method === 'GET') {
      interaction(req, res, url).catch(done);
    } else if (url.pathname === '/test/rotate-keys' && req.method === 'POST') {
      req.resume();
      req.on('end', () => {
        try { rotateKeys(res, url, issuer); } catch (err) { done(err); }
      });
    } else {
      handle(req, res);
    }
  } catch (err) {
    done(err);
  }
});

server.on('error', (err) => fail(`cannot listen on ${config.host}:${config.port}: ${err.message}`));
server.listen(config.port, config.host, () => {
  const { port } = server.address();
  issuer = config.issuer ? config.issuer.replaceAll('{port}', String(port)) : `http://localhost:${port}`;
  try {
    mountPath = new URL(issuer).pathname.replace(/\/+$/, '');
  } catch {
    fail(`the issuer is not a URL: ${issuer}`);
  }
  provider = buildProvider(issuer);
  handle = provider.callback();

  const ready = () => process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
  // `localhost` may resolve to ::1 first: serve there too when that port is free (best effort).
  if (config.host === '127.0.0.1') {
    const v6 = http.createServer(server.listeners('request')[0]);
    v6.once('error', () => ready());
    v6.listen(port, '::1', ready);
  } else {
    ready();
  }
});

if (config.exitOnStdinClose) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
