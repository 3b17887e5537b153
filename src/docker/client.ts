import { Readable } from 'node:stream';
import Docker from 'dockerode';
import { DevboxError, type ErrorCode, errorText, isDevboxError } from '../util/errors.js';
import { debugLogger } from '../util/log.js';
import {
  type DockerEndpoint,
  describeSource,
  type EndpointInputs,
  modemOptions,
  processEndpointInputs,
  resolveDockerEndpoint,
} from './endpoint.js';
import { demuxDockerStream, type EngineMessage, readEngineMessages } from './streams.js';

const log = debugLogger('docker');

/** What devbox needs from a Docker engine. The only code that touches dockerode. */
export interface DockerClient {
  readonly endpoint: DockerEndpoint;
  /** Resolves when the engine answers; otherwise a NO_DOCKER error naming what to check. */
  ping(options?: { timeoutMs?: number }): Promise<void>;
  version(): Promise<EngineVersion>;

  inspectImage(ref: string): Promise<ImageInfo | undefined>;
  imageExists(ref: string): Promise<boolean>;
  removeImage(ref: string, options?: { force?: boolean }): Promise<void>;
  /** `docker load` from a docker-archive tar stream; returns the loaded references. */
  loadImage(archive: Readable): Promise<string[]>;
  /** `docker build` from a tar build context; build errors reject (they arrive inside the stream). */
  buildImage(context: Readable, options: BuildOptions): Promise<BuildResult>;

  createContainer(spec: ContainerSpec): Promise<string>;
  startContainer(id: string): Promise<void>;
  /** Stops a running container; a container already stopped is not an error. */
  stopContainer(id: string, options?: { timeoutSeconds?: number }): Promise<void>;
  /** `docker restart`: stops (SIGTERM, then SIGKILL after `timeoutSeconds`) and starts the same container. */
  restartContainer(id: string, options?: { timeoutSeconds?: number }): Promise<void>;
  renameContainer(id: string, name: string): Promise<void>;
  /** Removes a container; a container already gone is not an error. */
  removeContainer(id: string, options?: { force?: boolean; volumes?: boolean }): Promise<void>;
  inspectContainer(id: string): Promise<ContainerInfo | undefined>;
  /**
   * What `createContainer` would need to make this container again, with what its image
   * supplied (env, command) left out so that another image supplies its own. Undefined when gone.
   */
  containerSpec(id: string): Promise<ContainerSpec | undefined>;
  /** `docker diff`: paths the container added (`A`), changed (`C`) or deleted (`D`) against its image. */
  containerChanges(id: string): Promise<{ path: string; kind: 'A' | 'C' | 'D' }[]>;
  /** Containers carrying all the given labels (`undefined` value = label present with any value). */
  listContainers(filter?: {
    labels?: Record<string, string | undefined>;
    all?: boolean;
  }): Promise<ContainerSummary[]>;
  /** Resolves with the exit code once the container stops (or, with `next-exit`, next stops); `signal` abandons the wait. */
  waitContainer(
    id: string,
    options?: { condition?: 'not-running' | 'next-exit' | 'removed'; signal?: AbortSignal },
  ): Promise<number>;
  /** stdout and stderr of a container; both streams end when the log ends (or the container stops, with `follow`). */
  logs(id: string, options?: LogOptions): Promise<{ stdout: Readable; stderr: Readable }>;

  /**
   * `docker exec`: runs `cmd` in a running container and collects its output.
   * A command that cannot start (missing binary) resolves with exit code 126/127 and the engine's
   * message on stdout, as with the CLI. A stopped container is a CONFLICT; `timeoutMs` a TIMEOUT.
   */
  exec(id: string, cmd: string[], options?: ExecOptions): Promise<ExecResult>;

  /** Extract a tar stream into `path` inside the container (the directory must exist). */
  putArchive(id: string, path: string, tar: Readable): Promise<void>;
  /** A tar stream of `path` inside the container. */
  getArchive(id: string, path: string): Promise<Readable>;

