/**
 * `portcullis schema`: print the JSON Schema of the configuration file. It is generated from
 * the zod schema that validation uses, so editors (hover, completion) and the docs can never
 * disagree with the gateway. It describes the input: what you may write, before defaults.
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import type { Command } from '../command.ts';
import { config } from '../../config/schema.ts';

const USAGE = `Usage: portcullis schema

Print the JSON Schema (draft 2020-12) of the configuration file to stdout.

Point your editor at it for completion and hover docs, e.g. with the YAML language server,
as the first line of your config file:
  # yaml-language-server: $schema=./portcullis.schema.json

Options:
  -h, --help   show this help
`;

export const SCHEMA_ID = 'https://portcullis.dev/schema/config-v1.json';

export function configJsonSchema(): Record<string, unknown> {
  const { $schema, ...rest } = z.toJSONSchema(config, { io: 'input' });
  return { $schema, $id: SCHEMA_ID, title: 'Portcullis configuration', ...rest };
}

export const command: Command = {
  summary: 'Print the JSON Schema of the configuration',
  usage: USAGE,
  async run(argv) {
    try {
      parseArgs({ args: [...argv], options: {}, strict: true, allowPositionals: false });
    } catch (error) {
      process.stderr.write(`portcullis schema: ${(error as Error).message}\n\n${USAGE}`);
      return 2;
    }
    process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
    return 0;
  },
};
