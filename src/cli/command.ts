/** The shape every `portcullis <command>` module exports. */
export interface Command {
  /** One line for `portcullis --help`. */
  readonly summary: string;
  /** Full `--help` text of the command. */
  readonly usage: string;
  /** Runs the command; resolves to the process exit code. */
  run(argv: readonly string[]): Promise<number>;
}