  createVolume(name: string, options?: { labels?: Record<string, string> }): Promise<void>;
  /** Removes a named volume; a volume already gone is not an error. */
  removeVolume(name: string, options?: { force?: boolean }): Promise<void>;
  listVolumes(filter?: { labels?: Record<string, string | undefined> }): Promise<VolumeSummary[]>;
}

export interface EngineVersion {
  version: string;
  apiVersion: string;
  os: string;
  arch: string;
}

export interface ImageInfo {
  /** `sha256:…` */
  id: string;
  repoTags: string[];
  size: number;
  labels: Record<string, string>;
  user: string;
  env: string[];
}

export interface BuildOptions {
  tag: string;
  /** Path of the Dockerfile inside the context (default `Dockerfile`). */
  dockerfile?: string;
  buildArgs?: Record<string, string>;
  labels?: Record<string, string>;
  target?: string;
  /** Build output lines, for progress on stderr. */
  onOutput?: (line: string) => void;
}

export interface BuildResult {
  /** `sha256:…` */
  imageId: string;
}

export interface PortBinding {
  containerPort: number;
  protocol?: 'tcp' | 'udp';
  hostPort?: number;
  hostIp?: string;
}

export interface MountSpec {
  type: 'volume' | 'bind' | 'tmpfs';
  /** Volume name or host path; ignored for tmpfs. */
  source?: string;
  target: string;
  readOnly?: boolean;
}

/** The subset of `docker create` devbox uses. Extend it here rather than passing raw engine options. */
export interface ContainerSpec {
  name?: string;
  image: string;
  cmd?: string[];
  entrypoint?: string[];
  env?: Record<string, string>;
  labels?: Record<string, string>;
  user?: string;
  workingDir?: string;
  tty?: boolean;
  openStdin?: boolean;
  /** e.g. `container:<id>` to join another container's network namespace. */
  networkMode?: string;
  /** Containers that join this one's network also get its hostname. */
  hostname?: string;
  capAdd?: string[];
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
  extraHosts?: string[];
  ports?: PortBinding[];
  mounts?: MountSpec[];
  autoRemove?: boolean;
  /** Run an init process as PID 1 (reaps zombies, forwards signals). */
  init?: boolean;
  stopSignal?: string;
  stopTimeoutSeconds?: number;
}

