import { Command } from 'commander';
import { connectDocker, followLogs, waitExit } from '../docker/index.js';
import { down } from '../session/down.js';
import { settings } from '../session/settings.js';
import { type UpResult, up } from '../session/up.js';
import { createProgress } from '../util/progress.js';
import { kubeTarget, withKubeFlags } from './kube-flags.js';
import { collect, outputFormat, printJson } from './output.js';

export function upCommand(): Command {
  return withKubeFlags(new Command('up'))
    .description(
      "Run a workload in a local container with the pod's env, volumes, cluster DNS and inbound traffic",
    )
    .argument('<workload>', 'Deployment or StatefulSet name, or kind/name (deploy/api, sts/db)')
    .argument('[command...]', "command to run instead of the container's (after --)")
    .option('-c, --container <name>', 'container of the pod (default: the one its Service targets)')
    .option('--image <image>', "local image to run (default: the container's image)")
    .option('--build <dir>', 'build the image from this directory first')
    .option('-f, --file <dockerfile>', 'Dockerfile for --build, relative to its directory')
    .option(
      '-e, --env <KEY=value>',
      "set an env variable (repeatable; -e KEY passes this shell's value)",
      collect,
      [],
    )
    .option('-v, --volume <src:dst[:ro]>', 'bind-mount your own files (repeatable)', collect, [])
    .option(
      '-p, --publish <[ip:]host:container[/udp]>',
      'publish a port on this machine (repeatable)',
      collect,
      [],
    )
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-d, --detach', 'return once the session is ready instead of following the logs')
    .option('--agent-image <image>', 'image of the agent in the pod', settings().agentImage)
    .option('--timeout <seconds>', 'how long to wait for the rollout and the tunnel', '120')
    .option('-o, --output <format>', 'text or json', 'text')
    .addHelpText(
      'after',
      `
Examples:
  devbox up api                                  # foreground: logs follow, Ctrl-C ends the session
  devbox up api -n shop --detach -o json         # print the session as JSON once it is ready
  devbox up api --image api:dev -v $PWD:/app -w /app -- npm run dev
  devbox up sts/db -p 5432:5432                  # also reachable on localhost:5432

The workload's Services send their traffic to the local container while the
session runs; \`devbox down <workload>\` (or Ctrl-C) restores them exactly.`,
    )
    .action(async (workload: string, command: string[], flags) => {
      const format = outputFormat(flags.output);
      const controller = new AbortController();
      let interrupts = 0;
      const onSignal = () => {
        interrupts++;
        if (interrupts > 1) {
          process.stderr.write('Abandoning the clean-up; run `devbox clean` to finish it.\n');
          process.exit(130);
        }
        process.stderr.write('\nStopping: undoing what was done…\n');
        controller.abort(new Error('interrupted'));
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const progress = createProgress(process.stderr);
      const timeoutMs = Number(flags.timeout) * 1000;
      const result = await up({
        target: kubeTarget(flags),
        workload,
        container: flags.container,
        image: flags.image,
        ...(flags.build ? { build: { dir: flags.build, dockerfile: flags.file } } : {}),
        env: flags.env,
        volumes: flags.volume,
        publish: flags.publish,
        workdir: flags.workdir,
        command,
        agentImage: flags.agentImage,
        rolloutTimeoutMs: timeoutMs,
        readyTimeoutMs: timeoutMs,
        tty: !flags.detach && Boolean(process.stdin.isTTY && process.stdout.isTTY),
        progress,
        signal: controller.signal,
      });
      for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
      if (format === 'json') printJson(result);
      else printSummary(result);
      if (flags.detach) {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        return;
      }

      // Foreground: follow the service until it exits or the user interrupts, then end the session.
      const docker = connectDocker();
      const logs = followLogs(
        docker,
        result.containers.serviceId,
        process.stdout,
        process.stderr,
        controller.signal,
      );
      const exit = waitExit(docker, result.containers.serviceId, controller.signal).catch(() => undefined);
      const code = await Promise.race([
        exit,
        new Promise<undefined>((r) => controller.signal.addEventListener('abort', () => r(undefined))),
      ]);
      await logs.catch(() => {});
      if (code !== undefined)
        process.stderr.write(`The local container exited with code ${code}; ending the session.\n`);
      await down({ target: kubeTarget(flags), workload: result.workload, keepAgent: false, progress });
      process.exitCode = code ?? 130;
    });
}

function printSummary(r: UpResult): void {
  const lines = [
    `${r.workload} runs locally in ${r.containers.service} (session ${r.session}, namespace ${r.namespace}).`,
  ];
  for (const p of r.intercepted) {
    lines.push(`  service/${p.service}:${p.port}/${p.protocol} → local port ${p.appPort}`);
  }
  if (r.resumed) lines.push('  (reused the agent already in the pods)');
  lines.push(`End it with: devbox down ${r.workload} -n ${r.namespace}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}
