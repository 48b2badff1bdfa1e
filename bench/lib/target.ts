/**
 * What a benchmark target is. The table of targets is `targets/index.ts`; adding a row to the
 * benchmark means adding an entry there.
 */
import type { Proc } from './procs.ts';
import type { Sample } from './report.ts';

/** The shared upstream every target ends at: a small nginx returning a fixed JSON body. */
export interface Upstream {
  proc: Proc;
  port: number;
  /** `http://127.0.0.1:<port>` */
  origin: string;
  /** The exact body every request must get back. */
  body: string;
}

export interface BenchContext {
  /** Temp dir of this run (configs, logs); removed at the end. */
  tmpDir: string;
  /** Root of the Portcullis checkout. */
  repoRoot: string;
  /** The `bench/` folder. */
  benchDir: string;
  /** The Node 24 binary used for every Node target. */
  node: string;
  /** Core the targets and the upstream are pinned to. */
  serverCpu: number;
  upstream: Upstream;
  /** Path every request asks for, e.g. `/bench/hello`. */
  path: string;
  /** Host header sent with every request (`localhost`: Portcullis listeners need a DNS-like name). */
  host: string;
  /**
   * Longest this run can take (s), counting every retry and quiet-wait: credentials a target
   * mints (tokens) must stay valid at least this long.
   */
  maxRunSeconds: number;
  /** wrk threads: a wrk script that splits work between threads needs the count. */
  wrkThreads: number;
}

/**
 * A row driven by the Node TLS load generator (`lib/tls-load.ts`) instead of wrk, which cannot
 * present a client certificate. The rows it is compared with use it too, over TLS, so that a
 * ratio between rows never mixes two load generators.
 */
export interface TlsLoad {
  /** PEM file of the CA the server certificate must chain to (it is verified). */
  ca: string;
  /** SNI, and the name the server certificate is checked against (a TLS listener wants SNI = Host). */
  servername: string;
  /** PEM files of the client certificate chain (leaf first) and its key: mutual TLS. */
  clientCertificate?: { cert: string; key: string };
  /**
   * A new TLS connection, with a full handshake, for every request (`Connection: close`, no
   * session offered for resumption). Default: keep-alive, one request in flight per connection.
   */
  newConnectionPerRequest?: boolean;
}

/** Connections the TLS load generator opened during a measured run. */
export interface ConnectionCounts {
  /** `--connections`: how many it keeps open at once. */
  configured: number;
  /** TLS connections it opened (completed handshakes or not). */
  opened: number;
  /** Of those, handshakes that resumed an earlier session (a new-connection row wants none). */
  resumed: number;
}

/** A measured run as `afterRun` sees it: the TLS load generator's runs also count connections. */
export type MeasuredRun = Sample & { connections?: ConnectionCounts };

/** A wrk Lua script (`wrk -s <path> <url> -- <args…>`) that builds each request itself. */
export interface WrkScript {
  path: string;
  args: string[];
}

export interface RunningTarget {
  /** URL wrk loads. */
  url: string;
  /** The process whose CPU time and RSS are reported for this row. */
  measured: Proc;
  /** What the CPU column measures for this row, e.g. "gateway" or "nginx (the upstream itself)". */
  cpuOf: string;
  /** Stops what `start` started (by PID). The shared upstream is not the target's to stop. */
  stop(): Promise<void>;
  /** Headers sent with every request besides `Host` (e.g. `Authorization`), by wrk and the start-up check. */
  headers?: Record<string, string>;
  /**
   * A wrk script that builds every request (e.g. a different token each time). It must keep
   * `ctx.path` and the `Host` header wrk is given.
   */
  wrkScript?: WrkScript;
  /**
   * Header sets the start-up check sends one request with each (on top of `Host` and
   * `headers`), e.g. the first, a middle and the last token of a script's list. Default: one
   * request with no more headers.
   */
  checkRequests?: Record<string, string>[];
  /**
   * Called after each measured run: a one-line note on what the target saw (e.g. how many
   * distinct tokens its last decision records name). Throws when the run was not what the row
   * claims to measure; the row then fails.
   */
  afterRun?(run: MeasuredRun): string | Promise<string>;
  /** After a run with refused requests: why the target refused them (e.g. from its decision log). */
  diagnose?(): string | undefined;
  /** Drive this row with the TLS load generator instead of wrk (`url` is then `https://…`). */
  tlsLoad?: TlsLoad;
}

/** A performance goal of a target, checked against another target (the baseline). */
export interface Goal {
  /** Name of the target compared against. */
  against: string;
  /**
   * Least acceptable req/s ratio (target / baseline). Below 1 it is a cost budget: 0.75 means
   * the target may cost at most 25 % of the other's throughput.
   */
  minThroughputRatio: number;
  /** Whether the target's p99 must be lower than the baseline's. */
  lowerP99: boolean;
}

export interface Target {
  /** Row name, e.g. `portcullis-plain`. */
  name: string;
  /** One line: what path a request takes. */
  description: string;
  /** Ratios in the table are computed against the baseline target (exactly one). */
  baseline?: boolean;
  /** One goal, or several (each gets its own MET / NOT MET line). */
  goal?: Goal | readonly Goal[];
  /**
   * Another target this one is reported against without a goal (a verdict-style line with the
   * throughput ratio and the CPU per request of both, no MET / NOT MET).
   */
  compare?: string;
  /** A reason the target cannot run here (it is then skipped and the reason printed), or undefined. */
  unavailable?(ctx: BenchContext): string | undefined;
  start(ctx: BenchContext): Promise<RunningTarget>;
}
