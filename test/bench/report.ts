/**
 * The tunnel benchmark's figures: collected per path, printed as a table with
 * the targets they are held against, and summed up as one JSON object.
 */
import type {
  ConcurrentResult,
  ConnectResult,
  LatencyResult,
  PausedResult,
  ThroughputResult,
} from './peers.js';

export const PATHS = ['direct', 'portForward', 'outbound', 'inbound'] as const;
export type PathName = (typeof PATHS)[number];
export type DevboxPath = 'outbound' | 'inbound';
const DEVBOX_PATHS: DevboxPath[] = ['outbound', 'inbound'];

/** A measurement, or why it failed. */
export type Measured<T> = T | { error: string };

export interface RssWindow {
  from: number;
  to: number;
}

export interface RssFigures {
  sidecar?: number;
  agent?: number;
}

export interface Phase extends RssWindow {
  path: PathName;
  task: string;
  sidecar?: { start: number; peak: number };
  agent?: { start: number; peak: number };
}

/** CPU seconds per GB carried, by forwarding process. */
export type CpuPerGB = Partial<Record<'sidecar' | 'agent' | 'kubectl', number>>;

export interface BenchReport {
  sizes: Record<string, number>;
  throughput: Partial<Record<PathName, Measured<ThroughputResult>>>;
  /** The same transfer in the other direction (client to server). */
  upload: Partial<Record<PathName, Measured<ThroughputResult>>>;
  latency: Partial<Record<PathName, Measured<LatencyResult>>>;
  connect: Partial<Record<PathName, Measured<ConnectResult>>>;
  concurrent: Partial<Record<PathName, Measured<ConcurrentResult>>>;
  paused: Partial<Record<DevboxPath, Measured<PausedResult>>>;
  /** When each path's main measurements ran (for the RSS peaks). */
  windows: Partial<Record<PathName, RssWindow>>;
  /** Each measurement as it ran, with the RSS (MB) at its start and its peak on the devbox paths. */
  phases: Phase[];
  /** Peak RSS (MB): idle before any traffic, and while each devbox path was measured. */
  rss: Partial<Record<'idle' | DevboxPath, RssFigures>>;
  /** RSS growth (MB) while a paused stream was held, and the peak then. */
  pausedRss?: Partial<Record<DevboxPath, RssFigures & { sidecarPeak?: number; agentPeak?: number }>>;
  /** CPU seconds per GB of the forwarding processes during each path's download and upload. */
  cpuPerGB: Partial<Record<PathName, Partial<Record<'download' | 'upload', CpuPerGB>>>>;
}

/** The targets the figures are reported against. */
export const TARGETS = {
  throughputVsPortForward: 0.9,
  addedP50Ms: 1,
  concurrentErrors: 0,
  sidecarRssMB: 80,
  agentRssMB: 64,
  pausedSlowdown: 0.1,
  /** A paused stream may cost its window (8 MiB) and socket buffers, not grow on. */
  pausedGrowthMB: 16,
} as const;

const ok = <T extends object>(m: Measured<T> | undefined): T | undefined =>
  m && !('error' in m) ? (m as T) : undefined;

function slowdown(p: PausedResult): number {
  return p.baselineMbps > 0 ? 1 - p.withPausedMbps / p.baselineMbps : Number.NaN;
}

interface TargetLine {
  what: string;
  value: string;
  target: string;
  met: boolean | undefined;
}

