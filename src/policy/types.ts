/**
 * The compiled forms of grants, constraints and policy rules, and what an authorization
 * decision is made from and says. Built once per snapshot (compile time); evaluated per request.
 */
import type { BlockList } from 'node:net';
import type { RefusalReason } from '../errors.ts';
import type { CredentialType, Sensitivity } from '../config/schema.ts';

export interface CompiledTimeWindow {
  /** 0 = Monday … 6 = Sunday. */
  readonly days: ReadonlySet<number>;
  /**
   * Minutes after midnight. `toMinute <= fromMinute` crosses midnight: the window opens on each
   * listed day at `fromMinute` and closes at `toMinute` on the next day (equal = a whole day).
   */
  readonly fromMinute: number;
  readonly toMinute: number;
}

export interface CompiledConstraints {
  readonly timeWindows: readonly CompiledTimeWindow[] | null;
  /** IANA time zone of the windows (validated at compile time). */
  readonly timezone: string;
  readonly transactionTypes: ReadonlySet<string> | null;
  readonly purposes: ReadonlySet<string> | null;
  readonly sourceNetworks: BlockList | null;
  /** The CIDR blocks as written, for explanations. */
  readonly sourceNetworkList: readonly string[] | null;
}

export interface CompiledGrant {
  /** Stable name for records and explanations: `partner/<partner>/grant/<api>#<index>`. */
  readonly id: string;
  readonly apiId: string;
  readonly environments: ReadonlySet<string>;
  readonly scopes: ReadonlySet<string>;
  readonly constraints: CompiledConstraints | null;
}

/**
 * What one rule made of one request. `error` (the expression could not be evaluated, or did not
 * yield a bool) always denies, whatever the rule's kind: a broken rule never allows.
 */
export type RuleOutcome =
  | { readonly outcome: 'pass' | 'deny'; readonly value: boolean }
  | { readonly outcome: 'error'; readonly message: string };

/** A CEL rule compiled and type-checked at load time. */
export interface CompiledRule {
  readonly id: string;
  readonly kind: 'require' | 'deny';
  /** Recorded as `policy.<reason>` detail when this rule denies (default: the rule id). */
  readonly reason: string;
  /** The expression as written. */
  readonly source: string;
  /** Where it was defined: `policies`, `apis[orders]`, `routes[list-orders]`, `partners[acme]`. */
  readonly scope: string;
  /** Evaluates the expression against the request's policy context (see `rules.ts` `policyContext`). */
  evaluate(context: PolicyContext): RuleOutcome;
}

/**
 * Variables a CEL rule sees, as plain data (STYLE: no functions, no prototypes). `rules.ts`
 * converts them once per request into the values CEL evaluates (`PolicyContext`): integers become
 * CEL `int` (BigInt), maps become `Map`s without the names `__proto__`, `constructor`, `toString`.
 */
export interface PolicyVariables {
  readonly partner: {
    readonly id: string;
    readonly tier: string;
    readonly status: string;
    readonly attributes: Readonly<Record<string, string | number | boolean>>;
    /** '' when the partner has no agreement (such a request is refused before any rule runs). */
    readonly agreement_id: string;
  };
  readonly credential: { readonly id: string; readonly type: CredentialType; readonly long_lived: boolean };
  /** Claims of the token (JWT or introspection result); empty for API keys. */
  readonly token: Readonly<Record<string, unknown>>;
  readonly request: {
    readonly method: string;
    readonly path: string;
    readonly host: string;
    readonly params: Readonly<Record<string, string>>;
    /** The declared purpose, '' when none was declared. */
    readonly purpose: string;
    readonly source_ip: string;
    /**
     * The decision time, a CEL `timestamp` (as in Google IAM conditions' `request.time`): rules
     * use `request.time.getHours("Europe/Berlin")`, `request.time < timestamp("2027-01-01T00:00:00Z")`.
     */
    readonly time: Date;
    /** The listener's environment (e.g. production, sandbox). */
    readonly environment: string;
    /** Scopes of the token (exact tokens); empty for API keys. */
    readonly scopes: readonly string[];
  };
  readonly route: {
    readonly id: string;
    /** '' when the route belongs to no API. */
    readonly api: string;
    readonly sensitivity: Sensitivity;
    /** '' when the route declares no transaction type. */
    readonly transaction_type: string;
  };
}

/**
 * `PolicyVariables` converted once per request into what the CEL evaluator reads. Opaque to
 * everything but `rules.ts`; build it with `policyContext()`.
 */
export interface PolicyContext {
  readonly celVariables: ReadonlyMap<string, unknown>;
}

/** One line of an explanation: which check ran, and what it found. */
export interface ExplanationStep {
  readonly stage: 'ingress' | 'routing' | 'transport_identity' | 'credential' | 'authorization' | 'proxy';
  readonly check: string;
  readonly outcome: 'pass' | 'fail' | 'skip';
  readonly detail: string;
}

export type AuthorizationDecision =
  | {
      readonly allowed: true;
      /** The grant that allowed the request. */
      readonly grant: CompiledGrant;
      /** Ids of the rules that were evaluated (all passed). */
      readonly rules: readonly string[];
      readonly steps: readonly ExplanationStep[];
    }
  | {
      readonly allowed: false;
      readonly reason: RefusalReason;
      /** Operator-facing detail (never sent to the caller). */
      readonly detail: string;
      /** The grant or rule that decided, when one did. */
      readonly decidedBy: string | null;
      /** Scopes the route requires, for the RFC 6750 `scope` challenge attribute. */
      readonly requiredScopes?: readonly string[];
      readonly steps: readonly ExplanationStep[];
    };
