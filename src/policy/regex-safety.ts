/**
 * CEL's `matches()` runs a JavaScript RegExp (a backtracking engine, not RE2 as in cel-go) over
 * request data the caller controls (path, params, claims). A pattern whose matching time can grow
 * exponentially with the input would let one request cost us seconds of CPU (SECURITY.md §0.1:
 * availability is security). The policy author is trusted, the input is not, so policy regexes
 * are held to a conservative shape at load time: no backreferences, no lookarounds, and no
 * unbounded repetition of a group that itself repeats or offers alternatives.
 */

/** Why the pattern is refused, or null when it has the safe shape. */
export function regexBacktrackingRisk(pattern: string): string | null {
  try {
    new RegExp(pattern);
  } catch (error) {
    return `invalid regular expression: ${(error as Error).message}`;
  }
  // Per open group: whether it contains a repetition or an alternation.
  const openGroups: boolean[] = [];
  let closedGroupIsAmbiguous = false;
  let previousClosedGroup = false;
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]!;
    if (char === '\\') {
      const next = pattern[i + 1] ?? '';
      if (/[1-9k]/.test(next)) return 'backreferences are not allowed in policy regular expressions';
      i++;
      previousClosedGroup = false;
      continue;
    }
    if (char === '[') {
      // A character class: skip to its end (escapes inside included).
      for (i++; i < pattern.length && pattern[i] !== ']'; i++) if (pattern[i] === '\\') i++;
      previousClosedGroup = false;
      continue;
    }
    if (char === '(') {
      if (/^\?<?[=!]/.test(pattern.slice(i + 1, i + 4))) return 'lookaround assertions are not allowed in policy regular expressions';
      // Skip the group's `?:` or `?<name>` prefix, so its `?` is not read as a repetition.
      const prefix = /^\?(:|<[^>]*>)/.exec(pattern.slice(i + 1));
      if (prefix !== null) i += prefix[0].length;
      openGroups.push(false);
      previousClosedGroup = false;
      continue;
    }
    if (char === ')') {
      closedGroupIsAmbiguous = openGroups.pop() ?? false;
      if (closedGroupIsAmbiguous) markEnclosingGroup(openGroups);
      previousClosedGroup = true;
      continue;
    }
    if (char === '|') {
      markEnclosingGroup(openGroups);
      previousClosedGroup = false;
      continue;
    }
    const repetition = repetitionAt(pattern, i);
    if (repetition !== null) {
      if (repetition.unbounded && previousClosedGroup && closedGroupIsAmbiguous) {
        return `the group before offset ${i} repeats (or has alternatives) and is repeated again: matching time could grow exponentially`;
      }
      markEnclosingGroup(openGroups);
      // Skip the repetition and its lazy `?` modifier.
      i += repetition.length - 1;
      if (pattern[i + 1] === '?') i++;
      previousClosedGroup = false;
      continue;
    }
    previousClosedGroup = false;
  }
  return null;
}

function markEnclosingGroup(openGroups: boolean[]): void {
  if (openGroups.length > 0) openGroups[openGroups.length - 1] = true;
}

/** `*`, `+`, `?` or `{n}`, `{n,}`, `{n,m}` at `index`; `{m}` with m > 1 counts as unbounded. */
function repetitionAt(pattern: string, index: number): { unbounded: boolean; length: number } | null {
  const char = pattern[index];
  if (char === '*' || char === '+') return { unbounded: true, length: 1 };
  if (char === '?') return { unbounded: false, length: 1 };
  if (char !== '{') return null;
  const braces = /^\{(\d+)(,(\d*))?\}/.exec(pattern.slice(index));
  if (braces === null) return null;
  const upper = braces[2] === undefined ? Number(braces[1]) : braces[3] === '' ? Infinity : Number(braces[3]);
  return { unbounded: upper > 1, length: braces[0].length };
}