function targets(r: BenchReport): TargetLine[] {
  const lines: TargetLine[] = [];
  const pfLatency = ok(r.latency.portForward);
  // Port-forward carries data pod → laptop or laptop → pod; each devbox path is held against the
  // port-forward in the same direction: outbound downloads and inbound uploads go pod → laptop.
  const sameDirection: Record<
    DevboxPath,
    Record<'download' | 'upload', Measured<ThroughputResult> | undefined>
  > = {
    outbound: { download: r.throughput.portForward, upload: r.upload.portForward },
    inbound: { download: r.upload.portForward, upload: r.throughput.portForward },
  };
  for (const path of DEVBOX_PATHS) {
    for (const direction of ['download', 'upload'] as const) {
      const t = ok(direction === 'download' ? r.throughput[path] : r.upload[path]);
      const pf = ok(sameDirection[path][direction]);
      const ratio = t && pf ? t.mbps / pf.mbps : undefined;
      lines.push({
        what: `${path} one-stream ${direction} vs port-forward in the same direction`,
        value: ratio === undefined ? 'n/a' : `${Math.round(ratio * 100)}%`,
        target: `≥ ${TARGETS.throughputVsPortForward * 100}%`,
        met: ratio === undefined ? undefined : ratio >= TARGETS.throughputVsPortForward,
      });
    }
  }
  for (const path of DEVBOX_PATHS) {
    const l = ok(r.latency[path]);
    const added = l && pfLatency ? l.p50 - pfLatency.p50 : undefined;
    lines.push({
      what: `${path} added p50 over port-forward`,
      value: added === undefined ? 'n/a' : `${added.toFixed(3)} ms`,
      target: `≤ ${TARGETS.addedP50Ms} ms`,
      met: added === undefined ? undefined : added <= TARGETS.addedP50Ms,
    });
  }
  for (const path of DEVBOX_PATHS) {
    const c = ok(r.concurrent[path]);
    lines.push({
      what: `${path} ${r.sizes.concurrent} concurrent connections`,
      value: c ? `${c.errors} errors` : 'n/a',
      target: `${TARGETS.concurrentErrors} errors`,
      met: c ? c.errors <= TARGETS.concurrentErrors : undefined,
    });
  }
  const peak = (who: 'sidecar' | 'agent') => {
    const values = (['idle', ...DEVBOX_PATHS] as const)
      .map((k) => r.rss[k]?.[who])
      .concat(DEVBOX_PATHS.map((k) => r.pausedRss?.[k]?.[`${who}Peak`]))
      .filter((v): v is number => v !== undefined);
    return values.length ? Math.max(...values) : undefined;
  };
  for (const [who, limit] of [
    ['sidecar', TARGETS.sidecarRssMB],
    ['agent', TARGETS.agentRssMB],
  ] as const) {
    const value = peak(who);
    lines.push({
      what: `${who} peak RSS`,
      value: value === undefined ? 'n/a' : `${value} MB`,
      target: `≤ ${limit} MB`,
      met: value === undefined ? undefined : value <= limit,
    });
  }
  for (const path of DEVBOX_PATHS) {
    const p = ok(r.paused[path]);
    const s = p ? slowdown(p) : undefined;
    lines.push({
      what: `${path} paused reader slows the others by`,
      value: s === undefined ? 'n/a' : `${(s * 100).toFixed(1)}%`,
      target: `≤ ${TARGETS.pausedSlowdown * 100}%`,
      met: s === undefined ? undefined : s <= TARGETS.pausedSlowdown,
    });
    const g = r.pausedRss?.[path];
    const growth =
      g?.sidecar !== undefined && g.agent !== undefined ? Math.max(g.sidecar, g.agent) : undefined;
    lines.push({
      what: `${path} paused reader: RSS growth while held (sidecar ${g?.sidecar ?? 'n/a'}, agent ${g?.agent ?? 'n/a'} MB)`,
      value: growth === undefined ? 'n/a' : `${growth} MB`,
      target: `≤ ${TARGETS.pausedGrowthMB} MB`,
      met:
        growth === undefined
          ? undefined
          : growth <= TARGETS.pausedGrowthMB && (p?.pausedStreamAlive ?? false),
    });
  }
  return lines;
}

