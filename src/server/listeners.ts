/**
 * Data-plane listeners: plain HTTP/1.1, HTTPS, or HTTPS with HTTP/2 by ALPN (HTTP/1.1 fallback).
 * Limits are set explicitly, never left to Node's defaults (SECURITY.md HT-09, ECOSYSTEM.md §2.3).
 * The server objects only route requests into the pipeline; the rules come from the current
 * snapshot, looked up per request, so a reload changes hostnames and routes without a rebind.
 */
import http from 'node:http';
import https from 'node:https';
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { constants } from 'node:crypto';
import type { CompiledListener } from '../config/snapshot.ts';
import type { DownstreamRequest, DownstreamResponse } from '../pipeline/context.ts';

export type ListenerServer = http.Server | https.Server | http2.Http2SecureServer;

export interface ListenerHandlers {
  onRequest(name: string, req: DownstreamRequest, res: DownstreamResponse): void;
  onClientError(name: string, error: NodeJS.ErrnoException, socket: Socket): void;
  /** With `refuse_at_handshake`: whether a partner accepts the client certificate of a new connection. */
  acceptsClient(name: string, socket: TLSSocket): boolean;
}

export interface BoundListener {
  readonly name: string;
  /** Settings that cannot change without a new socket; a reload rebinds when this changes. */
  readonly bindKey: string;
  readonly server: ListenerServer;
  readonly port: number;
  readonly url: string;
  spec: CompiledListener;
  /** Applies reloadable settings (timeouts, certificate) from a new snapshot. */
  update(spec: CompiledListener): void;
  /** Stops accepting; idle connections close, HTTP/2 sessions get GOAWAY. */
  stopAccepting(): Promise<void>;
  /** Ends whatever is still open (after the drain timeout). */
  destroyAll(): void;
}

export function bindKeyOf(spec: CompiledListener): string {
  const kind = spec.tls ? (spec.tls.http2 ? 'h2' : 'https') : 'http';
  // Whether client certificates are asked for is a server option, not part of the secure context.
  const clientCertificates = spec.tls ? `${spec.tls.clientCertificates}|${spec.tls.refuseAtHandshake}` : '';
  return `${spec.address}|${spec.port}|${kind}|${spec.limits.maxHeaderBytes}|${spec.limits.maxHeaders}|${clientCertificates}`;
}

/**
 * Mutual TLS (ECOSYSTEM.md §2.10): the certificate is asked for but not judged by OpenSSL, so the
 * transport-identity stage can check it against the partner's own trust (CAs, pins, names) and
 * refuse with a precise reason and a record. `refuse_at_handshake` uses the same judgment right
 * after the handshake and closes the connection before any HTTP (OpenSSL's own verification
 * would know neither pins nor which partner a CA belongs to, and would drop the chain the
 * client sent from what node reports).
 */
function tlsOptions(spec: CompiledListener) {
  const tls = spec.tls!;
  const asks = tls.clientCertificates !== 'none';
  return {
    cert: tls.cert,
    key: tls.key,
    minVersion: tls.minVersion,
    // A resumed session carries the client's leaf certificate but not the intermediates it sent,
    // so the chain could not be judged again (RFC 8705 §2 / SECURITY.md MT-01): with client
    // certificates, no session tickets, and (node keeps no server session cache) no resumption.
    ...(asks ? { secureOptions: constants.SSL_OP_NO_TICKET } : {}),
    requestCert: asks,
    rejectUnauthorized: false,
  };
}

function sameTlsContext(a: NonNullable<CompiledListener['tls']>, b: NonNullable<CompiledListener['tls']>): boolean {
  return a.cert.equals(b.cert) && a.key.equals(b.key);
}

