/**
 * The declared purpose of a request: why the partner says it is calling (e.g. `fraud_check`).
 * A route that requires one names where it comes from: a request header first, else a token
 * claim. A purpose is a short id; anything else (a list, a number, an over-long or odd string, a
 * header sent twice) is treated as not declared, so it can only ever fail a purpose check.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { CompiledRoute } from '../config/snapshot.ts';
import { isPrototypeName } from './prototype-names.ts';

/** The shape of a purpose id (the same as configuration ids, so it can match `allowed`). */
const PURPOSE_ID = /^[a-z0-9][a-z0-9_.-]{0,62}$/;

export function declaredPurpose(
  route: Pick<CompiledRoute, 'purpose'>,
  headers: IncomingHttpHeaders,
  claims: Readonly<Record<string, unknown>>,
): string | null {
  const source = route.purpose;
  if (source === null) return null;
  if (source.header !== null && Object.hasOwn(headers, source.header)) {
    const fromHeader = asPurpose(headers[source.header]);
    if (fromHeader !== null) return fromHeader;
  }
  if (source.claim !== null && Object.hasOwn(claims, source.claim)) return asPurpose(claims[source.claim]);
  return null;
}

function asPurpose(value: unknown): string | null {
  // A repeated header arrives as an array (or joined with ", "): neither is one purpose.
  if (typeof value !== 'string' || !PURPOSE_ID.test(value)) return null;
  // SECURITY.md JWT-20: `constructor` fits the id shape but never names a purpose.
  return isPrototypeName(value) ? null : value;
}