/** The printed table and the JSON summary of one run. */
export function renderTable(
  r: BenchReport,
  network: string,
): { table: string; summary: Record<string, unknown> } {
  const cell = <T extends object>(m: Measured<T> | undefined, pick: (v: T) => string | number) => {
    if (m === undefined) return '–';
    if ('error' in m) return 'error';
    return String(pick(m as T));
  };
  const perPath = (label: string, pick: (p: PathName) => string) => [label, ...PATHS.map(pick)];
  const devboxOnly = (label: string, pick: (p: DevboxPath) => string) => [
    label,
    '–',
    '–',
    ...DEVBOX_PATHS.map(pick),
  ];
  const mb = (v: number | undefined) => (v === undefined ? 'n/a' : v.toFixed(1));
  const cpu = (p: PathName, direction: 'download' | 'upload') => {
    const figures = r.cpuPerGB[p]?.[direction];
    if (!figures) return '–';
    const text = Object.entries(figures).map(([who, v]) => `${who} ${v.toFixed(2)}`);
    return text.length ? text.join(' / ') : 'n/a';
  };
  const s = r.sizes;
  const rows: string[][] = [
    ['', ...PATHS],
    perPath(`throughput, one ${s.transferBytes! / 1048576} MB download (Mbit/s)`, (p) =>
      cell(r.throughput[p], (v) => v.mbps),
    ),
    perPath(`throughput, one ${s.transferBytes! / 1048576} MB upload (Mbit/s)`, (p) =>
      cell(r.upload[p], (v) => v.mbps),
    ),
    perPath('CPU s/GB of the forwarders, download', (p) => cpu(p, 'download')),
    perPath('CPU s/GB of the forwarders, upload', (p) => cpu(p, 'upload')),
    perPath(`latency p50, ${s.latencyCount} keep-alive requests (ms)`, (p) =>
      cell(r.latency[p], (v) => v.p50.toFixed(3)),
    ),
    perPath('latency p99 (ms)', (p) => cell(r.latency[p], (v) => v.p99.toFixed(3))),
    perPath('connection set-up rate (conn/s)', (p) => cell(r.connect[p], (v) => `${v.perSecond}`)),
    perPath('connection set-up errors', (p) => cell(r.connect[p], (v) => v.errors)),
    perPath(`${s.concurrent} concurrent connections: errors`, (p) => cell(r.concurrent[p], (v) => v.errors)),
    perPath(`${s.concurrent} concurrent: all open after (ms)`, (p) =>
      cell(r.concurrent[p], (v) => v.establishMs),
    ),
    devboxOnly(
      'sidecar RSS idle / peak (MB)',
      (p) => `${mb(r.rss.idle?.sidecar)} / ${mb(r.rss[p]?.sidecar)}`,
    ),
    devboxOnly('agent RSS idle / peak (MB)', (p) => `${mb(r.rss.idle?.agent)} / ${mb(r.rss[p]?.agent)}`),
    devboxOnly(`paused reader: ${s.pausedStreams} others alone, median of ${s.pausedRounds} (Mbit/s)`, (p) =>
      cell(r.paused[p], (v) => v.baselineMbps),
    ),
    devboxOnly('paused reader: others beside it (Mbit/s)', (p) => cell(r.paused[p], (v) => v.withPausedMbps)),
    devboxOnly('paused reader: slowdown (%)', (p) =>
      cell(r.paused[p], (v) => (slowdown(v) * 100).toFixed(1)),
    ),
    devboxOnly('paused reader: RSS growth sidecar / agent (MB)', (p) => {
      const g = r.pausedRss?.[p];
      return g ? `${mb(g.sidecar)} / ${mb(g.agent)}` : 'n/a';
    }),
    devboxOnly('paused reader: stream still open', (p) =>
      cell(r.paused[p], (v) => (v.pausedStreamAlive ? 'yes' : 'no')),
    ),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const text = rows.map((row) =>
    row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]! + 2))).join(''),
  );
  const goals = targets(r);
  const mark = (met: boolean | undefined) => (met === undefined ? '?' : met ? '✓' : '✗');
  const targetText = goals.map((g) => `  ${mark(g.met)} ${g.what}: ${g.value} (target ${g.target})`);
  const rise = (v: { start: number; peak: number } | undefined) =>
    v ? `${v.start.toFixed(1)} → ${v.peak.toFixed(1)}` : 'n/a';
  const phaseText = r.phases
    .filter((p) => p.sidecar || p.agent)
    .map(
      (p) =>
        `  ${`${p.path} ${p.task}`.padEnd(22)} sidecar ${rise(p.sidecar).padEnd(14)} agent ${rise(p.agent)}`,
    );
  const table = [
    `Tunnel benchmark on the local cluster; network between the clients and the API server: ${network}`,
    ...text,
    '',
    'RSS (MB) at the start of each measurement → its peak:',
    ...phaseText,
    '',
    'Targets (reported, not asserted):',
    ...targetText,
  ].join('\n');

  const byPath = <T extends object, V>(m: Partial<Record<PathName, Measured<T>>>, pick: (v: T) => V) =>
    Object.fromEntries(
      Object.entries(m)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, 'error' in v ? { error: v.error } : pick(v as T)]),
    );
  const summary = {
    throughputMbps: byPath(r.throughput, (v) => v.mbps),
    uploadMbps: byPath(r.upload, (v) => v.mbps),
    latencyMs: byPath(r.latency, (v) => ({ p50: v.p50, p99: v.p99 })),
    connectionsPerSecond: byPath(r.connect, (v) => v.perSecond),
    concurrent: byPath(r.concurrent, (v) => ({ connections: v.connections, errors: v.errors })),
    cpuSecondsPerGB: Object.fromEntries(
      Object.entries(r.cpuPerGB).map(([path, byDirection]) => [
        path,
        Object.fromEntries(
          Object.entries(byDirection).map(([direction, figures]) => [
            direction,
            Object.fromEntries(Object.entries(figures).map(([who, v]) => [who, Math.round(v * 100) / 100])),
          ]),
        ),
      ]),
    ),
    rssMB: r.rss,
    rssByPhaseMB: r.phases
      .filter((p) => p.sidecar || p.agent)
      .map((p) => ({ path: p.path, task: p.task, sidecar: p.sidecar, agent: p.agent })),
    pausedReader: Object.fromEntries(
      DEVBOX_PATHS.filter((p) => r.paused[p]).map((p) => {
        const v = r.paused[p]!;
        if ('error' in v) return [p, { error: v.error }];
        return [
          p,
          {
            baselineMbps: v.baselineMbps,
            withPausedMbps: v.withPausedMbps,
            slowdownPct: Math.round(slowdown(v) * 1000) / 10,
            pausedStreamAlive: v.pausedStreamAlive,
            rssGrowthMB: r.pausedRss?.[p] ?? {},
          },
        ];
      }),
    ),
    targets: goals.map((g) => ({ what: g.what, value: g.value, target: g.target, met: g.met ?? null })),
    sizes: r.sizes,
  };
  return { table, summary };
}
