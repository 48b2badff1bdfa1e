// Upstream TLS: the gateway verifies the upstream's certificate against the configured CA and
// presents its own client certificate (upstream mTLS); a certificate it cannot verify is a
// 502 upstream_unreachable, never a silent downgrade.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { request } from 'undici';
import { createCa, issueClientCertificate, issueServerCertificate } from '../../src/pki/dev-ca.ts';
import { startHarness } from '../helpers/harness.ts';
import type { Harness } from '../helpers/harness.ts';

let h: Harness;
let upstream: https.Server;

before(async () => {
  const upstreamCa = await createCa({ commonName: 'Upstream CA' });
  const otherCa = await createCa({ commonName: 'Unrelated CA' });
  const gatewayCa = await createCa({ commonName: 'Gateway client CA' });
  const serverCert = await issueServerCertificate(upstreamCa, { dnsNames: ['orders.internal.test'], ipAddresses: ['127.0.0.1'] });
  const clientCert = await issueClientCertificate(gatewayCa, { commonName: 'portcullis-gateway' });

  // The upstream only talks to clients with a certificate from the gateway's client CA.
  upstream = https.createServer(
    { cert: serverCert.certPem, key: serverCert.keyPem, ca: gatewayCa.certPem, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ client: peer.subject?.CN ?? null }));
    },
  );
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const port = (upstream.address() as AddressInfo).port;

  h = await startHarness(
    `
version: 1
listeners:
  - name: public
    zone: public
    port: 0
    hostnames: [localhost]
upstreams:
  - id: verified
    url: https://127.0.0.1:${port}
    tls:
      ca: upstream-ca.crt
      cert: gateway-client.crt
      key: gateway-client.key
      servername: orders.internal.test
  - id: wrong-ca
    url: https://127.0.0.1:${port}
    tls:
      ca: other-ca.crt
      cert: gateway-client.crt
      key: gateway-client.key
      servername: orders.internal.test
  - id: no-client-cert
    url: https://127.0.0.1:${port}
    tls:
      ca: upstream-ca.crt
      servername: orders.internal.test
routes:
  - { id: verified, zone: public, methods: [GET], path: /verified, upstream: verified, auth: none }
  - { id: wrong-ca, zone: public, methods: [GET], path: /wrong-ca, upstream: wrong-ca, auth: none }
  - { id: no-client-cert, zone: public, methods: [GET], path: /no-client-cert, upstream: no-client-cert, auth: none }
`,
    {
      files: {
        'upstream-ca.crt': upstreamCa.certPem,
        'other-ca.crt': otherCa.certPem,
        'gateway-client.crt': clientCert.certPem,
        'gateway-client.key': clientCert.keyPem,
      },
    },
  );
});

after(async () => {
  await h?.close();
  upstream.closeAllConnections();
  await new Promise((resolve) => upstream.close(resolve));
});

async function get(path: string) {
  const response = await request(`${h.url('public')}${path}`, { headers: { host: 'localhost' } });
  return { status: response.statusCode, body: await response.body.text() };
}

test('an https upstream is verified against its CA and sees the gateway\'s client certificate', async () => {
  const result = await get('/verified');
  assert.equal(result.status, 200, result.body);
  assert.equal(JSON.parse(result.body).client, 'portcullis-gateway');
});

test('an upstream certificate that does not chain to the configured CA: 502 upstream_unreachable', async () => {
  const result = await get('/wrong-ca');
  assert.equal(result.status, 502);
  assert.equal(JSON.parse(result.body).code, 'upstream_unreachable');
});

test('an upstream that requires a client certificate the gateway does not have: 502, not forwarded', async () => {
  const result = await get('/no-client-cert');
  assert.equal(result.status, 502, result.body);
  assert.match(JSON.parse(result.body).code, /^upstream_(unreachable|bad_response)$/);
});
