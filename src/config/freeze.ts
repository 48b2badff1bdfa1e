/**
 * Deep freezing for the runtime snapshot: nothing on the request path can change the rules of
 * a loaded configuration, by mistake or otherwise.
 */

/**
 * Freezes `value` and everything reachable from it. Maps and Sets are frozen and their mutators
 * disabled (Object.freeze alone leaves `set` and `add` working). Buffers cannot be frozen by the language and are
 * left as they are; objects listed in `opaque` (e.g. a Router that owns its internals) are
 * frozen at the top level only.
 */
export function deepFreeze<T>(value: T, opaque: (value: object) => boolean = () => false, seen = new WeakSet<object>()): T {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return value;
  const object = value as object;
  if (seen.has(object) || ArrayBuffer.isView(object)) return value;
  seen.add(object);
  if (opaque(object)) return Object.freeze(value);
  if (object instanceof Map) {
    for (const [key, entry] of object) {
      deepFreeze(key, opaque, seen);
      deepFreeze(entry, opaque, seen);
    }
    for (const method of ['set', 'delete', 'clear'] as const) {
      Object.defineProperty(object, method, { value: frozenMapMutation });
    }
  }
  if (object instanceof Set) {
    for (const entry of object) deepFreeze(entry, opaque, seen);
    for (const method of ['add', 'delete', 'clear'] as const) {
      Object.defineProperty(object, method, { value: frozenSetMutation });
    }
  }
  for (const key of Reflect.ownKeys(object)) {
    const descriptor = Reflect.getOwnPropertyDescriptor(object, key);
    if (descriptor && 'value' in descriptor) deepFreeze(descriptor.value, opaque, seen);
  }
  return Object.freeze(value);
}

function frozenMapMutation(): never {
  throw new TypeError('Cannot modify a frozen map');
}

function frozenSetMutation(): never {
  throw new TypeError('Cannot modify a frozen set');
}