export interface ExecOptions {
  user?: string;
  env?: Record<string, string>;
  workingDir?: string;
  /** Give up (and release the connection) after this long; default 30 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Output kept per stream; the beginning is dropped beyond it (default 1 MiB). */
  maxOutputBytes?: number;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** A mount of an existing container, as the engine reports it. */
export interface ContainerMount {
  type: string;
  /** Host path (bind, or a volume's mount point on the engine's machine). */
  source: string;
  destination: string;
  readOnly: boolean;
  /** Volume name, for volumes. */
  name?: string;
}

export interface ContainerInfo {
  id: string;
  name: string;
  image: string;
  imageId: string;
  labels: Record<string, string>;
  running: boolean;
  /** created, running, exited, … */
  status: string;
  exitCode: number;
  tty: boolean;
  networkMode: string;
  /** Address on the default bridge, when attached to it. */
  ipAddress?: string;
  mounts?: ContainerMount[];
}

export interface ContainerSummary {
  id: string;
  name: string;
  image: string;
  labels: Record<string, string>;
  state: string;
  status: string;
  /** Unix seconds. */
  created: number;
}

export interface VolumeSummary {
  name: string;
  labels: Record<string, string>;
}

export interface LogOptions {
  follow?: boolean;
  /** Unix seconds. */
  since?: number;
  tail?: number;
  timestamps?: boolean;
}

/** Options of `createDockerClient`. */
export interface DockerClientOptions {
  /** Use this endpoint instead of resolving one. */
  endpoint?: DockerEndpoint;
  /** Use this Docker context (like `docker --context`). */
  context?: string;
  inputs?: EndpointInputs;
}

/**
 * A client for the engine the `docker` CLI would use: DOCKER_HOST
 * (unix://, tcp:// with DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, ssh://), else
 * the current Docker context, else the local socket. No I/O happens until a
 * method is called; call `ping()` first for a clear error.
 */
export function createDockerClient(options: DockerClientOptions = {}): DockerClient {
  const inputs = options.inputs ?? processEndpointInputs();
  const endpoint = options.endpoint ?? resolveDockerEndpoint(inputs, options.context);
  let docker: Docker;
  try {
    // docker-modem also reads DOCKER_HOST/DOCKER_CERT_PATH itself and throws on unreadable certificates.
    docker = new Docker(modemOptions(endpoint, inputs) as Docker.DockerOptions);
  } catch (err) {
    throw isDevboxError(err)
      ? err
      : new DevboxError(
          'NO_DOCKER',
          `Cannot set up the Docker client for ${endpoint.host}: ${errorText(err)}`,
          {
            hint: 'Check DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH (the certificate files must be readable).',
            cause: err,
          },
        );
  }
  log.debug('engine endpoint', { host: endpoint.host, source: endpoint.source, context: endpoint.context });
  return new DockerodeClient(docker, endpoint);
}

/** Translate our container spec into the engine's create body. */
export function toCreateOptions(spec: ContainerSpec): Docker.ContainerCreateOptions {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostIp?: string; HostPort?: string }[]> = {};
  for (const port of spec.ports ?? []) {
    const key = `${port.containerPort}/${port.protocol ?? 'tcp'}`;
    exposed[key] = {};
    const binding: { HostIp?: string; HostPort?: string } = {
      HostPort: port.hostPort ? String(port.hostPort) : '',
    };
    if (port.hostIp) binding.HostIp = port.hostIp;
    bindings[key] = [...(bindings[key] ?? []), binding];
  }
  const hostConfig: Docker.HostConfig = {};
  if (spec.networkMode) hostConfig.NetworkMode = spec.networkMode;
  if (spec.capAdd?.length) hostConfig.CapAdd = spec.capAdd;
  if (spec.dns?.length) hostConfig.Dns = spec.dns;
  if (spec.dnsSearch?.length) hostConfig.DnsSearch = spec.dnsSearch;
  if (spec.dnsOptions?.length) hostConfig.DnsOptions = spec.dnsOptions;
  if (spec.extraHosts?.length) hostConfig.ExtraHosts = spec.extraHosts;
  if (spec.ports?.length) hostConfig.PortBindings = bindings;
  if (spec.autoRemove) hostConfig.AutoRemove = true;
  if (spec.init) hostConfig.Init = true;
  if (spec.mounts?.length) {
    hostConfig.Mounts = spec.mounts.map((m) => {
      const source = m.type === 'tmpfs' ? '' : (m.source ?? '');
      return { Type: m.type, Source: source, Target: m.target, ReadOnly: Boolean(m.readOnly) };
    });
  }
  const options: Docker.ContainerCreateOptions = { Image: spec.image, HostConfig: hostConfig };
  if (spec.name) options.name = spec.name;
  if (spec.cmd) options.Cmd = spec.cmd;
  if (spec.entrypoint) options.Entrypoint = spec.entrypoint;
  if (spec.env) options.Env = Object.entries(spec.env).map(([k, v]) => `${k}=${v}`);
  if (spec.labels) options.Labels = spec.labels;
  if (spec.user !== undefined) options.User = spec.user;
  if (spec.workingDir) options.WorkingDir = spec.workingDir;
  if (spec.hostname) options.Hostname = spec.hostname;
  if (spec.tty) options.Tty = true;
  if (spec.openStdin) {
    options.OpenStdin = true;
    options.AttachStdin = true;
  }
  if (spec.ports?.length) options.ExposedPorts = exposed;
  if (spec.stopSignal) options.StopSignal = spec.stopSignal;
  if (spec.stopTimeoutSeconds !== undefined) options.StopTimeout = spec.stopTimeoutSeconds;
  return options;
}

