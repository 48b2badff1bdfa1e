/** The shape every `portcullis <command>` module exports. */
export interface Command {
  /** One line for `portcullis --help`. */
  readonly summary: string;
  /** Full `--help` text of the command. */
  readonly usage: string;
  /** Runs the command; resolves to the process exit code. */
  run(argv: readonly string[]): Promise<number>;
}

/** A usage error, printed the same way by every command (message, then the usage); exit status 2. */
export function usageError(command: string, usage: string, message: string): number {
  process.stderr.write(`portcullis ${command}: ${message}\n\n${usage}`);
  return 2;
}
