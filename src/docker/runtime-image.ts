import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { settings } from '../settings/index.js';
import { DevboxError, errorText } from '../util/errors.js';
import { type Progress, silentProgress } from '../util/progress.js';
import type { DockerClient } from './client.js';
import {
  binaryClosure,
  findExecutable,
  type HostBinary,
  ldd,
  libraryPathFor,
  loaderSearchPath,
} from './host-files.js';
import { goArch, type ImageConfig, type LayerEntry, type PlannedImage, planImage } from './image-archive.js';

/**
 * Images devbox builds from this machine's own files, so that nothing has to
 * be pulled: the Node runtime (agent and sidecar), a busybox image for test
 * pods, and the pause image of the test cluster's pod sandboxes.
 */

const run = promisify(execFile);

/** Uid/gid of the unprivileged `node` user in the images (as in the public node images). */
export const NODE_UID = 1000;
export const PAUSE_VERSION = '1.0';
export const RUNTIME_REPOSITORY = 'devbox-runtime';
export const BUSYBOX_REPOSITORY = 'devbox-busybox';
export const PAUSE_REPOSITORY = 'devbox-pause';

const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const IMAGE_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
const HOST_CA_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/ca-bundle.pem',
  '/etc/ssl/cert.pem',
];

/** An image present in the engine. */
export interface EnsuredImage {
  tag: string;
  /** `sha256:…` */
  imageId: string;
  /** True when an image with this content was already loaded. */
  reused: boolean;
  /** Uncompressed layer size, when the image was planned in this call. */
  layerBytes?: number;
  /** Time spent, planning and loading included. */
  durationMs: number;
}

export interface RuntimeImageOptions {
  /** Node binary to copy (default: the one running devbox). */
  nodePath?: string;
  /** Extra host binaries (default: `nft` and `ip`, see `defaultNetworkTools`). */
  extraBinaries?: HostBinary[];
  /** Host CA bundle to copy, or false for none (default: the first usual bundle found). */
  caBundle?: string | false;
  progress?: Progress;
}

export interface PlannedRuntimeImage {
  plan: PlannedImage;
  tag: string;
  nodeVersion: string;
  /** Whether `ip` (iproute2 or busybox) is in the image. */
  hasIp: boolean;
  /** Whether `nft` is in the image (NAT for cluster addresses). */
  hasNft: boolean;
}

/** Static files every devbox image has: users, groups, /tmp, home directories. */
export function baseSystemEntries(): LayerEntry[] {
  const text = (s: string) => ({ content: Buffer.from(s) });
  return [
    {
      type: 'file',
      path: '/etc/passwd',
      mode: 0o644,
      source: text(
        'root:x:0:0:root:/root:/bin/sh\n' +
          `node:x:${NODE_UID}:${NODE_UID}:node:/home/node:/bin/sh\n` +
          'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
      ),
    },
    {
      type: 'file',
      path: '/etc/group',
      mode: 0o644,
      source: text(`root:x:0:\nnode:x:${NODE_UID}:\nnogroup:x:65534:\n`),
    },
    {
      type: 'file',
      path: '/etc/nsswitch.conf',
      mode: 0o644,
      source: text(
        'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nservices: files\n',
      ),
    },
    { type: 'directory', path: '/tmp', mode: 0o1777 },
    { type: 'directory', path: '/root', mode: 0o700 },
    { type: 'directory', path: '/home/node', mode: 0o755, uid: NODE_UID, gid: NODE_UID },
  ];
}

/**
 * The sidecar's network tools: `nft` (nftables, with its libraries) to redirect cluster
 * addresses by NAT, and `ip` for the fallback that binds them — iproute2's `ip` with its
 * libraries, else a static busybox with an `ip` link. Each is left out when the host lacks it.
 */
export async function defaultNetworkTools(): Promise<HostBinary[]> {
  const nft = await findExecutable('nft');
  const tools: HostBinary[] = nft ? [{ hostPath: await fs.realpath(nft), imagePath: '/usr/sbin/nft' }] : [];
  return [...tools, ...(await ipTool())];
}

