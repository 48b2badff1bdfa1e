/**
 * SECURITY.md JWT-20: a claim, scope, attribute or purpose named like a member of
 * `Object.prototype` (`__proto__`, `constructor`, `toString`, `hasOwnProperty`, …) never
 * satisfies a check. Lookups use Sets, Maps and `Object.hasOwn` anyway; refusing the names as
 * well means that no code path, present or future, can confuse such a value with an inherited
 * member.
 */
const PROTOTYPE_NAMES: ReadonlySet<string> = new Set([...Object.getOwnPropertyNames(Object.prototype), 'prototype']);

export function isPrototypeName(name: string): boolean {
  return PROTOTYPE_NAMES.has(name);
}
