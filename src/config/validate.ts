/**
 * Semantic validation: the second pass, over what the schema cannot see on one field at a time —
 * references between sections, duplicates, zones and hosts, referenced files, route conflicts,
 * and (in `validate-identity.ts`, `validate-access.ts`) issuers, credentials, grants and rules.
 *
 * It runs on the field-by-field view (`config-view.ts`), so it reports alongside schema issues
 * rather than after they are fixed. A check only judges what it can see whole: "unknown
 * upstream" is only said when every upstream's id could be read.
 */
import { isIP } from 'node:net';
import { Router, RouteConflictError } from '../router/router.ts';
import type { RoutableRoute } from '../router/router.ts';
import { duplicatesIn, knownIds, unknownRef } from './checks.ts';
import type { ValidationContext } from './checks.ts';
import { allHave, configView } from './config-view.ts';
import type { ConfigView } from './config-view.ts';
import { caBundle, certificateAndKey } from './file-checks.ts';
import { routeHostIsServed } from './hosts.ts';
import type { ConfigPath, PendingIssue } from './issues.ts';
import type { Zone } from './schema.ts';
import { grantChecks, policyChecks, routeAccessChecks } from './validate-access.ts';
import { credentialChecks, identityFileChecks, introspectionChecks, issuerChecks } from './validate-identity.ts';
import { adminChecks, limitChecks, stateChecks } from './validate-limits.ts';
import { mtlsChecks, mtlsFileChecks } from './validate-mtls.ts';
import { tokenFileChecks, tokenServiceChecks } from './validate-tokens.ts';

export type { ValidationContext } from './checks.ts';

export async function validateConfig(data: unknown, context: ValidationContext): Promise<PendingIssue[]> {
  const view = configView(data);
  const issues: PendingIssue[] = [
    ...duplicateIds(view, context),
    ...listenerAddresses(view, context),
    ...references(view),
    ...zonesAndHosts(view),
    ...upstreamSettings(view),
    ...routeConflicts(view, context),
    ...issuerChecks(view, context),
    ...introspectionChecks(view, context),
    ...credentialChecks(view, context),
    ...routeAccessChecks(view),
    ...grantChecks(view),
    ...policyChecks(view, context),
    ...stateChecks(view),
    ...adminChecks(view),
    ...limitChecks(view),
    ...mtlsChecks(view),
    ...tokenServiceChecks(view),
  ];
  const fileIssues = await Promise.all([...fileChecks(view, context), ...identityFileChecks(view, context), ...mtlsFileChecks(view, context), ...tokenFileChecks(view, context)]);
  issues.push(...fileIssues.flat());
  return issues;
}

/**
 * Ids that name one thing each. Grants are not among them: a partner may hold several grants
 * for one API (sandbox at any time, production in office hours), and one that passes is enough.
 */
function duplicateIds(view: ConfigView, context: ValidationContext): PendingIssue[] {
  return [
    ...duplicatesIn(view.listeners, 'listeners', 'name', 'listener name', context),
    ...duplicatesIn(view.upstreams, 'upstreams', 'id', 'upstream id', context),
    ...duplicatesIn(view.apis, 'apis', 'id', 'api id', context),
    ...duplicatesIn(view.partners, 'partners', 'id', 'partner id', context),
    ...duplicatesIn(view.routes, 'routes', 'id', 'route id', context),
  ];
}

/** Two sockets on one port collide when the addresses are equal or one is a wildcard covering the other. */
function addressesOverlap(a: string, b: string): boolean {
  if (a === b || a === '::' || b === '::' || a === '0:0:0:0:0:0:0:0' || b === '0:0:0:0:0:0:0:0') return true;
  return (a === '0.0.0.0' && isIP(b) === 4) || (b === '0.0.0.0' && isIP(a) === 4);
}