/**
 * A create spec from an inspected container. Env entries, command and entrypoint equal to
 * the image's are dropped (`imageConfig`), so a rebuilt image brings its own.
 */
export function specFromInspect(
  c: Docker.ContainerInspectInfo,
  imageConfig?: { Env?: string[] | null; Cmd?: string[] | null; Entrypoint?: string[] | string | null },
): ContainerSpec {
  const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
  const imageEnv = new Set(imageConfig?.Env ?? []);
  const env: Record<string, string> = {};
  for (const entry of c.Config.Env ?? []) {
    if (imageEnv.has(entry)) continue;
    const at = entry.indexOf('=');
    if (at > 0) env[entry.slice(0, at)] = entry.slice(at + 1);
  }
  const spec: ContainerSpec = {
    name: c.Name.replace(/^\//, ''),
    image: c.Config.Image,
    labels: { ...(c.Config.Labels ?? {}) },
    env,
  };
  const entrypoint = c.Config.Entrypoint as string[] | string | null | undefined;
  const entrypointIsImages = same(entrypoint, imageConfig?.Entrypoint);
  if (entrypoint && !entrypointIsImages)
    spec.entrypoint = typeof entrypoint === 'string' ? [entrypoint] : [...entrypoint];
  // The image's Cmd only goes with the image's entrypoint.
  if (c.Config.Cmd && !(entrypointIsImages && same(c.Config.Cmd, imageConfig?.Cmd)))
    spec.cmd = [...c.Config.Cmd];
  if (c.Config.User) spec.user = c.Config.User;
  if (c.Config.WorkingDir) spec.workingDir = c.Config.WorkingDir;
  if (c.Config.Tty) spec.tty = true;
  if (c.Config.OpenStdin) spec.openStdin = true;
  const host = c.HostConfig;
  if (host.NetworkMode) spec.networkMode = host.NetworkMode;
  if (host.CapAdd?.length) spec.capAdd = [...host.CapAdd];
  if (host.Init) spec.init = true;
  if (host.AutoRemove) spec.autoRemove = true;
  const mounts = (
    host as { Mounts?: { Type: string; Source?: string; Target: string; ReadOnly?: boolean }[] }
  ).Mounts;
  if (mounts?.length)
    spec.mounts = mounts.map((m) => ({
      type: m.Type as MountSpec['type'],
      source: m.Source ?? '',
      target: m.Target,
      readOnly: Boolean(m.ReadOnly),
    }));
  const stopSignal = (c.Config as { StopSignal?: string }).StopSignal;
  if (stopSignal) spec.stopSignal = stopSignal;
  return spec;
}

/** Engine label filter: `["a=b", "c"]`. */
export function labelFilter(labels: Record<string, string | undefined> = {}): string[] {
  return Object.entries(labels).map(([k, v]) => (v === undefined ? k : `${k}=${v}`));
}

class DockerodeClient implements DockerClient {
  constructor(
    private readonly docker: Docker,
    readonly endpoint: DockerEndpoint,
  ) {}

  async ping(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const signal = AbortSignal.timeout(timeoutMs);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        (this.docker.ping as (opts: { abortSignal: AbortSignal }) => Promise<unknown>)({
          abortSignal: signal,
        }),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })),
            timeoutMs,
          );
        }),
      ]);
    } catch (err) {
      throw unreachable(this.endpoint, err, timeoutMs);
    } finally {
      clearTimeout(timer);
    }
  }

  async version(): Promise<EngineVersion> {
    const v = await this.call('read the engine version', () => this.docker.version());
    return { version: v.Version, apiVersion: v.ApiVersion, os: v.Os, arch: v.Arch };
  }

  async inspectImage(ref: string): Promise<ImageInfo | undefined> {
    try {
      const image = await this.docker.getImage(ref).inspect();
      return {
        id: image.Id,
        repoTags: image.RepoTags ?? [],
        size: image.Size,
        labels: image.Config?.Labels ?? {},
        user: image.Config?.User ?? '',
        env: image.Config?.Env ?? [],
      };
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw engineError(err, `inspect image ${ref}`);
    }
  }

  async imageExists(ref: string): Promise<boolean> {
    return (await this.inspectImage(ref)) !== undefined;
  }

  async removeImage(ref: string, options: { force?: boolean } = {}): Promise<void> {
    try {
      await this.docker.getImage(ref).remove({ force: Boolean(options.force) });
    } catch (err) {
      if (statusOf(err) === 404) return;
      throw engineError(err, `remove image ${ref}`);
    }
  }

  async loadImage(archive: Readable): Promise<string[]> {
    const response = await this.call('load an image', () =>
      this.docker.loadImage(archive as unknown as NodeJS.ReadableStream, { quiet: true }),
    );
    const messages = await readEngineMessages(response as unknown as Readable, {
      code: 'INTERNAL',
      what: 'docker load',
    });
    return messages
      .map((m) => /Loaded image(?: ID)?: (\S+)/.exec(m.stream ?? '')?.[1])
      .filter((ref): ref is string => Boolean(ref));
  }

  async buildImage(context: Readable, options: BuildOptions): Promise<BuildResult> {
    const query: Record<string, unknown> = { t: options.tag, rm: true, forcerm: true };
    if (options.dockerfile) query.dockerfile = options.dockerfile;
    if (options.buildArgs) query.buildargs = options.buildArgs;
    if (options.labels) query.labels = options.labels;
    if (options.target) query.target = options.target;
    const response = await this.call(`build ${options.tag}`, () =>
      this.docker.buildImage(context as unknown as NodeJS.ReadableStream, query as Docker.ImageBuildOptions),
    );
    let imageId: string | undefined;
    await readEngineMessages(response as unknown as Readable, {
      code: 'BAD_INPUT',
      what: `docker build of ${options.tag}`,
      onMessage: (m: EngineMessage) => {
        if (m.aux?.ID) imageId = m.aux.ID;
        if (m.stream) options.onOutput?.(m.stream.replace(/\n$/, ''));
      },
    });
    if (!imageId) {
      const image = await this.inspectImage(options.tag);
      if (!image) throw new DevboxError('INTERNAL', `docker build of ${options.tag} reported no image`);
      imageId = image.id;
    }
    return { imageId };
  }

  async createContainer(spec: ContainerSpec): Promise<string> {
    const container = await this.call(`create container ${spec.name ?? `from ${spec.image}`}`, () =>
      this.docker.createContainer(toCreateOptions(spec)),
    );
    return container.id;
  }

  async startContainer(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).start();
    } catch (err) {
      if (statusOf(err) === 304) return;
      throw engineError(err, `start container ${id}`);
    }
  }

  async stopContainer(id: string, options: { timeoutSeconds?: number } = {}): Promise<void> {
    try {
      const opts = options.timeoutSeconds === undefined ? {} : { t: options.timeoutSeconds };
      await this.docker.getContainer(id).stop(opts);
    } catch (err) {
      if (statusOf(err) === 304) return;
      throw engineError(err, `stop container ${id}`);
    }
  }

  async restartContainer(id: string, options: { timeoutSeconds?: number } = {}): Promise<void> {
    const opts = options.timeoutSeconds === undefined ? {} : { t: options.timeoutSeconds };
    await this.call(`restart container ${id}`, () => this.docker.getContainer(id).restart(opts));
  }

  async renameContainer(id: string, name: string): Promise<void> {
    await this.call(`rename container ${id} to ${name}`, () => this.docker.getContainer(id).rename({ name }));
  }

  async containerSpec(id: string): Promise<ContainerSpec | undefined> {
    const c = await this.inspectRaw(id);
    if (!c) return undefined;
    const image = await this.docker
      .getImage(c.Image)
      .inspect()
      .catch(() => undefined);
    return specFromInspect(c, image?.Config);
  }

  async containerChanges(id: string): Promise<{ path: string; kind: 'A' | 'C' | 'D' }[]> {
    const list = (await this.call(`list the changes of container ${id}`, () =>
      this.docker.getContainer(id).changes(),
    )) as { Path: string; Kind: number }[] | null;
    const kinds = ['C', 'A', 'D'] as const;
    return (list ?? []).map((c) => ({ path: c.Path, kind: kinds[c.Kind] ?? 'C' }));
  }

  async removeContainer(id: string, options: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    try {
      await this.docker
        .getContainer(id)
        .remove({ force: Boolean(options.force), v: Boolean(options.volumes) });
    } catch (err) {
      const status = statusOf(err);
      // 404: already gone; 409 "removal already in progress" (AutoRemove racing us).
      if (status === 404 || (status === 409 && /already in progress/.test(errorText(err)))) return;
      throw engineError(err, `remove container ${id}`);
    }
  }

  /** Docker's own inspect document, or undefined when the container is gone. */
  private async inspectRaw(id: string): Promise<Docker.ContainerInspectInfo | undefined> {
    try {
      return await this.docker.getContainer(id).inspect();
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw engineError(err, `inspect container ${id}`);
    }
  }

  async inspectContainer(id: string): Promise<ContainerInfo | undefined> {
    const c = await this.inspectRaw(id);
    if (!c) return undefined;
    const info: ContainerInfo = {
      id: c.Id,
      name: c.Name.replace(/^\//, ''),
      image: c.Config.Image,
      imageId: c.Image,
      labels: c.Config.Labels ?? {},
      running: c.State.Running,
      status: c.State.Status,
      exitCode: c.State.ExitCode,
      tty: Boolean(c.Config.Tty),
      networkMode: c.HostConfig.NetworkMode ?? '',
      mounts: (c.Mounts ?? []).map((m) => {
        const mount: ContainerMount = {
          type: m.Type,
          source: m.Source,
          destination: m.Destination,
          readOnly: m.RW === false,
        };
        if (m.Name) mount.name = m.Name;
        return mount;
      }),
    };
    const address = Object.values(c.NetworkSettings?.Networks ?? {}).find((n) => n.IPAddress)?.IPAddress;
    if (address) info.ipAddress = address;
    return info;
  }

  async listContainers(
    filter: { labels?: Record<string, string | undefined>; all?: boolean } = {},
  ): Promise<ContainerSummary[]> {
    const list = await this.call('list containers', () =>
      this.docker.listContainers({ all: filter.all ?? true, filters: { label: labelFilter(filter.labels) } }),
    );
    return list.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? '').replace(/^\//, ''),
      image: c.Image,
      labels: c.Labels ?? {},
      state: c.State,
      status: c.Status,
      created: c.Created,
    }));
  }

  async waitContainer(
    id: string,
    options: { condition?: 'not-running' | 'next-exit' | 'removed'; signal?: AbortSignal } = {},
  ): Promise<number> {
    options.signal?.throwIfAborted();
    const query: Record<string, unknown> = { condition: options.condition ?? 'not-running' };
    if (options.signal) query.abortSignal = options.signal;
    let result: unknown;
    try {
      result = await this.docker.getContainer(id).wait(query);
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason;
      throw engineError(err, `wait for container ${id}`, this.endpoint);
    }
    return Number((result as { StatusCode?: number }).StatusCode ?? -1);
  }

  async logs(id: string, options: LogOptions = {}): Promise<{ stdout: Readable; stderr: Readable }> {
    const info = await this.inspectContainer(id);
    if (!info) throw new DevboxError('NOT_FOUND', `Container ${id} does not exist`);
    const query = {
      stdout: true,
      stderr: true,
      timestamps: Boolean(options.timestamps),
      ...(options.since !== undefined ? { since: options.since } : {}),
      ...(options.tail !== undefined ? { tail: options.tail } : {}),
    };
    const container = this.docker.getContainer(id);
    // With follow=false dockerode buffers the whole log and returns a Buffer.
    const raw = await this.call<Buffer | NodeJS.ReadableStream>(`read logs of ${id}`, () =>
      options.follow
        ? container.logs({ ...query, follow: true })
        : container.logs({ ...query, follow: false }),
    );
    const source = Buffer.isBuffer(raw) ? Readable.from([raw]) : (raw as unknown as Readable);
    if (info.tty) return { stdout: source, stderr: Readable.from([]) };
    return demuxDockerStream(source);
  }

  async exec(id: string, cmd: string[], options: ExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const what = `run \`${cmd.join(' ')}\` in ${id}`;
    const limits = [AbortSignal.timeout(timeoutMs), ...(options.signal ? [options.signal] : [])];
    const signal = AbortSignal.any(limits);
    const create: Docker.ExecCreateOptions = { Cmd: cmd, AttachStdout: true, AttachStderr: true };
    if (options.user !== undefined) create.User = options.user;
    if (options.workingDir) create.WorkingDir = options.workingDir;
    if (options.env) create.Env = Object.entries(options.env).map(([k, v]) => `${k}=${v}`);
    const container = this.docker.getContainer(id);
    let source: Readable | undefined;
    try {
      signal.throwIfAborted();
      const exec = await container.exec(create);
      source = (await exec.start({
        hijack: true,
        stdin: false,
        abortSignal: signal,
      } as Docker.ExecStartOptions & { abortSignal: AbortSignal })) as unknown as Readable;
      const stopReading = () => source?.destroy();
      signal.addEventListener('abort', stopReading, { once: true });
      const limit = options.maxOutputBytes ?? 1024 * 1024;
      const { stdout, stderr } = demuxDockerStream(source);
      const [out, err] = await Promise.all([collectTail(stdout, limit), collectTail(stderr, limit)]).finally(
        () => signal.removeEventListener('abort', stopReading),
      );
      signal.throwIfAborted();
      // The exec's exit code is set shortly after its output ends.
      let inspected = await exec.inspect();
      for (let i = 0; inspected.Running && i < 50; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        inspected = await exec.inspect();
      }
      return { exitCode: inspected.ExitCode ?? -1, stdout: out, stderr: err };
    } catch (err) {
      source?.destroy();
      if (options.signal?.aborted) throw options.signal.reason;
      if (signal.aborted)
        throw new DevboxError('TIMEOUT', `${what} did not finish within ${Math.round(timeoutMs / 1000)}s`, {
          cause: err,
        });
      throw engineError(err, what, this.endpoint);
    }
  }

  async putArchive(id: string, path: string, tar: Readable): Promise<void> {
    await this.call(`copy files into ${id}:${path}`, () =>
      this.docker.getContainer(id).putArchive(tar as unknown as NodeJS.ReadableStream, { path }),
    );
  }

  async getArchive(id: string, path: string): Promise<Readable> {
    const stream = await this.call(`copy ${id}:${path}`, () =>
      this.docker.getContainer(id).getArchive({ path }),
    );
    return stream as unknown as Readable;
  }

  async createVolume(name: string, options: { labels?: Record<string, string> } = {}): Promise<void> {
    await this.call(`create volume ${name}`, () =>
      this.docker.createVolume({ Name: name, Labels: options.labels ?? {} }),
    );
  }

  async removeVolume(name: string, options: { force?: boolean } = {}): Promise<void> {
    try {
      await this.docker.getVolume(name).remove({ force: Boolean(options.force) });
    } catch (err) {
      if (statusOf(err) === 404) return;
      throw engineError(err, `remove volume ${name}`);
    }
  }

  async listVolumes(filter: { labels?: Record<string, string | undefined> } = {}): Promise<VolumeSummary[]> {
    const result = await this.call('list volumes', () =>
      this.docker.listVolumes({ filters: { label: labelFilter(filter.labels) } }),
    );
    return (result.Volumes ?? []).map((v) => ({ name: v.Name, labels: v.Labels ?? {} }));
  }

  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw engineError(err, what, this.endpoint);
    }
  }
}

