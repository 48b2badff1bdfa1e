/**
 * Stage 2 — transport identity: what the TLS connection proves. For now it records the
 * negotiated protocol, cipher, SNI and ALPN on the context (and so on the decision record);
 * client certificates and revocation checks are added here by the mTLS work.
 */
import type { RequestContext, StageOutcome } from './context.ts';

export function transportIdentity(ctx: RequestContext): StageOutcome {
  const socket = ctx.tlsSocket;
  if (!socket) return undefined;
  const servername = socket.servername;
  ctx.tls = {
    protocol: socket.getProtocol(),
    cipher: socket.getCipher()?.name ?? null,
    sni: typeof servername === 'string' ? servername : null,
    alpn: typeof socket.alpnProtocol === 'string' ? socket.alpnProtocol : null,
  };
  return undefined;
}
