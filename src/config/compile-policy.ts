/**
 * Compiles CEL rules and grants for the snapshot, through the policy module. Compiled rules and
 * grants own their internals (CEL programs, BlockLists): like Router instances, the snapshot
 * freezes them at the top level only, and this compiler remembers which objects those are.
 * Runs only on a configuration that passed validation, so a failure here is a bug and throws.
 */
import type { BlockList } from 'node:net';
import { compileGrant, compileNetworks } from '../policy/grants.ts';
import { compileRule } from '../policy/rules.ts';
import type { CompiledGrant, CompiledRule } from '../policy/types.ts';
import type { GrantConfig, PolicyRuleConfig } from './schema.ts';

export class PolicyCompiler {
  readonly #opaque = new WeakSet<object>();

  /** Compiles a rule list; `scope` names where it was defined (`policies`, `apis[orders]`, …). */
  rules(list: readonly PolicyRuleConfig[], scope: string): CompiledRule[] {
    return list.map((rule) => {
      const compiled = compileRule(rule, scope);
      if (!compiled.ok) throw new Error(`internal: rule "${rule.id}" of ${scope} failed after validation: ${compiled.message}`);
      this.#opaque.add(compiled.rule);
      return compiled.rule;
    });
  }

  grant(grant: GrantConfig, partnerId: string, index: number): CompiledGrant {
    const compiled = compileGrant(grant, partnerId, index);
    if (!compiled.ok) throw new Error(`internal: grant ${index} of partner "${partnerId}" failed after validation: ${compiled.message}`);
    this.#opaque.add(compiled.grant);
    return compiled.grant;
  }

  /** True for the compiled rules and grants this compiler produced. */
  /** Compiles validated CIDR blocks into one (opaque, unfrozen) BlockList. */
  networks(blocks: readonly string[]): BlockList {
    const compiled = compileNetworks(blocks);
    if (!compiled.ok) throw new Error(`internal: network ${blocks[compiled.index]} failed after validation: ${compiled.message}`);
    this.#opaque.add(compiled.networks);
    return compiled.networks;
  }

  owns(value: object): boolean {
    return this.#opaque.has(value);
  }
}
