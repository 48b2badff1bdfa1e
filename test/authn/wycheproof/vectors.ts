/**
 * Where the Wycheproof vectors are: `shared/testdata/wycheproof/` beside the checkout (the
 * project's shared folder sits next to the repository, in development and in CI alike).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const WYCHEPROOF = fileURLToPath(new URL('../../../../shared/testdata/wycheproof/', import.meta.url));

if (!existsSync(WYCHEPROOF)) {
  throw new Error(`Wycheproof vectors not found at ${WYCHEPROOF}: the shared/ folder must sit beside the checkout`);
}
