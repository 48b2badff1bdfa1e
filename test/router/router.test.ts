// The route table. One shared case table (STYLE.md item 16), run against every matcher through
// `runCases`; today there is one, `Router`. Conflict detection has its own table below.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RouteConflictError, Router } from '../../src/router/router.ts';
import type { RoutableRoute, RouteMatch } from '../../src/router/router.ts';

function route(id: string, path: string, methods: readonly string[] = ['GET'], hosts: readonly string[] | null = null): RoutableRoute {
  return { id, hosts, methods, path };
}

type Expected = { route: string; params?: Record<string, string> } | 'not_found' | { allow: readonly string[] };

interface Case {
  readonly name: string;
  readonly routes: readonly RoutableRoute[];
  readonly host?: string;
  readonly method?: string;
  readonly path: string;
  readonly expect: Expected;
}

// Route sets shared by several cases.
const orders = [
  route('orders.list', '/orders', ['GET', 'POST']),
  route('orders.get', '/orders/{id}', ['GET', 'DELETE']),
  route('orders.export', '/orders/export'),
  route('orders.items', '/orders/{id}/items/{item}', ['GET', 'PUT']),
  route('files', '/files/{path*}', ['GET']),
  route('root', '/'),
];

const backtracking = [
  route('literal.deep', '/a/b/c'),
  route('param.then.literal', '/a/{x}/d'),
  route('rest', '/a/{tail*}'),
];

const hosts = [
  route('any', '/h'),
  route('wildcard', '/h', ['GET'], ['*.example.com']),
  route('exact', '/h', ['GET'], ['api.example.com']),
  route('exact.post.only', '/p', ['POST'], ['api.example.com']),
  route('any.get', '/p', ['GET']),
  route('other.host.only', '/o', ['GET'], ['other.example.net']),
];

// More literal siblings than the router compares in place, so the wide (hashed) path is used too.
const wide = [
  ...Array.from({ length: 12 }, (_, i) => route(`wide.${i}`, `/w/item${i}/{id}`)),
  route('wide.param', '/w/{other}/{id}'),
];

