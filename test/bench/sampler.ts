/**
 * RSS and CPU-time samples of one process, streamed by the {@link rssSampler} script from
 * inside its container, and the figures the report takes from them.
 */
import { type ChildProcess, spawn } from 'node:child_process';

const MB = 1024 * 1024;

export interface Sample {
  /** Epoch ms (the containers share the host's clock). */
  t: number;
  rss: number;
  /** User + system CPU seconds of the process so far. */
  cpu?: number;
}

export class RssSeries {
  readonly samples: Sample[] = [];
  private readonly waiters: (() => void)[] = [];
  stderr = '';

  add(sample: Sample): void {
    this.samples.push(sample);
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Resolves once a first sample has arrived. */
  first(timeoutMs: number): Promise<void> {
    if (this.samples.length) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no RSS sample within ${timeoutMs} ms: ${this.stderr}`)),
        timeoutMs,
      );
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Highest RSS (MB) sampled within the window; undefined without samples there. */
  max(window: { from: number; to: number }): number | undefined {
    const inside = this.samples.filter((s) => s.t >= window.from && s.t <= window.to);
    return inside.length ? round(Math.max(...inside.map((s) => s.rss)) / MB) : undefined;
  }

  /** RSS (MB) when the window began and the highest within it. */
  rise(window: { from: number; to: number }): { start: number; peak: number } | undefined {
    const start = this.nearest(window.from);
    const peak = this.max(window);
    return start && peak !== undefined ? { start: round(start.rss / MB), peak } : undefined;
  }

  /** RSS (MB) at `to` minus RSS at `from`, each the sample nearest in time. */
  growth(from: number, to: number): number | undefined {
    const a = this.nearest(from);
    const b = this.nearest(to);
    return a && b ? round((b.rss - a.rss) / MB) : undefined;
  }

  /** CPU seconds the process spent within the window (samples nearest its ends). */
  cpuSeconds(window: { from: number; to: number }): number | undefined {
    const a = this.nearest(window.from);
    const b = this.nearest(window.to);
    return a?.cpu !== undefined && b?.cpu !== undefined ? b.cpu - a.cpu : undefined;
  }

  private nearest(t: number): Sample | undefined {
    let best: Sample | undefined;
    for (const s of this.samples) if (!best || Math.abs(s.t - t) < Math.abs(best.t - t)) best = s;
    return best && Math.abs(best.t - t) < 2_000 ? best : undefined;
  }
}

/** Runs a sampler command and feeds its JSON lines into `series`. */
export function startSampler(command: string, args: string[], series: RssSeries): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      try {
        series.add(JSON.parse(line) as Sample);
      } catch {
        // not a sample line
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => {
    series.stderr = (series.stderr + d.toString()).slice(-2000);
  });
  return child;
}

function round(mb: number): number {
  return Math.round(mb * 10) / 10;
}
