/**
 * Hostname matching shared by validation (does a listener serve this route host?) and the
 * compiled listeners (does this listener serve the request's Host?). One rule, one place:
 * `*.example.com` matches exactly one extra, non-empty label (`a.example.com`, not
 * `example.com`, not `a.b.example.com`), as TLS wildcard certificates do (RFC 6125 §6.4.3).
 */

/** Builds `servesHost(host)` for a list of lowercase exact names and `*.suffix` wildcards. */
export function hostMatcher(hostnames: readonly string[]): (host: string) => boolean {
  const exact = new Set<string>();
  const wildcardParents = new Set<string>();
  for (const name of hostnames) {
    if (name.startsWith('*.')) wildcardParents.add(name.slice(2));
    else exact.add(name);
  }
  return (host: string): boolean => {
    if (exact.has(host)) return true;
    const dot = host.indexOf('.');
    return dot > 0 && wildcardParents.has(host.slice(dot + 1));
  };
}

/**
 * True when a route host can receive traffic from listeners serving `hostnames`: an exact host
 * must be served; a wildcard host must be listed as such or cover at least one served name.
 */
export function routeHostIsServed(routeHost: string, hostnames: readonly string[]): boolean {
  if (!routeHost.startsWith('*.')) return hostMatcher(hostnames)(routeHost);
  const covers = hostMatcher([routeHost]);
  return hostnames.some((name) => name === routeHost || (!name.startsWith('*.') && covers(name)));
}