const CASES: readonly Case[] = [
  // literals and params
  { name: 'root', routes: orders, path: '/', expect: { route: 'root' } },
  { name: 'literal', routes: orders, path: '/orders', expect: { route: 'orders.list' } },
  { name: 'param', routes: orders, path: '/orders/42', expect: { route: 'orders.get', params: { id: '42' } } },
  { name: 'literal beats param', routes: orders, path: '/orders/export', expect: { route: 'orders.export' } },
  {
    name: 'two params',
    routes: orders,
    method: 'PUT',
    path: '/orders/42/items/7',
    expect: { route: 'orders.items', params: { id: '42', item: '7' } },
  },
  {
    name: 'a literal value still fills a param further down',
    routes: orders,
    path: '/orders/export/items/1',
    expect: { route: 'orders.items', params: { id: 'export', item: '1' } },
  },
  {
    name: 'params are returned as in the canonical path, not decoded',
    routes: orders,
    path: '/orders/a%20b%2Cc',
    expect: { route: 'orders.get', params: { id: 'a%20b%2Cc' } },
  },
  { name: 'a literal prefix is not the literal', routes: orders, path: '/orders/exportx', expect: { route: 'orders.get', params: { id: 'exportx' } } },
  { name: 'too many segments', routes: orders, path: '/orders/42/x', expect: 'not_found' },
  { name: 'unknown literal', routes: orders, path: '/customers', expect: 'not_found' },
  { name: 'case-sensitive literal', routes: orders, path: '/Orders', expect: 'not_found' },
  { name: 'trailing slash is not the literal', routes: orders, path: '/orders/', expect: 'not_found' },
  { name: 'trailing slash is not an empty param', routes: orders, path: '/orders/42/items/', expect: 'not_found' },

  // rest
  { name: 'rest, one segment', routes: orders, path: '/files/a', expect: { route: 'files', params: { path: 'a' } } },
  { name: 'rest, many segments', routes: orders, path: '/files/a/b/c.txt', expect: { route: 'files', params: { path: 'a/b/c.txt' } } },
  { name: 'rest keeps a trailing slash', routes: orders, path: '/files/a/', expect: { route: 'files', params: { path: 'a/' } } },
  { name: 'rest needs at least one segment', routes: orders, path: '/files', expect: 'not_found' },
  { name: 'rest needs a non-empty segment', routes: orders, path: '/files/', expect: 'not_found' },
  {
    name: 'rest at the root',
    routes: [route('all', '/{all*}')],
    path: '/x/y',
    expect: { route: 'all', params: { all: 'x/y' } },
  },
  { name: 'rest at the root does not match "/"', routes: [route('all', '/{all*}')], path: '/', expect: 'not_found' },

  // backtracking
  { name: 'deep literal', routes: backtracking, path: '/a/b/c', expect: { route: 'literal.deep' } },
  {
    name: 'literal branch fails further down, param branch wins',
    routes: backtracking,
    path: '/a/b/d',
    expect: { route: 'param.then.literal', params: { x: 'b' } },
  },
  {
    name: 'literal and param branches fail, rest wins',
    routes: backtracking,
    path: '/a/b/e',
    expect: { route: 'rest', params: { tail: 'b/e' } },
  },
  { name: 'rest takes what is left', routes: backtracking, path: '/a/b', expect: { route: 'rest', params: { tail: 'b' } } },
  {
    name: 'params captured on a failed branch do not leak',
    routes: [route('p1', '/{a}/x/{b}'), route('p2', '/{c}/{d}/y')],
    path: '/1/x/y',
    expect: { route: 'p1', params: { a: '1', b: 'y' } },
  },
  {
    name: 'a later param branch after an earlier one failed',
    routes: [route('p1', '/{a}/x/z'), route('p2', '/{c}/{d}/y')],
    path: '/1/x/y',
    expect: { route: 'p2', params: { c: '1', d: 'x' } },
  },
  {
    name: 'param names may differ between routes sharing a prefix',
    routes: [route('one', '/u/{user}/a'), route('two', '/u/{id}/b')],
    path: '/u/7/b',
    expect: { route: 'two', params: { id: '7' } },
  },

  // methods
  { name: 'method picks among routes', routes: orders, method: 'POST', path: '/orders', expect: { route: 'orders.list' } },
  { name: '405 lists the methods of the path', routes: orders, method: 'PATCH', path: '/orders', expect: { allow: ['GET', 'POST'] } },
  {
    name: '405 allow is the union over every matching template, sorted',
    routes: orders,
    method: 'PATCH',
    path: '/orders/export',
    expect: { allow: ['DELETE', 'GET'] },
  },
  {
    name: 'a method only the less specific template accepts still matches it',
    routes: orders,
    method: 'DELETE',
    path: '/orders/export',
    expect: { route: 'orders.get', params: { id: 'export' } },
  },
  { name: 'methods are case-sensitive (RFC 9110 §9.1)', routes: orders, method: 'get', path: '/orders', expect: { allow: ['GET', 'POST'] } },
  { name: 'unknown path is 404 whatever the method', routes: orders, method: 'PATCH', path: '/nope', expect: 'not_found' },

  // hosts
  { name: 'exact host beats wildcard and any', routes: hosts, host: 'api.example.com', path: '/h', expect: { route: 'exact' } },
  { name: 'wildcard beats any', routes: hosts, host: 'www.example.com', path: '/h', expect: { route: 'wildcard' } },
  { name: 'wildcard matches one label only', routes: hosts, host: 'a.b.example.com', path: '/h', expect: { route: 'any' } },
  { name: 'wildcard does not match the bare suffix', routes: hosts, host: 'example.com', path: '/h', expect: { route: 'any' } },
  { name: 'any host', routes: hosts, host: 'elsewhere.test', path: '/h', expect: { route: 'any' } },
  {
    name: 'a less specific host accepts a method the exact one does not',
    routes: hosts,
    host: 'api.example.com',
    method: 'GET',
    path: '/p',
    expect: { route: 'any.get' },
  },
  { name: 'exact host with its own method', routes: hosts, host: 'api.example.com', method: 'POST', path: '/p', expect: { route: 'exact.post.only' } },
  {
    name: '405 allow covers only routes serving this host',
    routes: hosts,
    host: 'www.example.com',
    method: 'POST',
    path: '/p',
    expect: { allow: ['GET'] },
  },
  {
    name: '405 allow for the exact host includes every host class',
    routes: hosts,
    host: 'api.example.com',
    method: 'PUT',
    path: '/p',
    expect: { allow: ['GET', 'POST'] },
  },
  { name: 'route for another host is not found', routes: hosts, host: 'api.example.com', path: '/o', expect: 'not_found' },
  { name: 'route for another host: no 405 either', routes: hosts, host: 'api.example.com', method: 'POST', path: '/o', expect: 'not_found' },
  {
    name: 'host specificity does not outrank path specificity',
    routes: [route('literal.any', '/x/y'), route('param.exact', '/x/{v}', ['GET'], ['api.example.com'])],
    host: 'api.example.com',
    path: '/x/y',
    expect: { route: 'literal.any' },
  },
  {
    name: 'a host mismatch on the literal branch backtracks to the param branch',
    routes: [route('literal.other', '/x/y', ['GET'], ['other.test']), route('param.any', '/x/{v}')],
    host: 'api.example.com',
    path: '/x/y',
    expect: { route: 'param.any', params: { v: 'y' } },
  },
  {
    name: 'a route may list several hosts',
    routes: [route('multi', '/m', ['GET'], ['a.test', '*.b.test'])],
    host: 'x.b.test',
    path: '/m',
    expect: { route: 'multi' },
  },
  { name: 'empty table', routes: [], path: '/', expect: 'not_found' },

  // wide nodes
  { name: 'wide node: literal', routes: wide, path: '/w/item11/5', expect: { route: 'wide.11', params: { id: '5' } } },
  { name: 'wide node: literal prefix is not the literal', routes: wide, path: '/w/item1x/5', expect: { route: 'wide.param', params: { other: 'item1x', id: '5' } } },
  { name: 'wide node: too few segments', routes: wide, path: '/w/item3', expect: 'not_found' },
  { name: 'wide node: 405 through the hashed branch', routes: wide, method: 'POST', path: '/w/item3/1', expect: { allow: ['GET'] } },
];

