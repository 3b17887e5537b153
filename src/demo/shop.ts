/**
 * The sample shop of templates/demo: deployed into a namespace with a given
 * Node image, for the demo and the acceptance tests, with devbox's RBAC
 * (templates/rbac/devbox-developer-role.yaml) installed as an admin would.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { type Kind, type KubeClient, rbacManifests, type Workload } from '../kube/index.js';
import { waitForRollout } from '../session/rollout.js';

export const SHOP_MANIFEST = fileURLToPath(new URL('../../../templates/demo/shop.yaml', import.meta.url));

type Manifest = { kind: Kind; metadata: { name: string; namespace?: string } } & Record<string, unknown>;

export async function shopManifests(image: string): Promise<Manifest[]> {
  const text = (await readFile(SHOP_MANIFEST, 'utf8')).replaceAll('${IMAGE}', image);
  return parseAllDocuments(text)
    .map((doc) => doc.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

/** Creates the namespace (if needed), applies the shop and devbox's RBAC; waits for every workload to be ready. */
export async function deployShop(client: KubeClient, namespace: string, image: string): Promise<void> {
  const exists = await client.request('GET', `/api/v1/namespaces/${namespace}`).then(
    () => true,
    () => false,
  );
  if (!exists) {
    await client.request('POST', '/api/v1/namespaces', {
      body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
    });
  }
  const manifests = [...(await shopManifests(image)), ...(rbacManifests() as Manifest[])];
  for (const manifest of manifests) {
    const object = { ...manifest, metadata: { ...manifest.metadata, namespace } };
    const current = await client.get(manifest.kind, namespace, manifest.metadata.name);
    if (!current) await client.create(manifest.kind, object as never);
    else {
      await client.replace(manifest.kind, {
        ...object,
        metadata: { ...object.metadata, resourceVersion: current.metadata?.resourceVersion },
      } as never);
    }
  }
  for (const manifest of manifests) {
    if (manifest.kind !== 'Deployment' && manifest.kind !== 'StatefulSet') continue;
    const workload = {
      ...(await client.get(manifest.kind, namespace, manifest.metadata.name)),
      kind: manifest.kind,
    };
    await waitForRollout(client, workload as Workload, { timeoutMs: 180_000 });
  }
}