function listenerAddresses(view: ConfigView, context: ValidationContext): PendingIssue[] {
  const issues: PendingIssue[] = [];
  // A hostname would be resolved at bind time and could land on another interface than intended.
  const requireIp = (address: string | undefined, path: ConfigPath): void => {
    if (address !== undefined && isIP(address) === 0) {
      issues.push({ code: 'CONFIG_INVALID_VALUE', path, message: `expected an IP address such as 127.0.0.1, 0.0.0.0 or :: (hostnames are not resolved), got "${address}"` });
    }
  };
  requireIp(view.ops.address, ['ops', 'address']);

  const bound: { address: string; port: number; name: string; index: number }[] = [];
  view.listeners.entries.forEach((listener, index) => {
    requireIp(listener.address, ['listeners', index, 'address']);
    const { address, port, name } = listener;
    // Port 0 asks the OS for a free port: never a collision.
    if (address === undefined || port === undefined || port === 0) return;
    const label = name === undefined ? `listeners[${index}]` : `listener "${name}"`;
    const ops = view.ops;
    if (ops.address !== undefined && ops.port === port && addressesOverlap(address, ops.address)) {
      issues.push({ code: 'CONFIG_DUPLICATE_ID', path: ['listeners', index, 'port'], message: `${label} binds ${address}:${port}, which the ops listener (${ops.address}:${ops.port}) already uses` });
    }
    const clash = bound.find((other) => other.port === port && addressesOverlap(other.address, address));
    if (clash) {
      const line = context.lineOf(['listeners', clash.index, 'port']);
      issues.push({
        code: 'CONFIG_DUPLICATE_ID',
        path: ['listeners', index, 'port'],
        message: `${label} binds ${address}:${port}, which listener "${clash.name}" (line ${line}) already binds as ${clash.address}:${clash.port}`,
      });
    }
    bound.push({ address, port, name: name ?? `listeners[${index}]`, index });
  });
  return issues;
}

function references(view: ConfigView): PendingIssue[] {
  const issues: PendingIssue[] = [];
  const upstreams = knownIds(view.upstreams);
  const apis = knownIds(view.apis);
  view.routes.entries.forEach((route, index) => {
    if (upstreams && route.upstream !== undefined && !upstreams.has(route.upstream)) {
      issues.push(unknownRef('upstream', route.upstream, upstreams, ['routes', index, 'upstream']));
    }
    if (apis && route.api !== undefined && !apis.has(route.api)) {
      issues.push(unknownRef('api', route.api, apis, ['routes', index, 'api']));
    }
  });
  if (apis) {
    view.partners.entries.forEach((partner, index) => {
      partner.grants.entries.forEach((grant, grantIndex) => {
        if (grant.api !== undefined && !apis.has(grant.api)) issues.push(unknownRef('api', grant.api, apis, ['partners', index, 'grants', grantIndex, 'api']));
      });
    });
  }
  return issues;
}

function zonesAndHosts(view: ConfigView): PendingIssue[] {
  const issues: PendingIssue[] = [];
  const listenersKnown = allHave(view.listeners, 'zone') && allHave(view.listeners, 'hostnames');
  const hostnamesByZone = new Map<Zone, string[]>();
  for (const listener of view.listeners.entries) {
    if (listener.zone && listener.hostnames) hostnamesByZone.set(listener.zone, [...(hostnamesByZone.get(listener.zone) ?? []), ...listener.hostnames]);
  }

  view.routes.entries.forEach((route, index) => {
    const { zone } = route;
    if (zone === undefined) return;
    // Fail closed: outside the public zone a route always requires a credential.
    if (route.auth === 'none' && zone !== 'public') {
      issues.push({ code: 'CONFIG_CONFLICT', path: ['routes', index, 'auth'], message: `"auth: none" is only allowed in the public zone; ${zone}-zone routes always require a credential` });
    }
    if (!listenersKnown) return;
    const served = hostnamesByZone.get(zone);
    if (!served) {
      issues.push({ code: 'CONFIG_DANGLING_REF', path: ['routes', index, 'zone'], message: `no listener is in the "${zone}" zone, so this route can never be reached` });
      return;
    }
    route.hosts?.forEach((host, hostIndex) => {
      if (!routeHostIsServed(host, served)) {
        issues.push({
          code: 'CONFIG_DANGLING_REF',
          path: ['routes', index, 'hosts', hostIndex],
          message: `host "${host}" is not served by any ${zone}-zone listener (served: ${[...new Set(served)].join(', ')})`,
        });
      }
    });
  });
  return issues;
}

