/**
 * The route table: (host, method, canonical path) → route.
 *
 * A segment trie. At every segment a literal child is tried before the `{param}` child, and that
 * before a `{rest*}` ending; when a more specific branch fails further down the walk backtracks.
 * The trie is a tree, so one lookup visits each node at most once: the cost is bounded by the
 * size of the table, never exponential in the path.
 *
 * Each template ends in a leaf that holds its routes by host class, then method:
 * exact host > `*.suffix` (exactly one extra label) > any host. Two routes that would land on the
 * same (leaf, host class, host, method) are ambiguous and refused at construction.
 *
 * Paths must already be canonical (`src/http/canonical-path.ts`); params are slices of it,
 * never decoded. A trailing `/` is an empty last segment: it matches no literal and no `{param}`,
 * only the inside of a `{rest*}`.
 *
 * Match results of routes without params are shared frozen objects: never mutate a result.
 */

export interface RoutableRoute {
  readonly id: string;
  readonly hosts: readonly string[] | null;
  readonly methods: readonly string[];
  readonly path: string;
}

export type RouteMatch<R> =
  | { kind: 'matched'; route: R; params: Readonly<Record<string, string>> }
  | { kind: 'not_found' }
  | { kind: 'method_not_allowed'; allow: readonly string[] };

export class RouteConflictError extends Error {
  readonly routeIds: readonly [string, string];

  constructor(first: string, second: string, detail: string) {
    super(`routes "${first}" and "${second}" are ambiguous: both match ${detail}`);
    this.name = 'RouteConflictError';
    this.routeIds = [first, second];
  }
}

interface Candidate<R> {
  readonly route: R;
  readonly paramNames: readonly string[];
  /** Precomputed result for routes without params. */
  readonly staticResult: RouteMatch<R> | null;
}

/** method → candidate, for one host class of one leaf. */
type ByMethod<R> = Map<string, Candidate<R>>;

interface Leaf<R> {
  /** exact host → by method */
  exact: Map<string, ByMethod<R>> | null;
  /** wildcard suffix (`example.com` for `*.example.com`) → by method */
  wildcard: Map<string, ByMethod<R>> | null;
  any: ByMethod<R> | null;
}

interface TrieNode<R> {
  literals: Map<string, TrieNode<R>> | null;
  /**
   * Few literal children are compared in place (`startsWith` at the segment's offset): no slice,
   * no hashing. Set by `seal()` once the table is built; `literals` then stays only for wide nodes.
   */
  literalTexts: readonly string[] | null;
  literalNodes: readonly TrieNode<R>[] | null;
  param: TrieNode<R> | null;
  /** Routes ending here (the path is fully consumed). */
  end: Leaf<R> | null;
  /** Routes whose template ends with `{name*}` at this position. */
  rest: Leaf<R> | null;
}

type Segment =
  | { kind: 'literal'; text: string }
  | { kind: 'param'; name: string }
  | { kind: 'rest'; name: string };