/** Reads a stream to its end, keeping at most the last `limit` bytes. */
async function collectTail(stream: Readable, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    chunks.push(buffer);
    size += buffer.length;
    while (size - (chunks[0]?.length ?? 0) >= limit && chunks.length > 1) size -= chunks.shift()?.length ?? 0;
  }
  const all = Buffer.concat(chunks);
  return all.subarray(Math.max(0, all.length - limit)).toString('utf8');
}

function statusOf(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown })?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

const connectionCodes = new Set([
  'ENOENT',
  'EACCES',
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'ETIMEDOUT',
  'EPIPE',
]);

/** Map an engine failure onto our codes: 404 NOT_FOUND, 409 CONFLICT, no answer NO_DOCKER. */
export function engineError(err: unknown, what: string, endpoint?: DockerEndpoint): DevboxError {
  if (err instanceof DevboxError) return err;
  const status = statusOf(err);
  const errno = (err as NodeJS.ErrnoException)?.code;
  if (status === undefined && endpoint && errno && connectionCodes.has(errno))
    return unreachable(endpoint, err);
  const json = (err as { json?: { message?: string } })?.json;
  const detail = (json && typeof json === 'object' && json.message) || errorText(err);
  let code: ErrorCode = 'INTERNAL';
  if (status === 404) code = 'NOT_FOUND';
  else if (status === 409) code = 'CONFLICT';
  else if (status === 400) code = 'BAD_INPUT';
  return new DevboxError(code, `Docker could not ${what}: ${detail}`, { cause: err });
}