function upstreamSettings(view: ConfigView): PendingIssue[] {
  const issues: PendingIssue[] = [];
  view.upstreams.entries.forEach((upstream, index) => {
    const at = (...rest: string[]): ConfigPath => ['upstreams', index, ...rest];
    if (upstream.url !== undefined) {
      const url = new URL(upstream.url);
      if (url.username || url.password) {
        issues.push({ code: 'CONFIG_INVALID_VALUE', path: at('url'), message: 'the upstream URL must not carry credentials (user:password@)' });
      }
      if (url.search || url.hash || upstream.url.includes('?') || upstream.url.includes('#')) {
        issues.push({ code: 'CONFIG_INVALID_VALUE', path: at('url'), message: 'the upstream URL must not have a query or fragment: routed paths are appended to its path' });
      }
      if (url.protocol === 'http:' && upstream.tls) {
        issues.push({ code: 'CONFIG_CONFLICT', path: at('tls'), message: '"tls" is set on an http:// upstream; use an https:// URL or remove "tls"' });
      }
    }
    const tls = upstream.tls;
    if (tls?.cert !== undefined && tls.key === undefined) {
      issues.push({ code: 'CONFIG_CONFLICT', path: at('tls', 'cert'), message: '"cert" is set without "key": upstream mTLS needs both' });
    }
    if (tls?.key !== undefined && tls.cert === undefined) {
      issues.push({ code: 'CONFIG_CONFLICT', path: at('tls', 'key'), message: '"key" is set without "cert": upstream mTLS needs both' });
    }
  });
  return issues;
}

interface PlacedRoute extends RoutableRoute {
  readonly index: number;
}

/**
 * Builds each zone's router as compile will, reporting every ambiguity: after a conflict the
 * later route is set aside and the router rebuilt, so one bad route does not hide another.
 */
function routeConflicts(view: ConfigView, context: ValidationContext): PendingIssue[] {
  const issues: PendingIssue[] = [];
  const byZone = new Map<Zone, PlacedRoute[]>();
  const seenIds = new Set<string>();
  view.routes.entries.forEach((route, index) => {
    const { id, zone, methods, path } = route;
    // Duplicate ids are reported on their own; the router tells routes apart by id.
    if (id === undefined || zone === undefined || methods === undefined || path === undefined || seenIds.has(id)) return;
    seenIds.add(id);
    byZone.set(zone, [...(byZone.get(zone) ?? []), { id, hosts: route.hosts ?? null, methods, path, index }]);
  });

  for (const routes of byZone.values()) {
    let remaining = routes;
    for (;;) {
      try {
        new Router(remaining);
        break;
      } catch (error) {
        if (!(error instanceof RouteConflictError)) {
          // The schema already guarantees what the router parses; say so plainly if they ever disagree.
          issues.push({ code: 'CONFIG_INVALID_VALUE', path: ['routes'], message: error instanceof Error ? error.message : String(error) });
          break;
        }
        const [first, second] = error.routeIds.map((id) => remaining.find((route) => route.id === id)!) as [PlacedRoute, PlacedRoute];
        const [earlier, later] = first.index < second.index ? [first, second] : [second, first];
        issues.push({
          code: 'CONFIG_CONFLICT',
          path: ['routes', later.index],
          message: `${error.message} (route "${earlier.id}" is at line ${context.lineOf(['routes', earlier.index])})`,
        });
        remaining = remaining.filter((route) => route !== later);
      }
    }
  }
  return issues;
}

function fileChecks(view: ConfigView, context: ValidationContext): Promise<PendingIssue[]>[] {
  const { files } = context;
  const checks: Promise<PendingIssue[]>[] = [];
  view.listeners.entries.forEach((listener, index) => {
    if (listener.tls) checks.push(certificateAndKey(files, ['listeners', index, 'tls'], listener.tls.cert, listener.tls.key));
  });
  view.upstreams.entries.forEach((upstream, index) => {
    const tls = upstream.tls;
    if (!tls) return;
    if (tls.ca !== undefined) checks.push(caBundle(files, ['upstreams', index, 'tls', 'ca'], tls.ca));
    if (tls.cert !== undefined && tls.key !== undefined) checks.push(certificateAndKey(files, ['upstreams', index, 'tls'], tls.cert, tls.key));
  });
  return checks;
}
