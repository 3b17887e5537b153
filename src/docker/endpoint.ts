import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { DevboxError, errorText } from '../util/errors.js';
import { isKnownHostKey } from './known-hosts.js';

/**
 * Where the Docker engine is and how devbox found out, resolved the way the
 * `docker` CLI does: DOCKER_HOST, then DOCKER_CONTEXT, then the current
 * context of ~/.docker/config.json, then the local socket.
 */
export interface DockerEndpoint {
  /** e.g. `unix:///var/run/docker.sock`, `tcp://10.0.0.5:2376`, `ssh://me@box`. */
  host: string;
  source: 'DOCKER_HOST' | 'context' | 'default';
  /** Name of the Docker context used, when one was. */
  context?: string;
  tls?: DockerTls;
}

export interface DockerTls {
  /** Verify the server certificate (DOCKER_TLS_VERIFY, or a context without SkipTLSVerify). */
  verify: boolean;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** What the resolver may look at; tests pass fakes. */
export interface EndpointInputs {
  env: NodeJS.ProcessEnv;
  home: string;
  /** Returns undefined when the file does not exist. */
  readFile: (path: string) => Buffer | undefined;
}

export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';

/** Inputs from this process: its environment, home directory and file system. */
export function processEndpointInputs(): EndpointInputs {
  return {
    env: process.env,
    home: homedir(),
    readFile: (path) => {
      try {
        return readFileSync(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
  };
}

/** Directory of the Docker CLI configuration (DOCKER_CONFIG or ~/.docker). */
export function dockerConfigDir(inputs: EndpointInputs): string {
  return inputs.env.DOCKER_CONFIG || join(inputs.home, '.docker');
}

/** Docker stores each context under the SHA-256 of its name. */
export function contextDirName(name: string): string {
  return createHash('sha256').update(name).digest('hex');
}

/**
 * Resolve the engine endpoint. `contextName` forces a context, as
 * `docker --context` does; otherwise the CLI's precedence applies.
 */
export function resolveDockerEndpoint(
  inputs: EndpointInputs = processEndpointInputs(),
  contextName?: string,
): DockerEndpoint {
  const { env } = inputs;
  if (!contextName && env.DOCKER_HOST) {
    const host = normalizeHost(env.DOCKER_HOST);
    const endpoint: DockerEndpoint = { host, source: 'DOCKER_HOST' };
    const tls = tlsFromEnv(inputs, host);
    if (tls) endpoint.tls = tls;
    return endpoint;
  }
  const name = contextName || env.DOCKER_CONTEXT || currentContext(inputs);
  if (!name || name === 'default') return { host: DEFAULT_DOCKER_HOST, source: 'default' };
  return contextEndpoint(inputs, name);
}

function currentContext(inputs: EndpointInputs): string | undefined {
  const path = join(dockerConfigDir(inputs), 'config.json');
  const raw = inputs.readFile(path);
  if (!raw) return undefined;
  try {
    const config = JSON.parse(raw.toString('utf8')) as { currentContext?: unknown };
    return typeof config.currentContext === 'string' ? config.currentContext : undefined;
  } catch (err) {
    throw new DevboxError('NO_DOCKER', `Cannot parse ${path}: ${errorText(err)}`, {
      hint: 'Fix the JSON in that file or set DOCKER_HOST.',
      cause: err,
    });
  }
}

function contextEndpoint(inputs: EndpointInputs, name: string): DockerEndpoint {
  const configDir = dockerConfigDir(inputs);
  const id = contextDirName(name);
  const metaPath = join(configDir, 'contexts', 'meta', id, 'meta.json');
  const raw = inputs.readFile(metaPath);
  if (!raw) {
    throw new DevboxError('NO_DOCKER', `Docker context "${name}" does not exist (no ${metaPath})`, {
      hint: 'Run `docker context ls` and `docker context use <name>`, or set DOCKER_HOST.',
    });
  }
  let meta: { Endpoints?: { docker?: { Host?: unknown; SkipTLSVerify?: unknown } } };
  try {
    meta = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new DevboxError('NO_DOCKER', `Cannot parse ${metaPath}: ${errorText(err)}`, { cause: err });
  }
  const docker = meta.Endpoints?.docker;
  const host =
    typeof docker?.Host === 'string' && docker.Host ? normalizeHost(docker.Host) : DEFAULT_DOCKER_HOST;
  const endpoint: DockerEndpoint = { host, source: 'context', context: name };
  const tlsDir = join(configDir, 'contexts', 'tls', id, 'docker');
  const ca = inputs.readFile(join(tlsDir, 'ca.pem'));
  const cert = inputs.readFile(join(tlsDir, 'cert.pem'));
  const key = inputs.readFile(join(tlsDir, 'key.pem'));
  if (ca || cert || key) {
    endpoint.tls = { verify: docker?.SkipTLSVerify !== true };
    if (ca) endpoint.tls.ca = ca;
    if (cert) endpoint.tls.cert = cert;
    if (key) endpoint.tls.key = key;
  } else if (host.startsWith('tcp://') && docker?.SkipTLSVerify === true) {
    endpoint.tls = { verify: false };
  }
  return endpoint;
}

function tlsFromEnv(inputs: EndpointInputs, host: string): DockerTls | undefined {
  const { env } = inputs;
  if (!host.startsWith('tcp://')) return undefined;
  const verify = Boolean(env.DOCKER_TLS_VERIFY);
  if (!verify && !env.DOCKER_TLS) return undefined;
  const certDir = env.DOCKER_CERT_PATH || dockerConfigDir(inputs);
  const tls: DockerTls = { verify };
  const ca = inputs.readFile(join(certDir, 'ca.pem'));
  const cert = inputs.readFile(join(certDir, 'cert.pem'));
  const key = inputs.readFile(join(certDir, 'key.pem'));
  if (ca) tls.ca = ca;
  if (cert) tls.cert = cert;
  if (key) tls.key = key;
  return tls;
}

/** `host:2375` → `tcp://host:2375`; other schemes stay as they are. */
export function normalizeHost(host: string): string {
  const trimmed = host.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) return trimmed;
  return `tcp://${trimmed}`;
}

/** Connection options in the shape docker-modem (dockerode) takes. */
export interface ModemOptions {
  socketPath?: string;
  host?: string;
  port?: number;
  protocol?: 'http' | 'https' | 'ssh';
  username?: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  sshOptions?: { agent?: string; privateKey?: Buffer; hostVerifier?: (key: Buffer) => boolean };
  /** Set only when TLS must not be verified (docker-modem has no rejectUnauthorized of its own). */
  agent?: HttpsAgent;
}

/**
 * Translate an endpoint into docker-modem options. Every field is set
 * explicitly because docker-modem merges in its own reading of DOCKER_HOST.
 */
export function modemOptions(
  endpoint: DockerEndpoint,
  inputs: EndpointInputs = processEndpointInputs(),
): ModemOptions {
  const url = endpoint.host;
  if (url.startsWith('unix://') || url.startsWith('npipe://')) {
    const path = url.replace(/^(unix|npipe):\/\//, '');
    return { socketPath: path || '/var/run/docker.sock', host: undefined, port: undefined };
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    throw new DevboxError(
      'NO_DOCKER',
      `Docker host "${url}" (${describeSource(endpoint)}) is not a valid address`,
      {
        hint: 'Use unix:///path/to/docker.sock, tcp://host:port or ssh://user@host.',
        cause: err,
      },
    );
  }
  const hostname = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  if (parsed.protocol === 'ssh:') {
    const sshOptions: ModemOptions['sshOptions'] = {};
    if (inputs.env.SSH_AUTH_SOCK) sshOptions.agent = inputs.env.SSH_AUTH_SOCK;
    else {
      // Without an agent, try the default key files the ssh client would try.
      for (const file of ['id_ed25519', 'id_ecdsa', 'id_rsa']) {
        const key = inputs.readFile(join(inputs.home, '.ssh', file));
        if (key) {
          sshOptions.privateKey = key;
          break;
        }
      }
    }
    const port = parsed.port ? Number(parsed.port) : 22;
    // Only keys known_hosts accepts: ssh2 would take any key the server shows.
    const knownHosts = inputs.readFile(join(inputs.home, '.ssh', 'known_hosts'))?.toString('utf8') ?? '';
    sshOptions.hostVerifier = (key: Buffer) => isKnownHostKey(knownHosts, hostname, port, key);
    return {
      socketPath: undefined,
      protocol: 'ssh',
      host: hostname,
      port,
      username: decodeURIComponent(parsed.username) || inputs.env.USER || 'root',
      sshOptions,
    };
  }
  if (parsed.protocol !== 'tcp:' && parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new DevboxError(
      'NO_DOCKER',
      `Docker host scheme "${parsed.protocol}" (${describeSource(endpoint)}) is not supported`,
      {
        hint: 'Use unix://, tcp:// or ssh://.',
      },
    );
  }
  const tls = endpoint.tls ?? (parsed.protocol === 'https:' ? { verify: true } : undefined);
  const options: ModemOptions = {
    socketPath: undefined,
    protocol: tls ? 'https' : 'http',
    host: hostname,
    port: parsed.port ? Number(parsed.port) : tls ? 2376 : 2375,
  };
  if (tls?.ca) options.ca = tls.ca;
  if (tls?.cert) options.cert = tls.cert;
  if (tls?.key) options.key = tls.key;
  if (tls && !tls.verify) {
    options.agent = new HttpsAgent({ rejectUnauthorized: false, ca: tls.ca, cert: tls.cert, key: tls.key });
  }
  return options;
}

/** Human text naming where an endpoint came from, for error messages. */
export function describeSource(endpoint: DockerEndpoint): string {
  switch (endpoint.source) {
    case 'DOCKER_HOST':
      return 'from DOCKER_HOST';
    case 'context':
      return `from Docker context "${endpoint.context}"`;
    default:
      return 'the default socket';
  }
}