async function ipTool(): Promise<HostBinary[]> {
  const ip = await findExecutable('ip');
  if (ip) {
    const real = await fs.realpath(ip);
    if (posix.basename(real) === 'busybox') {
      if ((await ldd(real)).isStatic)
        return [{ hostPath: real, imagePath: '/bin/busybox', links: ['/sbin/ip'] }];
    } else {
      return [{ hostPath: real, imagePath: '/usr/sbin/ip' }];
    }
  }
  const busybox = await findStaticBusybox();
  return busybox ? [{ hostPath: busybox, imagePath: '/bin/busybox', links: ['/sbin/ip'] }] : [];
}

async function nodeVersionOf(nodePath: string): Promise<string> {
  if (nodePath === process.execPath) return process.versions.node;
  const { stdout } = await run(nodePath, ['--version'], { encoding: 'utf8' });
  return stdout.trim().replace(/^v/, '');
}

async function firstExisting(paths: string[]): Promise<string | undefined> {
  for (const path of paths) {
    try {
      await fs.access(path);
      return path;
    } catch {
      // try the next one
    }
  }
  return undefined;
}

/** The short content hash used in tags: the first 12 hex digits of the image ID. */
export function shortId(imageId: string): string {
  return imageId.replace(/^sha256:/, '').slice(0, 12);
}

/** `devbox-runtime:node20.20.2-<hash>` */
export function runtimeTag(nodeVersion: string, imageId: string): string {
  return `${RUNTIME_REPOSITORY}:node${nodeVersion}-${shortId(imageId)}`;
}

/** Files, config and tag of the runtime image, without touching Docker. */
export async function planRuntimeImage(options: RuntimeImageOptions = {}): Promise<PlannedRuntimeImage> {
  assertLinuxHost('the runtime image');
  const nodePath = await fs.realpath(options.nodePath ?? process.execPath);
  const nodeVersion = await nodeVersionOf(nodePath);
  const extras = options.extraBinaries ?? (await defaultNetworkTools());
  const closure = await binaryClosure([{ hostPath: nodePath, imagePath: '/usr/local/bin/node' }, ...extras]);
  const entries: LayerEntry[] = [...baseSystemEntries(), ...closure.entries];
  const env = [PATH_ENV, `NODE_VERSION=${nodeVersion}`];

  const caBundle =
    options.caBundle === false ? undefined : (options.caBundle ?? (await firstExisting(HOST_CA_BUNDLES)));
  if (caBundle) {
    const real = await fs.realpath(caBundle);
    const stat = await fs.stat(real);
    entries.push({
      type: 'file',
      path: IMAGE_CA_BUNDLE,
      mode: 0o644,
      source: { hostPath: real, size: stat.size },
    });
    env.push(`SSL_CERT_FILE=${IMAGE_CA_BUNDLE}`);
  }

  // Images have no ld.so.cache: point the loader at directories it would not search itself.
  const systemDirs = closure.loaders[0] ? await loaderSearchPath(closure.loaders[0]) : undefined;
  const libraryPath = libraryPathFor(closure.libraryDirs, systemDirs);
  if (libraryPath) env.push(`LD_LIBRARY_PATH=${libraryPath}`);

  const hasIp = extras.some(
    (b) =>
      posix.basename(b.imagePath ?? b.hostPath) === 'ip' || b.links?.some((l) => posix.basename(l) === 'ip'),
  );
  const hasNft = extras.some((b) => posix.basename(b.imagePath ?? b.hostPath) === 'nft');
  const config: ImageConfig = {
    user: `${NODE_UID}:${NODE_UID}`,
    env,
    cmd: ['node'],
    labels: {
      'devbox.image': 'runtime',
      'devbox.node-version': nodeVersion,
      'devbox.has-ip': String(hasIp),
      'devbox.has-nft': String(hasNft),
    },
  };
  const plan = await planImage(entries, config);
  return { plan, tag: runtimeTag(nodeVersion, plan.imageId), nodeVersion, hasIp, hasNft };
}

/**
 * A Node runtime image made from this machine's `node` and its libraries
 * (plus `nft` and `ip` for the sidecar), loaded into the engine unless an identical one
 * is there. Runs as uid 1000 by default; the sidecar runs it as root with
 * NET_ADMIN.
 */
