/** The `-p` and `-v` values of `devbox up`, parsed as `docker run` reads them. */
import { DevboxError } from '../util/errors.js';
import type { PortBinding } from './client.js';
import type { BindMount } from './host-paths.js';

/**
 * `[ip:][hostPort:]containerPort[/tcp|/udp]`; IPv6 addresses in brackets
 * (`[::1]:8080:80`). Without a host port the engine picks a free one.
 */
export function parsePublishFlag(text: string): PortBinding {
  const bad = (why: string) =>
    new DevboxError('BAD_INPUT', `Invalid -p ${text}: ${why}`, {
      hint: 'Use -p <host port>:<container port>[/udp], e.g. -p 8080:3000 or -p 127.0.0.1:8080:3000.',
    });
  const [spec = '', protocol = 'tcp', ...extra] = text.trim().split('/');
  if (extra.length || (protocol !== 'tcp' && protocol !== 'udp'))
    throw bad('the protocol must be tcp or udp');
  let hostIp: string | undefined;
  let rest = spec;
  const bracketed = /^\[([^\]]+)\]:(.*)$/.exec(spec);
  if (bracketed) {
    hostIp = bracketed[1];
    rest = bracketed[2] ?? '';
  } else {
    const parts = spec.split(':');
    if (parts.length === 3) {
      hostIp = parts[0];
      rest = `${parts[1]}:${parts[2]}`;
    } else if (parts.length > 3) {
      throw bad('put an IPv6 address in brackets');
    }
  }
  const parts = rest.split(':');
  const port = (value: string | undefined, what: string, allowEmpty: boolean): number | undefined => {
    if ((value === undefined || value === '') && allowEmpty) return undefined;
    const n = Number(value);
    if (!/^\d+$/.test(value ?? '') || n < 1 || n > 65535)
      throw bad(`${what} must be a port number (1-65535)`);
    return n;
  };
  const binding: PortBinding =
    parts.length === 1
      ? { containerPort: port(parts[0], 'the container port', false) as number }
      : {
          containerPort: port(parts[1], 'the container port', false) as number,
          ...(port(parts[0], 'the host port', true) !== undefined ? { hostPort: Number(parts[0]) } : {}),
        };
  if (protocol === 'udp') binding.protocol = 'udp';
  if (hostIp) binding.hostIp = hostIp;
  return binding;
}

/**
 * `source:target[:ro|:rw]`. The source may be relative (resolved later against
 * the working directory by `resolveBindMounts`); the target must be absolute.
 */
export function parseVolumeFlag(text: string): BindMount {
  const bad = (why: string) =>
    new DevboxError('BAD_INPUT', `Invalid -v ${text}: ${why}`, {
      hint: 'Use -v <host path>:<container path>[:ro], e.g. -v ./src:/app/src:ro.',
    });
  const parts = text.split(':');
  let readOnly = false;
  const last = parts.at(-1);
  if (parts.length === 3 && (last === 'ro' || last === 'rw')) {
    readOnly = last === 'ro';
    parts.pop();
  }
  if (parts.length !== 2) throw bad('expected source:target[:ro]');
  const [source = '', target = ''] = parts;
  if (!source) throw bad('the source path is empty');
  if (!target.startsWith('/')) throw bad('the container path must be absolute');
  return readOnly ? { source, target, readOnly } : { source, target };
}