function runCases(matcher: string, newRouter: (routes: readonly RoutableRoute[]) => { match(host: string, method: string, path: string): RouteMatch<RoutableRoute> }): void {
  describe(`${matcher}: shared route cases`, () => {
    for (const c of CASES) {
      test(c.name, () => {
        const result = newRouter(c.routes).match(c.host ?? 'gw.test', c.method ?? 'GET', c.path);
        assert.deepEqual(simplify(result), c.expect);
      });
    }
  });
}

function simplify(result: RouteMatch<RoutableRoute>): Expected {
  switch (result.kind) {
    case 'not_found':
      return 'not_found';
    case 'method_not_allowed':
      return { allow: result.allow };
    case 'matched':
      return Object.keys(result.params).length === 0
        ? { route: result.route.id }
        : { route: result.route.id, params: { ...result.params } };
  }
}

runCases('Router', (routes) => new Router(routes));

describe('Router: the matched route object is the one passed in', () => {
  test('identity and params object', () => {
    const routes = [route('a', '/a/{x}')];
    const result = new Router(routes).match('h', 'GET', '/a/1');
    assert.equal(result.kind, 'matched');
    assert.equal(result.kind === 'matched' && result.route, routes[0]);
  });
});

interface ConflictCase {
  readonly name: string;
  readonly routes: readonly RoutableRoute[];
  /** The two ids reported, or null when the table is valid. */
  readonly conflict: readonly [string, string] | null;
}

