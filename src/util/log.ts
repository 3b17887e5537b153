/**
 * Libraries stay silent; debug output is switched on by namespace, as in
 * `DEVBOX_DEBUG=tunnel,sidecar` or `DEVBOX_DEBUG=*`. Daemons log one JSON object
 * per line to stderr so that `docker logs` and `kubectl logs` stay greppable.
 */
const enabled = (process.env.DEVBOX_DEBUG ?? '').split(',').map((s) => s.trim());

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Whether DEVBOX_DEBUG asks for anything at all (error causes and stacks are then shown). */
export function anyDebug(): boolean {
  return enabled.some((n) => n !== '');
}

export function debugEnabled(namespace: string): boolean {
  return enabled.includes('*') || enabled.includes(namespace);
}

/** A logger for library code: prints nothing unless its namespace is enabled. */
export function debugLogger(namespace: string): Logger {
  const on = debugEnabled(namespace);
  const write = (level: string, msg: string, fields?: Record<string, unknown>) => {
    if (on)
      process.stderr.write(`${namespace} ${level} ${msg}${fields ? ` ${JSON.stringify(fields)}` : ''}\n`);
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}

/** A logger for daemons (agent, sidecar): structured lines, debug only when enabled. */
export function daemonLogger(component: string): Logger {
  const debugOn = debugEnabled(component);
  const write = (level: string, msg: string, fields?: Record<string, unknown>) => {
    process.stderr.write(
      `${JSON.stringify({ time: new Date().toISOString(), level, component, msg, ...fields })}\n`,
    );
  };
  return {
    debug: (m, f) => debugOn && write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}
