// Bundles each daemon into one self-contained file: the agent travels to the
// cluster inside a ConfigMap, the sidecar is copied into its container.
import { build } from 'esbuild';

for (const name of ['agent', 'sidecar']) {
  await build({
    entryPoints: [`src/${name}/main.ts`],
    outfile: `dist/bundle/${name}.mjs`,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: true,
    legalComments: 'none',
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
  });
}
