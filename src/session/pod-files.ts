/**
 * The pod's volumes for the local container: ConfigMap, Secret, downward API,
 * projected and service-account token files as the kubelet lays them out, and
 * the contents of emptyDir / PVC / hostPath mounts copied from a running pod
 * through the agent. Everything travels as one tar stream into the container
 * (never a bind mount), so a remote Docker engine works the same.
 */
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import type { InjectedFile } from '../docker/index.js';
import type { KubeClient, Workload } from '../kube/index.js';
import {
  clusterVolumeLookup,
  type FilesSource,
  mountContentsTar,
  type ResolveVolumesInput,
  resolveVolumes,
  type VolumeFile,
  type VolumeLayout,
  workloadVolumesInput,
} from '../kube/volumes/index.js';
import { errorText } from '../util/errors.js';

export interface PodFiles {
  input: ResolveVolumesInput;
  layout: VolumeLayout;
  podName: string | undefined;
}

export async function resolvePodFiles(
  client: KubeClient,
  workload: Workload,
  container: string,
  env: Record<string, string>,
): Promise<PodFiles> {
  const { input, pod, warnings } = await workloadVolumesInput(client, workload, container, { env });
  const layout = await resolveVolumes(input, clusterVolumeLookup(client));
  layout.warnings.push(...warnings);
  return { input, layout, podName: pod?.metadata?.name };
}

export function injectedFiles(files: readonly VolumeFile[]): InjectedFile[] {
  return files.map((f) => ({ path: f.path, content: f.content, mode: f.mode, uid: f.uid, gid: f.gid }));
}

/**
 * One tar of the layout's files and directories, followed by the contents of
 * each copied mount read through `source` (an agent tunnel). A mount that
 * cannot be read adds a warning instead of failing the session.
 */
export function podFilesTar(
  layout: VolumeLayout,
  source: FilesSource | undefined,
  warnings: string[],
): Readable {
  const pack = tar.pack();
  const out = new PassThrough();
  void (async () => {
    for (const d of layout.directories) {
      pack.entry({ name: d.path.slice(1), type: 'directory', mode: d.mode, uid: d.uid, gid: d.gid });
    }
    for (const f of layout.files) {
      pack.entry(
        { name: f.path.slice(1), mode: f.mode, uid: f.uid, gid: f.gid, size: f.content.length },
        f.content,
      );
    }
    for (const copy of layout.copies) {
      if (!source) {
        warnings.push(`${copy.mountPath}: no agent to copy the ${copy.type} contents from; it starts empty`);
        continue;
      }
      const copied = { entries: 0 };
      try {
        await appendTar(pack, await mountContentsTar(source, copy), copied);
      } catch (err) {
        const state = copied.entries
          ? `only ${copied.entries === 1 ? 'the entry' : `the ${copied.entries} entries`} before the failure copied`
          : 'it starts empty';
        warnings.push(`${copy.mountPath}: contents not copied (${errorText(err)}); ${state}`);
      }
    }
    pack.finalize();
  })().catch((err) => out.destroy(err as Error));
  pack.pipe(out);
  return out;
}

async function appendTar(pack: tar.Pack, input: Readable, copied: { entries: number }): Promise<void> {
  const extract = tar.extract();
  const done = pipeline(input, extract);
  try {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks);
      await new Promise<void>((resolve, reject) =>
        pack.entry({ ...entry.header, size: body.length }, body, (err) => (err ? reject(err) : resolve())),
      );
      copied.entries++;
    }
  } catch (err) {
    // The pipeline fails with the same error; left unhandled, it would end the process.
    done.catch(() => {});
    throw err;
  }
  await done;
}