const NOT_FOUND = Object.freeze({ kind: 'not_found' } as const);
const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export class Router<R extends RoutableRoute> {
  readonly #root: TrieNode<R> = newNode();
  /** Capture slots of the current walk: [start, end) of each param, in template order. */
  readonly #starts: Int32Array;
  readonly #ends: Int32Array;
  /** Set by the walk when a leaf matched path and host but not the method. */
  #sawOtherMethod = false;
  /** Whether any route lists a `*.suffix` host (else the host's parent domain is never needed). */
  readonly #hasWildcards: boolean;

  constructor(routes: readonly R[]) {
    let maxParams = 0;
    for (const route of routes) {
      const segments = parseTemplate(route);
      const paramNames: string[] = [];
      let node = this.#root;
      let leaf: Leaf<R> | null = null;
      for (const segment of segments) {
        if (segment.kind === 'literal') {
          node.literals ??= new Map();
          let child = node.literals.get(segment.text);
          if (child === undefined) {
            child = newNode();
            node.literals.set(segment.text, child);
          }
          node = child;
        } else if (segment.kind === 'param') {
          paramNames.push(segment.name);
          node = node.param ??= newNode();
        } else {
          paramNames.push(segment.name);
          leaf = node.rest ??= newLeaf();
        }
      }
      leaf ??= node.end ??= newLeaf();
      maxParams = Math.max(maxParams, paramNames.length);

      const candidate: Candidate<R> = {
        route,
        paramNames,
        staticResult: paramNames.length === 0 ? Object.freeze({ kind: 'matched', route, params: NO_PARAMS }) : null,
      };
      addToLeaf(leaf, candidate);
    }
    seal(this.#root);
    this.#hasWildcards = routes.some((route) => route.hosts?.some((host) => host.startsWith('*.')) ?? false);
    this.#starts = new Int32Array(maxParams);
    this.#ends = new Int32Array(maxParams);
  }

  /**
   * `host`: lowercase, without port. `path`: canonical, without query.
   * Most specific path first (per segment: literal > param > rest), then most specific host.
   */
  match(host: string, method: string, path: string): RouteMatch<R> {
    // `*.suffix` matches exactly one extra, non-empty label: the part after the first dot.
    const dot = this.#hasWildcards ? host.indexOf('.') : -1;
    const parent = dot > 0 ? host.slice(dot + 1) : '';
    // The root path has no segments; anything else starts with a segment at index 1.
    const start = path.length <= 1 ? path.length + 1 : 1;

    this.#sawOtherMethod = false;
    const found = this.#find(this.#root, path, start, 0, host, parent, method);
    if (found !== null) {
      if (found.staticResult !== null) return found.staticResult;
      const names = found.paramNames;
      const params: Record<string, string> = {};
      for (let i = 0; i < names.length; i++) params[names[i]!] = path.slice(this.#starts[i], this.#ends[i]);
      return { kind: 'matched', route: found.route, params };
    }
    if (!this.#sawOtherMethod) return NOT_FOUND;

    // RFC 9110 §15.5.6: a 405 lists every method the target resource supports (for this host).
    const allow = new Set<string>();
    collectMethods(this.#root, path, start, host, parent, allow);
    return { kind: 'method_not_allowed', allow: [...allow].sort() };
  }

  /** Depth-first, most specific branch first; `pos` is the start of the current segment. */
  #find(node: TrieNode<R>, path: string, pos: number, depth: number, host: string, parent: string, method: string): Candidate<R> | null {
    const length = path.length;
    if (pos > length) {
      return node.end === null ? null : this.#pick(node.end, host, parent, method);
    }
    let end = path.indexOf('/', pos);
    if (end === -1) end = length;

    const child = literalChild(node, path, pos, end);
    if (child !== null) {
      const found = this.#find(child, path, end + 1, depth, host, parent, method);
      if (found !== null) return found;
    }
    if (end === pos) return null; // an empty (trailing) segment matches no param
    if (node.param !== null) {
      const found = this.#find(node.param, path, end + 1, depth + 1, host, parent, method);
      if (found !== null) {
        this.#starts[depth] = pos;
        this.#ends[depth] = end;
        return found;
      }
    }
    if (node.rest !== null) {
      const found = this.#pick(node.rest, host, parent, method);
      if (found !== null) {
        this.#starts[depth] = pos;
        this.#ends[depth] = length;
        return found;
      }
    }
    return null;
  }

  #pick(leaf: Leaf<R>, host: string, parent: string, method: string): Candidate<R> | null {
    let byMethod: ByMethod<R> | undefined;
    if (leaf.exact !== null && (byMethod = leaf.exact.get(host)) !== undefined) {
      const found = byMethod.get(method);
      if (found !== undefined) return found;
      this.#sawOtherMethod = true;
    }
    if (leaf.wildcard !== null && parent !== '' && (byMethod = leaf.wildcard.get(parent)) !== undefined) {
      const found = byMethod.get(method);
      if (found !== undefined) return found;
      this.#sawOtherMethod = true;
    }
    if (leaf.any !== null) {
      const found = leaf.any.get(method);
      if (found !== undefined) return found;
      this.#sawOtherMethod = true;
    }
    return null;
  }
}

function newNode<R>(): TrieNode<R> {
  return { literals: null, literalTexts: null, literalNodes: null, param: null, end: null, rest: null };
}

/** Up to this many literal children, a linear in-place comparison beats slicing and hashing. */
const MAX_INLINE_LITERALS = 8;

function seal<R>(node: TrieNode<R>): void {
  if (node.literals !== null) {
    if (node.literals.size <= MAX_INLINE_LITERALS) {
      node.literalTexts = [...node.literals.keys()];
      node.literalNodes = [...node.literals.values()];
      node.literals = null;
    }
    for (const child of node.literalNodes ?? node.literals!.values()) seal(child);
  }
  if (node.param !== null) seal(node.param);
}

/** The literal child for segment `path[pos, end)`, or null. */
function literalChild<R>(node: TrieNode<R>, path: string, pos: number, end: number): TrieNode<R> | null {
  const texts = node.literalTexts;
  if (texts !== null) {
    const length = end - pos;
    for (let i = 0; i < texts.length; i++) {
      const text = texts[i]!;
      if (text.length === length && path.startsWith(text, pos)) return node.literalNodes![i]!;
    }
    return null;
  }
  return node.literals === null ? null : node.literals.get(path.slice(pos, end)) ?? null;
}

function newLeaf<R>(): Leaf<R> {
  return { exact: null, wildcard: null, any: null };
}

/** Every branch, not just the first: the union of methods of all routes matching host and path. */
function collectMethods<R>(node: TrieNode<R>, path: string, pos: number, host: string, parent: string, into: Set<string>): void {
  const length = path.length;
  if (pos > length) {
    if (node.end !== null) leafMethods(node.end, host, parent, into);
    return;
  }
  let end = path.indexOf('/', pos);
  if (end === -1) end = length;
  const child = literalChild(node, path, pos, end);
  if (child !== null) collectMethods(child, path, end + 1, host, parent, into);
  if (end === pos) return;
  if (node.param !== null) collectMethods(node.param, path, end + 1, host, parent, into);
  if (node.rest !== null) leafMethods(node.rest, host, parent, into);
}

function leafMethods<R>(leaf: Leaf<R>, host: string, parent: string, into: Set<string>): void {
  const groups = [leaf.exact?.get(host), parent === '' ? undefined : leaf.wildcard?.get(parent), leaf.any ?? undefined];
  for (const group of groups) {
    if (group !== undefined) for (const method of group.keys()) into.add(method);
  }
}

function addToLeaf<R extends RoutableRoute>(leaf: Leaf<R>, candidate: Candidate<R>): void {
  const route = candidate.route;
  const methods = new Set(route.methods);
  if (route.hosts === null) {
    leaf.any ??= new Map();
    addMethods(leaf.any, candidate, methods, 'any host');
    return;
  }
  for (const pattern of new Set(route.hosts.map((h) => h.toLowerCase()))) {
    if (pattern.startsWith('*.')) {
      const suffix = pattern.slice(2);
      if (!isHostname(suffix)) throw new Error(`route "${route.id}": invalid host pattern "${pattern}"`);
      leaf.wildcard ??= new Map();
      addMethods(getOrCreate(leaf.wildcard, suffix), candidate, methods, `host ${pattern}`);
    } else {
      if (!isHostname(pattern)) throw new Error(`route "${route.id}": invalid host "${pattern}"`);
      leaf.exact ??= new Map();
      addMethods(getOrCreate(leaf.exact, pattern), candidate, methods, `host ${pattern}`);
    }
  }
}

function addMethods<R extends RoutableRoute>(byMethod: ByMethod<R>, candidate: Candidate<R>, methods: Set<string>, hostText: string): void {
  for (const method of methods) {
    const existing = byMethod.get(method);
    if (existing !== undefined) {
      throw new RouteConflictError(existing.route.id, candidate.route.id, `${method} ${candidate.route.path} on ${hostText}`);
    }
    byMethod.set(method, candidate);
  }
}

function getOrCreate<R>(map: Map<string, ByMethod<R>>, key: string): ByMethod<R> {
  let value = map.get(key);
  if (value === undefined) {
    value = new Map();
    map.set(key, value);
  }
  return value;
}

function isHostname(name: string): boolean {
  if (name.length === 0 || name.startsWith('.') || name.endsWith('.') || name.includes('..')) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e;
    if (!ok) return false;
  }
  return true;
}

/** Template syntax: `/`, or `/seg/seg…` where seg is a literal, `{name}`, or `{name*}` (last only). */
function parseTemplate(route: RoutableRoute): Segment[] {
  const template = route.path;
  const fail = (why: string): never => {
    throw new Error(`route "${route.id}": invalid path template "${template}": ${why}`);
  };
  if (!template.startsWith('/')) fail('must start with "/"');
  if (template === '/') return [];

  const parts = template.slice(1).split('/');
  const seen = new Set<string>();
  const segments: Segment[] = [];
  parts.forEach((part, index) => {
    if (part.startsWith('{') && part.endsWith('}')) {
      const isRest = part.endsWith('*}');
      const name = part.slice(1, isRest ? -2 : -1);
      if (!PARAM_NAME.test(name)) fail(`bad parameter name "${name}"`);
      // `__proto__` as an own key of a plain object would set its prototype instead.
      if (name === '__proto__') fail('"__proto__" cannot be a parameter name');
      if (seen.has(name)) fail(`parameter "${name}" appears twice`);
      seen.add(name);
      if (isRest && index !== parts.length - 1) fail(`{${name}*} must be the last segment`);
      segments.push(isRest ? { kind: 'rest', name } : { kind: 'param', name });
      return;
    }
    if (part === '') fail('empty segment');
    // These could never equal a segment of a canonical path (canonical-path.ts refuses them).
    if (part === '.' || part === '..') fail('dot segment');
    if (/[{}%;\\?#]/.test(part)) fail(`literal segment "${part}" contains a reserved character`);
    segments.push({ kind: 'literal', text: part });
  });
  return segments;
}
