/**
 * Issue 8's Node peer: the baseline proxy (fastify 5 + @fastify/http-proxy, logger off) with a
 * JWT check in an `onRequest` hook, by fast-jwt: the signature with one public key and one
 * algorithm, `exp`, `iss` and `aud`, each required. fast-jwt's default keeps no verified-token
 * cache, so every request pays for a signature check. A missing or invalid token gets 401.
 * Run as its own process by the benchmark:
 *
 *   node targets/fastify-jwt.ts --port 8080 --upstream http://127.0.0.1:8081 --prefix /bench \
 *     --public-key pub.pem --algorithm RS256 --issuer https://… --audience https://…
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import httpProxy from '@fastify/http-proxy';
import { createVerifier } from 'fast-jwt';
import type { Algorithm } from 'fast-jwt';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    upstream: { type: 'string' },
    prefix: { type: 'string', default: '/bench' },
    'public-key': { type: 'string' },
    algorithm: { type: 'string', default: 'RS256' },
    issuer: { type: 'string' },
    audience: { type: 'string' },
  },
});
if (!values.port || !values.upstream || !values['public-key'] || !values.issuer || !values.audience) {
  process.stderr.write(
    'usage: node targets/fastify-jwt.ts --port PORT --upstream URL --public-key PEM_FILE --issuer ISS --audience AUD [--algorithm RS256] [--prefix /bench]\n',
  );
  process.exit(2);
}

const verify = createVerifier({
  key: readFileSync(values['public-key'], 'utf8'),
  algorithms: [values.algorithm as Algorithm],
  allowedIss: values.issuer,
  allowedAud: values.audience,
  // fast-jwt checks exp, iss and aud only when the token has them: require them, as HAProxy's row does.
  requiredClaims: ['exp', 'iss', 'aud'],
});

const BEARER = /^Bearer (\S+)$/i;

const app = Fastify({ logger: false });
// Registered before the proxy so that it runs for the proxy's routes too.
app.addHook('onRequest', (request, reply, done) => {
  const token = BEARER.exec(request.headers.authorization ?? '')?.[1];
  if (token === undefined) {
    void reply.code(401).send();
    return;
  }
  try {
    verify(token);
  } catch {
    void reply.code(401).send();
    return;
  }
  done();
});
await app.register(httpProxy, {
  upstream: values.upstream,
  prefix: values.prefix,
  rewritePrefix: values.prefix,
});
await app.listen({ host: '127.0.0.1', port: Number(values.port) });

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void app.close().finally(() => process.exit(0));
  });
}
