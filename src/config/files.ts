/**
 * Files referenced by the configuration (certificates, keys, CA bundles). Each is read once per
 * load: validation checks the bytes that compile then serves and hashes, so a file replaced
 * between the two steps can never slip past validation.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';

export type FileRead =
  | { readonly ok: true; readonly path: string; readonly data: Buffer }
  | { readonly ok: false; readonly path: string; readonly reason: string };

/** PEM bundles are small; a path to a device or a huge file is a mistake, not a certificate. */
const MAX_FILE_BYTES = 4 * 1024 * 1024;

const REASONS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'is a directory',
  ENOTDIR: 'a parent is not a directory',
  ELOOP: 'too many symbolic links',
};

export class ReferencedFiles {
  readonly #baseDir: string;
  readonly #reads = new Map<string, Promise<FileRead>>();
  readonly #loaded = new Map<string, FileRead>();

  constructor(baseDir: string) {
    this.#baseDir = baseDir;
  }

  /** Absolute path of a path written in the configuration (relative to the config file's folder). */
  resolve(written: string): string {
    return resolve(this.#baseDir, written);
  }

  read(written: string): Promise<FileRead> {
    const path = this.resolve(written);
    let pending = this.#reads.get(path);
    if (!pending) {
      pending = readSmallFile(path).then((result) => {
        this.#loaded.set(path, result);
        return result;
      });
      this.#reads.set(path, pending);
    }
    return pending;
  }

  /** The bytes read earlier by `read`; throws if the file was not read or could not be (a bug, not bad input). */
  contents(written: string): Buffer {
    const result = this.#loaded.get(this.resolve(written));
    if (!result?.ok) throw new Error(`internal: ${written} was not validated before compile`);
    return result.data;
  }

  /** Every read made so far (a validation done in a worker thread hands them to the compile). */
  async reads(): Promise<FileRead[]> {
    return Promise.all(this.#reads.values());
  }

  /** A set holding reads made elsewhere: compile serves exactly the bytes validation checked. */
  static fromReads(baseDir: string, reads: readonly FileRead[]): ReferencedFiles {
    const files = new ReferencedFiles(baseDir);
    for (const read of reads) {
      // Structured clone hands a Buffer over as a plain Uint8Array.
      const result: FileRead = read.ok ? { ok: true, path: read.path, data: Buffer.from(read.data.buffer, read.data.byteOffset, read.data.byteLength) } : read;
      files.#loaded.set(read.path, result);
      files.#reads.set(read.path, Promise.resolve(result));
    }
    return files;
  }

  /** SHA-256 (hex) of a file's contents, as read by `read`. */
  digest(written: string): string {
    return createHash('sha256').update(this.contents(written)).digest('hex');
  }
}

async function readSmallFile(path: string): Promise<FileRead> {
  try {
    // stat before opening: opening a FIFO or a device could block or never end.
    const stats = await stat(path);
    if (!stats.isFile()) return { ok: false, path, reason: 'not a regular file' };
    if (stats.size > MAX_FILE_BYTES) return { ok: false, path, reason: `larger than ${MAX_FILE_BYTES} bytes` };
    return { ok: true, path, data: await readFile(path) };
  } catch (error) {
    return { ok: false, path, reason: describeFsError(error) };
  }
}

/** `no such file (ENOENT)`: the operator-facing reason of a failed read. */
export function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
  return REASONS[code] ? `${REASONS[code]} (${code})` : code;
}
