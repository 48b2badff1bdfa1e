/**
 * Converts the policy variables of one request, once, into the values the CEL evaluator reads:
 * the declared message types, `Map`s for maps, BigInt for integers (CEL `int`), doubles for the
 * other numbers. Every rule of the request then reads the same context.
 *
 * SECURITY.md JWT-20: maps are `Map`s (no prototype), and keys named like members of
 * `Object.prototype` are left out, so `has(token.constructor)` is false and `token.toString`
 * is a missing key (an evaluation error, which denies).
 */
import type { PolicyContext, PolicyVariables } from './types.ts';
import { CelCredential, CelPartner, CelRequest, CelRoute } from './cel-environment.ts';
import { isPrototypeName } from './prototype-names.ts';

/**
 * Deepest claim nesting carried into CEL. Token parsing already bounds depth (SECURITY.md
 * JWT-17); this is a backstop. Claims nested deeper leave `token` out of the context as a whole,
 * so every rule that reads `token` fails (and denies): dropping only the deep part could turn a
 * `deny` rule's `has(...)` false, or an `all(...)` true.
 */
const MAX_CLAIM_DEPTH = 16;

class TooDeep extends Error {}

export function policyContext(variables: PolicyVariables): PolicyContext {
  const { partner, credential, token, request, route } = variables;
  const celVariables = new Map<string, unknown>([
    [
      'partner',
      new CelPartner({
        id: partner.id,
        tier: partner.tier,
        status: partner.status,
        attributes: celMap(partner.attributes, 1),
        agreement_id: partner.agreement_id,
      }),
    ],
    ['credential', new CelCredential({ id: credential.id, type: credential.type, long_lived: credential.long_lived })],
    ...tokenEntry(token),
    [
      'request',
      new CelRequest({
        method: request.method,
        path: request.path,
        host: request.host,
        params: stringMap(request.params),
        purpose: request.purpose,
        source_ip: request.source_ip,
        time: request.time,
        environment: request.environment,
        scopes: request.scopes.filter((scope) => !isPrototypeName(scope)),
      }),
    ],
    ['route', new CelRoute({ id: route.id, api: route.api, sensitivity: route.sensitivity, transaction_type: route.transaction_type })],
  ]);
  return { celVariables };
}

function tokenEntry(token: Readonly<Record<string, unknown>>): [string, unknown][] {
  try {
    return [['token', celMap(token, 1)]];
  } catch (error) {
    if (error instanceof TooDeep) return [];
    throw error;
  }
}

function stringMap(record: Readonly<Record<string, string>>): Map<string, string> {
  const map = new Map<string, string>();
  for (const key of Object.keys(record)) {
    const value = record[key];
    if (!isPrototypeName(key) && typeof value === 'string') map.set(key, value);
  }
  return map;
}

function celMap(record: Readonly<Record<string, unknown>>, depth: number): Map<string, unknown> {
  const map = new Map<string, unknown>();
  // Own enumerable keys only: nothing inherited is ever read.
  for (const key of Object.keys(record)) {
    if (isPrototypeName(key)) continue;
    const value = celValue(record[key], depth);
    if (value !== undefined) map.set(key, value);
  }
  return map;
}

/** A JSON value as CEL sees it; undefined when it has no CEL form (a map leaves it out). */
function celValue(value: unknown, depth: number): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      // CEL `int` is 64-bit; a JSON integer beyond 2^53 already lost precision, so stays a double.
      if (Number.isSafeInteger(value)) return BigInt(value);
      return Number.isFinite(value) ? value : undefined;
    case 'object':
      if (value === null) return null;
      if (depth >= MAX_CLAIM_DEPTH) throw new TooDeep();
      if (Array.isArray(value)) {
        const list: unknown[] = [];
        for (const item of value) {
          const converted = celValue(item, depth + 1);
          // A list is taken whole or not at all: `all()` over a shortened list could pass.
          if (converted === undefined) return undefined;
          list.push(converted);
        }
        return list;
      }
      return celMap(value as Record<string, unknown>, depth + 1);
    default:
      return undefined;
  }
}