export async function ensureRuntimeImage(
  docker: DockerClient,
  options: RuntimeImageOptions = {},
): Promise<EnsuredImage> {
  const progress = options.progress ?? silentProgress;
  const started = Date.now();
  await assertEngineMatchesHost(docker, 'the runtime image');
  // Hashing the ~100 MB node binary takes a few hundred ms: an image built from files
  // that have not changed since (same size, mtime, inode) is found by their stat alone.
  const key = await runtimeInputsKey(options);
  const known = key ? await readImageCache(key) : undefined;
  if (known) {
    const image = await docker.inspectImage(known.tag);
    if (image?.id === known.imageId) {
      return { tag: known.tag, imageId: known.imageId, reused: true, durationMs: Date.now() - started };
    }
  }
  const planned = await progress.step('Hash the Node runtime image', () => planRuntimeImage(options));
  const ensured = await loadIfMissing(
    docker,
    planned.plan,
    planned.tag,
    progress,
    started,
    `Load ${planned.tag}`,
  );
  if (key) await writeImageCache(key, { tag: ensured.tag, imageId: ensured.imageId });
  return ensured;
}

/** What the runtime image is made of, by file stat; undefined when a file cannot be read. */
async function runtimeInputsKey(options: RuntimeImageOptions): Promise<string | undefined> {
  const extras = options.extraBinaries ?? (await defaultNetworkTools());
  const paths = [
    options.nodePath ?? process.execPath,
    ...extras.map((b) => b.hostPath),
    // Rewritten whenever shared libraries are installed or upgraded.
    '/etc/ld.so.cache',
    ...(typeof options.caBundle === 'string' ? [options.caBundle] : []),
  ];
  try {
    const stats = await Promise.all(paths.map(async (p) => [p, await fs.stat(p)] as const));
    const text = JSON.stringify([
      IMAGE_CACHE_VERSION,
      options.caBundle === false,
      ...stats.map(([p, st]) => [p, st.size, st.mtimeMs, st.ino]),
    ]);
    return createHash('sha256').update(text).digest('hex');
  } catch {
    return undefined;
  }
}

const IMAGE_CACHE_VERSION = 1;

function imageCacheFile(): string {
  return join(settings().cacheDir, 'runtime-images.json');
}

async function readImageCache(key: string): Promise<{ tag: string; imageId: string } | undefined> {
  try {
    const all = JSON.parse(await fs.readFile(imageCacheFile(), 'utf8')) as Record<
      string,
      { tag: string; imageId: string }
    >;
    return all[key];
  } catch {
    return undefined;
  }
}

async function writeImageCache(key: string, value: { tag: string; imageId: string }): Promise<void> {
  const file = imageCacheFile();
  try {
    let all: Record<string, unknown> = {};
    try {
      all = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
    } catch {
      // first entry
    }
    await fs.mkdir(join(file, '..'), { recursive: true });
    const tmp = `${file}.${process.pid}`;
    await fs.writeFile(tmp, JSON.stringify({ ...all, [key]: value }));
    await fs.rename(tmp, file);
  } catch {
    // a cache that cannot be written only costs the hash next time
  }
}

/** A statically linked busybox on this machine, if any. */
export async function findStaticBusybox(): Promise<string | undefined> {
  const candidates = ['/bin/busybox', '/usr/bin/busybox', await findExecutable('busybox')];
  for (const candidate of candidates) {
    if (!candidate) continue;
    try {
      const real = await fs.realpath(candidate);
      if ((await ldd(real)).isStatic) return real;
    } catch {
      // missing, or not something ldd understands
    }
  }
  return undefined;
}

export interface BusyboxImageOptions {
  /** Static busybox binary (default: found on this machine). */
  busyboxPath?: string;
  progress?: Progress;
}

