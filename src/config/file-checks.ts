/**
 * Checks of the files a configuration names (certificates, keys, CA bundles, JWKS), run at load
 * so a bad file is a precise config error instead of a failure on the first connection or the
 * first token. Files are read through `ReferencedFiles`: compile serves and hashes exactly the
 * bytes checked here. Messages never quote file contents.
 */
import { validateJwks } from '../authn/jwks/validate.ts';
import type { ReferencedFiles } from './files.ts';
import type { ConfigPath, PendingIssue } from './issues.ts';
import { keyMatchesCertificate, keyUsableWith, parseCertificates, parsePrivateKey } from './pem.ts';
import type { SigningAlgorithm } from './schema.ts';

export async function readable(files: ReferencedFiles, path: ConfigPath, written: string): Promise<Buffer | PendingIssue> {
  const result = await files.read(written);
  if (result.ok) return result.data;
  return { code: 'CONFIG_FILE_UNREADABLE', path, message: `cannot read ${result.path}: ${result.reason}` };
}

/** A PEM bundle of CA certificates (at least one, each parsable). */
export async function caBundle(files: ReferencedFiles, path: ConfigPath, written: string): Promise<PendingIssue[]> {
  const data = await readable(files, path, written);
  if (!Buffer.isBuffer(data)) return [data];
  const certificates = parseCertificates(data);
  return certificates.ok ? [] : [{ code: 'CONFIG_INVALID_VALUE', path, message: `${files.resolve(written)}: ${certificates.reason}` }];
}

/** A certificate chain and its private key: both parsable, and the key is the leaf's. */
export async function certificateAndKey(
  files: ReferencedFiles,
  tlsPath: ConfigPath,
  certFile: string | undefined,
  keyFile: string | undefined,
): Promise<PendingIssue[]> {
  if (certFile === undefined || keyFile === undefined) return [];
  const certPath = [...tlsPath, 'cert'];
  const keyPath = [...tlsPath, 'key'];
  const [certData, keyData] = await Promise.all([readable(files, certPath, certFile), readable(files, keyPath, keyFile)]);
  const issues: PendingIssue[] = [];
  const invalid = (path: ConfigPath, written: string, reason: string): void => {
    issues.push({ code: 'CONFIG_INVALID_VALUE', path, message: `${files.resolve(written)}: ${reason}` });
  };

  let certificate;
  if (!Buffer.isBuffer(certData)) issues.push(certData);
  else {
    const parsed = parseCertificates(certData);
    if (parsed.ok) certificate = parsed.value[0];
    else invalid(certPath, certFile, parsed.reason);
  }
  let key;
  if (!Buffer.isBuffer(keyData)) issues.push(keyData);
  else {
    const parsed = parsePrivateKey(keyData);
    if (parsed.ok) key = parsed.value;
    else invalid(keyPath, keyFile, parsed.reason);
  }
  if (certificate && key && !keyMatchesCertificate(certificate, key)) {
    issues.push({
      code: 'CONFIG_INVALID_VALUE',
      path: keyPath,
      message: `the private key in ${files.resolve(keyFile)} does not match the certificate in ${files.resolve(certFile)}`,
    });
  }
  return issues;
}

/** A PEM private key that can sign with `alg`. */
export async function signingKey(files: ReferencedFiles, path: ConfigPath, written: string, alg: SigningAlgorithm): Promise<PendingIssue[]> {
  const data = await readable(files, path, written);
  if (!Buffer.isBuffer(data)) return [data];
  const parsed = parsePrivateKey(data);
  if (!parsed.ok) return [{ code: 'CONFIG_INVALID_VALUE', path, message: `${files.resolve(written)}: ${parsed.reason}` }];
  const unusable = keyUsableWith(parsed.value, alg);
  return unusable === null ? [] : [{ code: 'CONFIG_INVALID_VALUE', path, message: `${files.resolve(written)}: ${unusable}` }];
}

/**
 * A local JWKS (RFC 7517 §5): UTF-8 JSON whose keys pass the key-set rules (`validateJwks`:
 * one `alg` per key from the issuer's allow-list, strong keys, no private members, …).
 * `algorithms` is null when the issuer's own list failed the schema: the keys are then not
 * judged against it.
 */
export async function jwksFile(
  files: ReferencedFiles,
  path: ConfigPath,
  written: string,
  algorithms: ReadonlySet<string> | null,
): Promise<PendingIssue[]> {
  const data = await readable(files, path, written);
  if (!Buffer.isBuffer(data)) return [data];
  const where = files.resolve(written);
  const json = parseJson(data);
  if (!json.ok) return [{ code: 'CONFIG_INVALID_VALUE', path, message: `${where}: ${json.reason}` }];
  if (algorithms === null) return [];
  const result = validateJwks(json.value, algorithms);
  if (result.ok) return [];
  return result.problems.map((problem) => ({ code: 'CONFIG_INVALID_VALUE', path, message: `${where}: ${problem}` }));
}

export type JsonRead = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly reason: string };

/**
 * JSON from a file. RFC 8259 §8.1: JSON exchanged between systems is UTF-8, so invalid UTF-8
 * is refused rather than replaced. V8's syntax messages quote the input, so only the line and
 * column are kept.
 */
export function parseJson(data: Buffer): JsonRead {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(data);
  } catch {
    return { ok: false, reason: 'not valid UTF-8' };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    const at = /line (\d+) column (\d+)/.exec((error as Error).message);
    return { ok: false, reason: at ? `not valid JSON (at line ${at[1]}, column ${at[2]})` : 'not valid JSON' };
  }
}