const CONFLICTS: readonly ConflictCase[] = [
  { name: 'same template, same method', routes: [route('a', '/x'), route('b', '/x')], conflict: ['a', 'b'] },
  { name: 'templates equal up to param names', routes: [route('a', '/a/{x}'), route('b', '/a/{y}')], conflict: ['a', 'b'] },
  { name: 'rest templates equal up to names', routes: [route('a', '/f/{p*}'), route('b', '/f/{q*}')], conflict: ['a', 'b'] },
  { name: 'one shared method is enough', routes: [route('a', '/x', ['GET', 'PUT']), route('b', '/x', ['PUT', 'POST'])], conflict: ['a', 'b'] },
  { name: 'same exact host', routes: [route('a', '/x', ['GET'], ['h.test']), route('b', '/x', ['GET'], ['other.test', 'h.test'])], conflict: ['a', 'b'] },
  { name: 'same wildcard', routes: [route('a', '/x', ['GET'], ['*.h.test']), route('b', '/x', ['GET'], ['*.h.test'])], conflict: ['a', 'b'] },
  { name: 'host names compare case-insensitively', routes: [route('a', '/x', ['GET'], ['H.test']), route('b', '/x', ['GET'], ['h.test'])], conflict: ['a', 'b'] },
  { name: 'different methods', routes: [route('a', '/x', ['GET']), route('b', '/x', ['POST'])], conflict: null },
  { name: 'different hosts', routes: [route('a', '/x', ['GET'], ['a.test']), route('b', '/x', ['GET'], ['b.test'])], conflict: null },
  { name: 'exact and any: the exact host wins, no ambiguity', routes: [route('a', '/x', ['GET'], ['a.test']), route('b', '/x')], conflict: null },
  { name: 'exact and wildcard: the exact host wins', routes: [route('a', '/x', ['GET'], ['a.h.test']), route('b', '/x', ['GET'], ['*.h.test'])], conflict: null },
  { name: 'literal and param are different templates', routes: [route('a', '/a/b'), route('b', '/a/{x}')], conflict: null },
  { name: 'param and rest are different templates', routes: [route('a', '/a/{x}'), route('b', '/a/{x*}')], conflict: null },
  { name: 'duplicates inside one route are not a conflict', routes: [route('a', '/x', ['GET', 'GET'], ['h.test', 'h.test'])], conflict: null },
];

describe('Router: conflicts', () => {
  for (const c of CONFLICTS) {
    test(c.name, () => {
      if (c.conflict === null) {
        assert.doesNotThrow(() => new Router(c.routes));
        return;
      }
      assert.throws(
        () => new Router(c.routes),
        (error: unknown) => error instanceof RouteConflictError && error.routeIds[0] === c.conflict![0] && error.routeIds[1] === c.conflict![1],
      );
    });
  }

  test('the message names both routes, the method and the template', () => {
    assert.throws(() => new Router([route('first', '/a/{x}'), route('second', '/a/{y}')]), {
      name: 'RouteConflictError',
      message: /"first".*"second".*GET \/a\/\{y\} on any host/,
    });
  });
});

describe('Router: invalid templates are refused at construction', () => {
  for (const path of ['a', '/a//b', '/a/', '/{x*}/b', '/{x}/{x}', '/{1x}', '/{__proto__}', '/a/..', '/a%2Fb', '/a;b', '/{}']) {
    test(JSON.stringify(path), () => {
      assert.throws(() => new Router([route('bad', path)]), (error: unknown) => error instanceof Error && !(error instanceof RouteConflictError));
    });
  }
  for (const host of ['*.', 'a..b', 'a/b', '*.*.a']) {
    test(`host ${JSON.stringify(host)}`, () => {
      assert.throws(() => new Router([route('bad', '/', ['GET'], [host])]));
    });
  }
});