export async function bindListener(spec: CompiledListener, handlers: ListenerHandlers): Promise<BoundListener> {
  const { name, limits } = spec;
  const onRequest = (req: DownstreamRequest, res: DownstreamResponse): void => handlers.onRequest(name, req, res);
  let server: ListenerServer;
  const http1Options: http.ServerOptions = {
    maxHeaderSize: limits.maxHeaderBytes,
    requireHostHeader: true,
    insecureHTTPParser: false,
    joinDuplicateHeaders: false,
    // Slow-loris defence: the timer checks run at this interval.
    connectionsCheckingInterval: 1000,
  };
  if (!spec.tls) {
    server = http.createServer(http1Options, onRequest as http.RequestListener);
  } else if (!spec.tls.http2) {
    server = https.createServer({ ...http1Options, ...tlsOptions(spec), ALPNProtocols: ['http/1.1'] }, onRequest as http.RequestListener);
  } else {
    server = http2.createSecureServer(
      {
        ...tlsOptions(spec),
        allowHTTP1: true,
        ALPNProtocols: ['h2', 'http/1.1'],
        maxHeaderListPairs: limits.maxHeaders + 8,
        maxSessionInvalidFrames: 100,
        maxSessionRejectedStreams: 100,
        peerMaxConcurrentStreams: 100,
        settings: { maxConcurrentStreams: 100, maxHeaderListSize: limits.maxHeaderBytes, enablePush: false },
      },
      onRequest as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
    );
    // The HTTP/1.1 fallback of an HTTP/2 server reads these from the server object.
    Object.assign(server, { maxHeaderSize: limits.maxHeaderBytes, requireHostHeader: true });
  }
  applyLimits(server, spec);
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => handlers.onClientError(name, error, socket));
  // Node hands CONNECT to a separate event and would drop the socket silently; the gateway
  // never tunnels, so it is refused like any malformed request, with a record.
  server.on('connect', (_req: http.IncomingMessage, socket: Socket) => {
    const error: NodeJS.ErrnoException = new Error('CONNECT is not supported');
    error.code = 'PORTCULLIS_CONNECT_REFUSED';
    handlers.onClientError(name, error, socket);
  });

  const sessions = new Set<http2.ServerHttp2Session>();
  if (spec.tls?.http2) {
    const h2 = server as http2.Http2SecureServer;
    h2.on('session', (session) => {
      sessions.add(session);
      session.once('close', () => sessions.delete(session));
    });
  }
  // A TLS handshake that fails (bad client hello, no shared cipher) is not a request; the
  // socket is simply closed.
  server.on('tlsClientError', (_error: Error, socket: TLSSocket) => socket.destroy());
  if (spec.tls?.refuseAtHandshake) {
    server.on('secureConnection', (socket: TLSSocket) => {
      if (bound.spec.tls?.refuseAtHandshake && !handlers.acceptsClient(name, socket)) socket.destroy();
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // Not exclusive: the workers of `serve --workers N` share the socket through their primary.
    server.listen({ host: spec.address, port: spec.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = spec.address.includes(':') ? `[${spec.address}]` : spec.address;
  let currentTls = spec.tls;

  const bound: BoundListener = {
    name,
    bindKey: bindKeyOf(spec),
    server,
    port,
    url: `${spec.tls ? 'https' : 'http'}://${host}:${port}`,
    spec,
    update(next) {
      bound.spec = next;
      applyLimits(server, next);
      if (next.tls && currentTls && !sameTlsContext(next.tls, currentTls)) {
        // Certificate (or partner CA) rotation without a restart; existing connections keep their session.
        (server as https.Server).setSecureContext(tlsOptions(next));
        currentTls = next.tls;
      }
    },
    stopAccepting() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ('closeIdleConnections' in server) server.closeIdleConnections();
        for (const session of sessions) session.close();
      });
    },
    destroyAll() {
      if ('closeAllConnections' in server) server.closeAllConnections();
      for (const session of sessions) session.destroy();
    },
  };
  return bound;
}

function applyLimits(server: ListenerServer, spec: CompiledListener): void {
  const { limits } = spec;
  const target = server as http.Server;
  target.headersTimeout = limits.headersTimeoutMs;
  target.requestTimeout = limits.requestTimeoutMs;
  target.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // One above the limit: the ingress stage refuses the excess instead of Node truncating it.
  target.maxHeadersCount = limits.maxHeaders + 1;
  // HTTP/2 sessions idle longer than the keep-alive time are closed.
  if (spec.tls?.http2) (server as http2.Http2SecureServer).setTimeout(Math.max(limits.keepAliveTimeoutMs, limits.requestTimeoutMs));
}
