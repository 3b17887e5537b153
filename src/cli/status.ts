import { Command } from '@commander-js/extra-typings';

import type { SessionStatus } from '../session/status.js';
import { createProgress } from '../util/progress.js';
import { outputOption, printJson } from './output.js';

export function statusCommand() {
  return new Command('status')
    .description('List the devbox sessions on this Docker engine with the health of their tunnels')
    .addOption(outputOption(['text', 'json']))
    .addHelpText('after', "\nExamples:\n  devbox status\n  devbox status -o json | jq '.[].tunnels'")
    .action(async (flags) => {
      const { describePodsRouted, status } = await import('../session/status.js');
      const sessions = await status({ progress: createProgress(process.stderr, { quiet: true }) });
      if (flags.output === 'json') return printJson(sessions);
      if (sessions.length === 0) {
        process.stdout.write('No devbox sessions. Start one with: devbox up <workload>\n');
        return;
      }
      for (const s of sessions) {
        const tunnels =
          s.tunnels.map((t) => `${t.pod} ${t.state}${t.lastError ? ` (${t.lastError})` : ''}`).join(', ') ||
          'none';
        process.stdout.write(
          [
            `${s.workload} (namespace ${s.namespace}${s.context ? `, context ${s.context}` : ''}) — session ${s.session}${s.name ? ` "${s.name}"` : ''}, ${s.state}`,
            `  ${s.ready ? 'ready' : `not ready: ${s.reason}`}`,
            `  tunnels: ${tunnels}`,
            s.inbound
              ? `  inbound: ${s.inbound.accepted} connections, ${s.inbound.bytesIn} B in, ${s.inbound.bytesOut} B out`
              : '',
            s.podsRouted ? `  ${describePodsRouted(s.podsRouted)}` : '',
            s.outbound
              ? `  outbound: ${s.outbound.tcpConnections} TCP, ${s.outbound.udpFlows} UDP flows`
              : '',
            s.dns ? `  dns: ${s.dns.queries} queries, ${s.dns.errors} errors` : '',
            ...Object.entries(s.otherNamespaces ?? {}).map(([ns, state]) =>
              state === 'unreadable'
                ? `  namespace ${ns}: names resolve, Services not reachable (the sidecar may not read them; see templates/rbac/devbox-sidecar-discovery.yaml)`
                : `  namespace ${ns}: ${state}`,
            ),
            ...(s.localRoutes ?? []).map(
              (r) =>
                `  service ${r.service}:${r.port} → ${r.container} directly on Docker (${r.connections} connections${r.fellBack ? `, ${r.fellBack} through the cluster when it did not answer` : ''})`,
            ),
            s.localRoutes?.length ? '  every other Service → through the cluster' : '',
            ...s.lastErrors.slice(-3).map((e) => `  last error: ${e.what}: ${e.error}`),
            ...workloadSessionLines(s),
          ]
            .filter(Boolean)
            .map((line) => `${line}\n`)
            .join(''),
        );
      }
    });
}

/** Every session of the workload, this one marked, with its filter and what reached it. */
function workloadSessionLines(s: SessionStatus): string[] {
  if (s.sessionsUnknown) return [`  sessions of ${s.workload}: unknown (${s.sessionsUnknown})`];
  if (!s.sessions?.length) return [];
  const lines = [`  sessions of ${s.workload}:`];
  for (const w of s.sessions) {
    const counts = w.requests
      ? w.mode === 'mirror'
        ? `: ${w.requests.mirrored} copies, ${w.requests.dropped} dropped`
        : `: ${w.requests.routed} requests`
      : '';
    lines.push(
      `    ${w.id === s.session ? '*' : '-'} ${w.name} (${w.user}@${w.host}, session ${w.id}) ${w.mode === 'mirror' ? w.filter : `takes ${w.filter}`}${counts}`,
    );
  }
  if (s.requestsToApp !== undefined)
    lines.push(`    requests that matched no session, answered by the pod's app: ${s.requestsToApp}`);
  return lines;
}