/** A NO_DOCKER error that says which engine was tried, why it failed and what to check. */
export function unreachable(endpoint: DockerEndpoint, err: unknown, timeoutMs?: number): DevboxError {
  const errno = (err as NodeJS.ErrnoException)?.code;
  const where = `${endpoint.host} (${describeSource(endpoint)})`;
  const socket = endpoint.host.startsWith('unix://') ? endpoint.host.slice('unix://'.length) : undefined;
  const elsewhere = 'To use another engine, set DOCKER_HOST or run `docker context use <name>`.';
  let reason = errorText(err);
  let hint: string;
  if (socket && errno === 'ENOENT') {
    reason = `no socket at ${socket}`;
    hint = `Is the Docker daemon running? Start it (\`sudo systemctl start docker\`, or open Docker Desktop) and check \`docker version\`. ${elsewhere}`;
  } else if (socket && errno === 'EACCES') {
    reason = `permission denied on ${socket}`;
    hint = `Add your user to the \`docker\` group (\`sudo usermod -aG docker $USER\`, then log in again), or use a rootless engine. ${elsewhere}`;
  } else if (errno === 'ECONNREFUSED') {
    reason = 'connection refused';
    hint = `Nothing listens there: check that the daemon runs and that the address and port are right. ${elsewhere}`;
  } else if (
    errno === 'ETIMEDOUT' ||
    (err as Error)?.name === 'TimeoutError' ||
    (err as Error)?.name === 'AbortError'
  ) {
    reason = `no answer within ${Math.round((timeoutMs ?? 10_000) / 1000)}s`;
    hint = `Check the network path to the engine and that it is not overloaded. ${elsewhere}`;
  } else if (endpoint.host.startsWith('ssh://') && /verification failed/i.test(reason)) {
    reason = 'its SSH host key is not in ~/.ssh/known_hosts (or is revoked there)';
    hint = `devbox accepts only host keys known_hosts holds: connect once with \`ssh\` to that host and check the fingerprint it shows before accepting it. ${elsewhere}`;
  } else if (endpoint.host.startsWith('ssh://')) {
    hint =
      'Check that `ssh` to that host works with a key from your SSH agent (SSH_AUTH_SOCK) and that `docker version` runs there.';
  } else if (endpoint.tls || /certificate|tls|ssl/i.test(reason)) {
    hint = 'Check the TLS material (DOCKER_CERT_PATH or the context’s certificates) and DOCKER_TLS_VERIFY.';
  } else {
    hint = `Check \`docker version\` with the same settings. ${elsewhere}`;
  }
  return new DevboxError('NO_DOCKER', `Cannot reach the Docker engine at ${where}: ${reason}`, {
    hint,
    cause: err,
  });
}