/** Files, config and tag of the busybox image, without touching Docker. */
export async function planBusyboxImage(
  options: BusyboxImageOptions = {},
): Promise<{ plan: PlannedImage; tag: string }> {
  assertLinuxHost('the busybox image');
  const busybox = options.busyboxPath ?? (await findStaticBusybox());
  if (!busybox) {
    throw new DevboxError('NOT_FOUND', 'No statically linked busybox on this machine', {
      hint: 'Install it: `sudo apt-get install busybox-static` (it provides /bin/busybox).',
    });
  }
  const stat = await fs.stat(busybox);
  const { stdout } = await run(busybox, ['--list'], { encoding: 'utf8' });
  const applets = [...new Set(stdout.split('\n').map((s) => s.trim()))].filter(
    (s) => /^[\w.[-]+$/.test(s) && s !== 'busybox',
  );
  const required = ['sh', 'env', 'cat', 'nc', 'wget', 'nslookup', 'sleep', 'ls', 'echo', 'httpd', 'ip'];
  const absent = required.filter((name) => !applets.includes(name));
  if (absent.length) {
    throw new DevboxError('NOT_FOUND', `${busybox} lacks applets devbox's tests use: ${absent.join(', ')}`, {
      hint: 'Install the Debian/Ubuntu `busybox-static` package, which has them all.',
    });
  }
  const entries: LayerEntry[] = [
    ...baseSystemEntries(),
    { type: 'file', path: '/bin/busybox', mode: 0o755, source: { hostPath: busybox, size: stat.size } },
    ...applets.map((name): LayerEntry => ({ type: 'symlink', path: `/bin/${name}`, target: 'busybox' })),
    { type: 'directory', path: '/var/www', mode: 0o755 },
  ];
  const plan = await planImage(entries, {
    env: [PATH_ENV],
    cmd: ['sh'],
    labels: { 'devbox.image': 'busybox' },
  });
  return { plan, tag: `${BUSYBOX_REPOSITORY}:${shortId(plan.imageId)}` };
}

/** A busybox image (`sh`, `nc`, `wget`, `nslookup`, `httpd`, `ip`, …) for test pods, from the host's busybox-static. */
export async function ensureBusyboxImage(
  docker: DockerClient,
  options: BusyboxImageOptions = {},
): Promise<EnsuredImage> {
  const progress = options.progress ?? silentProgress;
  const started = Date.now();
  await assertEngineMatchesHost(docker, 'the busybox image');
  const { plan, tag } = await planBusyboxImage(options);
  return loadIfMissing(docker, plan, tag, progress, started, `Load ${tag}`);
}

export interface PauseImageOptions {
  /** C source of the pause program (default: containers/pause/pause.c of this package). */
  sourcePath?: string;
  /** C compiler (default: gcc). */
  compiler?: string;
  progress?: Progress;
}

/** containers/pause/pause.c of this package, from dist/src/docker or src/docker. */
export function defaultPauseSource(): string {
  return fileURLToPath(new URL('../../../containers/pause/pause.c', import.meta.url));
}

export async function planPauseImage(
  options: PauseImageOptions = {},
): Promise<{ plan: PlannedImage; tag: string; sourceSha256: string }> {
  assertLinuxHost('the pause image');
  const sourcePath = options.sourcePath ?? (await resolvePauseSource());
  const source = await fs.readFile(sourcePath);
  const sourceSha256 = createHash('sha256').update(source).digest('hex');
  const binary = await compileStatic(sourcePath, options.compiler ?? 'gcc');
  const plan = await planImage([{ type: 'file', path: '/pause', mode: 0o755, source: { content: binary } }], {
    user: '65535:65535',
    entrypoint: ['/pause'],
    labels: { 'devbox.image': 'pause', 'devbox.source-sha256': sourceSha256 },
  });
  return { plan, tag: `${PAUSE_REPOSITORY}:${PAUSE_VERSION}`, sourceSha256 };
}

/**
 * The sandbox ("pause") image of the test cluster: a static C program that
 * sleeps, reaps children and exits on SIGINT/SIGTERM. Not rebuilt while the
 * loaded image came from the same source.
 */
export async function ensurePauseImage(
  docker: DockerClient,
  options: PauseImageOptions = {},
): Promise<EnsuredImage> {
  const progress = options.progress ?? silentProgress;
  const started = Date.now();
  const tag = `${PAUSE_REPOSITORY}:${PAUSE_VERSION}`;
  const sourcePath = options.sourcePath ?? (await resolvePauseSource());
  const sourceSha256 = createHash('sha256')
    .update(await fs.readFile(sourcePath))
    .digest('hex');
  const existing = await docker.inspectImage(tag);
  if (existing?.labels['devbox.source-sha256'] === sourceSha256) {
    return { tag, imageId: existing.id, reused: true, durationMs: Date.now() - started };
  }
  await assertEngineMatchesHost(docker, 'the pause image');
  const { plan } = await progress.step('Compile the pause program', () =>
    planPauseImage({ ...options, sourcePath }),
  );
  return loadIfMissing(docker, plan, tag, progress, started, `Load ${tag}`);
}

async function resolvePauseSource(): Promise<string> {
  const path = defaultPauseSource();
  try {
    await fs.access(path);
    return path;
  } catch {
    throw new DevboxError('NOT_FOUND', `The pause program's source is missing (${path})`, {
      hint: 'Reinstall devbox; the package ships containers/pause/pause.c.',
    });
  }
}

/** `gcc -static -Os -s`; the binary is read back and its temporary directory removed. */
async function compileStatic(sourcePath: string, compiler: string): Promise<Buffer> {
  const dir = await fs.mkdtemp(join(tmpdir(), 'devbox-pause-'));
  try {
    const output = join(dir, 'pause');
    try {
      await run(compiler, ['-static', '-Os', '-s', '-o', output, sourcePath], { encoding: 'utf8' });
    } catch (err) {
      const { code, stderr } = err as { code?: unknown; stderr?: string };
      if (code === 'ENOENT') {
        throw new DevboxError('NOT_FOUND', `${compiler} is needed to build the pause image`, {
          hint: 'Install gcc and static libc (Debian/Ubuntu: `sudo apt-get install gcc libc6-dev`).',
          cause: err,
        });
      }
      throw new DevboxError(
        'INTERNAL',
        `Compiling ${sourcePath} failed: ${(stderr ?? errorText(err)).trim()}`,
        {
          hint: 'A static build needs the static C library (Debian/Ubuntu: libc6-dev).',
          cause: err,
        },
      );
    }
    return await fs.readFile(output);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

async function loadIfMissing(
  docker: DockerClient,
  plan: PlannedImage,
  tag: string,
  progress: Progress,
  started: number,
  title: string,
): Promise<EnsuredImage> {
  const existing = await docker.inspectImage(tag);
  if (existing?.id === plan.imageId) {
    return {
      tag,
      imageId: plan.imageId,
      reused: true,
      layerBytes: plan.layerSize,
      durationMs: Date.now() - started,
    };
  }
  await progress.step(title, () => docker.loadImage(plan.archive([tag])));
  const loaded = await docker.inspectImage(tag);
  if (loaded?.id !== plan.imageId) {
    throw new DevboxError(
      'INTERNAL',
      `docker load gave ${tag} the ID ${loaded?.id ?? '(none)'}, expected ${plan.imageId}`,
    );
  }
  return {
    tag,
    imageId: plan.imageId,
    reused: false,
    layerBytes: plan.layerSize,
    durationMs: Date.now() - started,
  };
}

function assertLinuxHost(what: string): void {
  if (process.platform !== 'linux') {
    throw new DevboxError(
      'BAD_INPUT',
      `devbox can build ${what} only on Linux (this is ${process.platform})`,
      {
        hint: 'Use a public node image as the runtime image instead.',
      },
    );
  }
}

/** Host binaries only run on an engine of the same OS and CPU. */
async function assertEngineMatchesHost(docker: DockerClient, what: string): Promise<void> {
  const engine = await docker.version();
  const arch = goArch();
  if (engine.os !== 'linux' || engine.arch !== arch) {
    throw new DevboxError(
      'BAD_INPUT',
      `Cannot build ${what} from this machine's binaries (linux/${arch}) for an engine on ${engine.os}/${engine.arch}`,
      {
        hint: 'Use a public node image as the runtime image instead.',
      },
    );
  }
}
