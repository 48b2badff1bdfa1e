/**
 * CEL policy rules: compiled and type-checked once per snapshot, evaluated per request.
 *
 * A `require` rule denies unless its expression is true; a `deny` rule denies when it is true.
 * Anything else — an evaluation error (a missing map key, a failed conversion), a result that is
 * not a bool — denies, for both kinds: a rule that cannot be evaluated never allows (fail closed,
 * SECURITY.md §0.2).
 */
import type { ASTNode } from '@marcbachmann/cel-js';
import type { PolicyRuleConfig } from '../config/schema.ts';
import type { CompiledRule, PolicyContext, RuleOutcome } from './types.ts';
import { RULE_LIMITS, celEnvironment } from './cel-environment.ts';
import { regexBacktrackingRisk } from './regex-safety.ts';

export { policyContext } from './policy-context.ts';

export type CompileRuleResult = { ok: true; rule: CompiledRule } | { ok: false; message: string };

/** cel-js macros that iterate over a list. */
const COMPREHENSIONS: ReadonlySet<string> = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);

/**
 * Compiles one rule. `scope` says where it was defined (`policies`, `apis[orders]`,
 * `routes[list-orders]`, `partners[acme]`) for explanations and messages.
 */
export function compileRule(rule: PolicyRuleConfig, scope: string): CompileRuleResult {
  const hasRequire = rule.require !== undefined;
  const hasDeny = rule.deny !== undefined;
  if (hasRequire === hasDeny) {
    return { ok: false, message: `rule "${rule.id}" must have exactly one of "require" or "deny"${hasRequire ? ' (it has both)' : ''}` };
  }
  const kind = hasRequire ? 'require' : 'deny';
  const source = (hasRequire ? rule.require : rule.deny)!;
  if (source.length > RULE_LIMITS.maxSourceLength) {
    return { ok: false, message: `${kind} expression is ${source.length} characters long; at most ${RULE_LIMITS.maxSourceLength} are allowed` };
  }

  let program: ReturnType<typeof celEnvironment.parse>;
  try {
    program = celEnvironment.parse(source);
  } catch (error) {
    return { ok: false, message: celErrorMessage(error, source) };
  }
  // Type-checks against the declared variables; the checked types are kept on the AST, so
  // evaluation does not check again.
  const checked = program.check();
  if (!checked.valid) return { ok: false, message: celErrorMessage(checked.error, source) };
  // A non-bool result is refused, `dyn` included (e.g. a bare `token.admin`): write
  // `token.admin == true`, so the rule's meaning does not depend on what a token carries.
  if (checked.type !== 'bool') return { ok: false, message: `${kind} expression must be a bool, but it is of type ${checked.type}` };
  const shapeProblem = costlyShape(program.ast, 0);
  if (shapeProblem !== null) return { ok: false, message: shapeProblem };

  const evaluateProgram = program;
  return {
    ok: true,
    rule: Object.freeze({
      id: rule.id,
      kind,
      reason: rule.reason ?? rule.id,
      source,
      scope,
      evaluate(context: PolicyContext): RuleOutcome {
        let value: unknown;
        try {
          value = evaluateProgram(context.celVariables);
        } catch (error) {
          return { outcome: 'error', message: celErrorMessage(error, source) };
        }
        if (typeof value !== 'boolean') return { outcome: 'error', message: `expression yielded ${describeValue(value)}, not a bool` };
        const denies = kind === 'require' ? !value : value;
        return { outcome: denies ? 'deny' : 'pass', value };
      },
    }),
  };
}

/**
 * Load-time cost bounds the cel-js limits do not cover:
 * - a comprehension inside another one costs the product of two list sizes, and request data
 *   (`request.path.split("/")`) decides those sizes: refused;
 * - `matches()` runs a backtracking RegExp: its pattern must be a string literal (never request
 *   data) of a shape that cannot backtrack exponentially (`regex-safety.ts`).
 */
function costlyShape(node: ASTNode, comprehensionDepth: number): string | null {
  switch (node.op) {
    case 'rcall': {
      const [name, receiver, args] = node.args;
      if (name === 'matches') {
        const pattern = args[0];
        if (pattern === undefined || pattern.op !== 'value' || typeof pattern.args !== 'string') {
          return `matches() needs a string literal pattern (at ${position(node.input, node.start)})`;
        }
        const risk = regexBacktrackingRisk(pattern.args);
        if (risk !== null) return `matches() pattern "${pattern.args}": ${risk} (at ${position(node.input, pattern.start)})`;
      }
      const receiverProblem = costlyShape(receiver, comprehensionDepth);
      if (receiverProblem !== null) return receiverProblem;
      const isComprehension = COMPREHENSIONS.has(name);
      if (isComprehension && comprehensionDepth >= 1) {
        return `${name}() inside another comprehension is not allowed: its cost would grow with the product of the list sizes (at ${position(node.input, node.start)})`;
      }
      return firstProblem(args, isComprehension ? comprehensionDepth + 1 : comprehensionDepth);
    }
    case 'call':
      return firstProblem(node.args[1], comprehensionDepth);
    case 'value':
    case 'id':
      return null;
    case '.':
    case '.?':
      return costlyShape(node.args[0], comprehensionDepth);
    case '!_':
    case '-_':
      return costlyShape(node.args, comprehensionDepth);
    case 'list':
      return firstProblem(node.args, comprehensionDepth);
    case 'map':
      return firstProblem(node.args.flat(), comprehensionDepth);
    default:
      return firstProblem(node.args, comprehensionDepth);
  }
}

function firstProblem(nodes: readonly ASTNode[], comprehensionDepth: number): string | null {
  for (const child of nodes) {
    const problem = costlyShape(child, comprehensionDepth);
    if (problem !== null) return problem;
  }
  return null;
}

/** cel-js's own message (its summary, without the source excerpt) and where in the source. */
function celErrorMessage(error: unknown, source: string): string {
  if (!(error instanceof Error)) return String(error);
  const celError = error as Error & { summary?: string; range?: { start: number } };
  const summary = celError.summary ?? celError.message.split('\n', 1)[0]!;
  return celError.range === undefined ? summary : `${summary} (at ${position(source, celError.range.start)})`;
}

/** 1-based `line L, column C` of an offset in an expression. */
function position(source: string, offset: number): string {
  const before = source.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  return line === 1 ? `column ${column}` : `line ${line}, column ${column}`;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value instanceof Promise) return 'a promise';
  return `a value of type ${typeof value}`;
}
