/** The daemon bundles the build produces (`dist/bundle/*.mjs`). */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { DevboxError } from '../util/errors.js';

export async function readAgentBundle(): Promise<string> {
  const path = fileURLToPath(new URL('../../bundle/agent.mjs', import.meta.url));
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new DevboxError('INTERNAL', `The agent bundle is missing at ${path}`, {
      hint: 'Reinstall devbox, or run `npm run build` in a source checkout.',
      cause: err,
    });
  }
}
