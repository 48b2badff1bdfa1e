/**
 * Maps configuration paths back to YAML source positions. Validators only see plain data; this
 * is what lets every issue still name the exact line and column it comes from.
 */
import { isAlias, isMap, isPair, isScalar, isSeq } from 'yaml';
import type { Document, LineCounter, Node, ParsedNode, Scalar, YAMLMap } from 'yaml';
import type { ConfigPath } from './issues.ts';

export interface Position {
  readonly line: number;
  readonly col: number;
}

const START: Position = { line: 1, col: 1 };

interface Step {
  readonly node: Node;
  /** The mapping key that led to `node`, when it was reached through a mapping. */
  readonly key: Scalar | null;
}

export class SourceLocator {
  readonly #doc: Document.Parsed;
  readonly #lines: LineCounter;

  constructor(doc: Document.Parsed, lines: LineCounter) {
    this.#doc = doc;
    this.#lines = lines;
  }

  /** Position of the value at `path`, or of its nearest existing ancestor (a missing key maps to its parent). */
  valueAt(path: ConfigPath): Position {
    const steps = this.#walk(path);
    for (let index = steps.length - 1; index >= 0; index--) {
      const step = steps[index]!;
      // A block mapping or list starts on the line after its key; the key is where a reader looks.
      const preferKey = step.key !== null && (isMap(step.node) || isSeq(step.node));
      const position = (preferKey && this.#startOf(step.key!)) || this.#startOf(step.node) || (step.key && this.#startOf(step.key));
      if (position) return position;
    }
    return START;
  }

  /** Position of the mapping key that ends `path` (for unknown keys); falls back to `valueAt`. */
  keyAt(path: ConfigPath): Position {
    const steps = this.#walk(path);
    const last = steps.length === path.length + 1 ? steps.at(-1) : undefined;
    return (last?.key && this.#startOf(last.key)) ?? this.valueAt(path);
  }

  /** The scalar node exactly at `path`, if there is one. */
  scalarAt(path: ConfigPath): Scalar | undefined {
    const steps = this.#walk(path);
    if (steps.length !== path.length + 1) return undefined;
    const node = steps.at(-1)!.node;
    return isScalar(node) ? node : undefined;
  }

  /** Line and column of a character offset in the source. */
  positionOf(offset: number): Position {
    const { line, col } = this.#lines.linePos(offset);
    return { line, col };
  }

  /** The path of the innermost node that contains `offset` (to name where a YAML error is). */
  pathAt(offset: number): ConfigPath {
    const path: (string | number)[] = [];
    let node: unknown = this.#doc.contents;
    for (;;) {
      if (isMap(node)) {
        const pair = (node as YAMLMap).items.find((item) => isPair(item) && spans(item.key, item.value, offset));
        if (!pair || !isScalar(pair.key)) break;
        path.push(String(pair.key.value));
        node = pair.value;
      } else if (isSeq(node)) {
        const index = node.items.findIndex((item) => spans(item, item, offset));
        if (index < 0) break;
        path.push(index);
        node = node.items[index];
      } else break;
    }
    return path;
  }

  /** Follows `path` from the root as far as it exists; steps[0] is the root. */
  #walk(path: ConfigPath): Step[] {
    const root = this.#doc.contents as Node | null;
    if (!root) return [];
    const steps: Step[] = [{ node: root, key: null }];
    let node: Node = root;
    for (const segment of path) {
      if (isAlias(node)) {
        const target = node.resolve(this.#doc);
        if (!target) break;
        node = target;
      }
      if (isMap(node) && typeof segment === 'string') {
        const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === segment);
        if (!pair) break;
        const key = pair.key as Scalar;
        // `key:` with nothing after it has no value node; the key then stands for the value.
        const value = (pair.value as Node | null) ?? key;
        steps.push({ node: value, key });
        node = value;
      } else if (isSeq(node) && typeof segment === 'number') {
        const item = node.items[segment] as Node | undefined;
        if (!item) break;
        steps.push({ node: item, key: null });
        node = item;
      } else break;
    }
    return steps;
  }

  #startOf(node: Node): Position | null {
    const range = (node as ParsedNode).range;
    return range ? this.positionOf(range[0]) : null;
  }
}

function spans(first: unknown, last: unknown, offset: number): boolean {
  const start = (first as ParsedNode | null)?.range?.[0];
  const end = (last as ParsedNode | null)?.range?.[2] ?? (first as ParsedNode | null)?.range?.[2];
  return start !== undefined && end !== undefined && offset >= start && offset < end;
}
