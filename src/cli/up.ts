import { Command, type CommandUnknownOpts, Option } from '@commander-js/extra-typings';

import type { WorkloadSettings } from '../project/index.js';

import type { UpResult } from '../session/up.js';
import { DevboxError } from '../util/errors.js';
import { createProgress } from '../util/progress.js';
import { kubeTarget, withKubeFlags } from './kube-flags.js';
import { collect, outputOption, printJson } from './output.js';
import { nonEmpty, secondsAsMs } from './values.js';

export function upCommand() {
  return withKubeFlags(new Command('up'))
    .description(
      "Run a workload in a local container with the pod's env, volumes, cluster DNS and inbound traffic",
    )
    .argument(
      '[workloads...]',
      "Deployment or StatefulSet names, or kind/name (deploy/api, sts/db); none: every workload of devbox.yaml. After --: the command to run instead of the container's",
    )
    .option('-c, --container <name>', 'container of the pod (default: the one its Service targets)')
    .option('--image <image>', "local image to run (default: the container's image)")
    .option('--build <dir>', 'build the image from this directory first')
    .option('-f, --file <dockerfile>', 'Dockerfile for --build, relative to its directory')
    .option(
      '-e, --env <KEY=value>',
      "set an env variable (repeatable; -e KEY passes this shell's value)",
      collect,
    )
    .option('-v, --volume <src:dst[:ro]>', 'bind-mount your own files (repeatable)', collect)
    .option(
      '-p, --publish <[ip:]host:container[/udp]>',
      'publish a port on this machine (repeatable)',
      collect,
    )
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option(
      '--sync <LOCAL:CONTAINER>',
      'copy this project path into the container, then every change while the session runs (repeatable)',
      collect,
    )
    .addOption(
      new Option(
        '--on-change <action>',
        'after a sync: restart the container, rebuild the image (--build), or none',
      ).choices(['restart', 'rebuild', 'none'] as const),
    )
    .option(
      '--http-header <NAME=VALUE>',
      'take only HTTP requests with this header (repeatable, all must match; VALUE exact, or /regex/)',
      collect,
    )
    .option('--http-path-prefix <prefix>', 'take only HTTP requests whose path starts with this')
    .option('--personal', "take only requests carrying this session's own key (x-devbox-session, or baggage)")
    .option(
      '--mirror',
      'receive copies of the requests (all, or those the filters match); callers are answered by the pod',
    )
    .option(
      '--name <name>',
      'name of this session on the workload (default: your login); sessions of one workload differ by it',
    )
    .option('-d, --detach', 'return once the session is ready instead of following the logs')
    .option(
      '--devcontainer [path]',
      "run the project's devcontainer.json (folder or file, default .) joined to the session",
    )
    .option('--sidecar-only', 'start the session without its container, for an editor-made dev container')
    .option(
      '--write-env <file>',
      "with --sidecar-only: write the pod's env there, for docker run --env-file (0600, git-ignored)",
    )
    .option(
      '--write-labels <file>',
      "with --sidecar-only: write the session's labels there, for docker run --label-file",
    )
    .option(
      '--agent-image <image>',
      'image of the agent in the pod (default: $DEVBOX_AGENT_IMAGE, else node:22-slim)',
      nonEmpty,
    )
    .addOption(
      new Option('--timeout <seconds>', 'how long to wait for the rollout and the tunnel')
        .argParser(secondsAsMs)
        .default(120_000, '120'),
    )
    .addOption(outputOption(['text', 'json']))
    .addHelpText(
      'after',
      `
Examples:
  devbox up api                                  # foreground: logs follow, Ctrl-C ends the session
  devbox up api -n shop --detach -o json         # print the session as JSON once it is ready
  devbox up api --image api:dev -v $PWD:/app -w /app -- npm run dev
  devbox up sts/db -p 5432:5432                  # also reachable on localhost:5432
  devbox up api --devcontainer --detach          # this project's devcontainer.json, joined to the session
  devbox up api --build . --sync src:/app/src --on-change restart   # edits reach the container in seconds
  devbox up                                      # every workload of ./devbox.yaml, as one session
  devbox up api inventory -e DEBUG=1             # these two (from devbox.yaml if there is one), -e on each
  devbox up api --personal --detach              # only requests carrying your key; the rest stay with the pod
  devbox up api --http-header x-user=alice --name alice-fix   # a second session of yours, by header
  devbox up api --mirror                         # copies of the traffic; the pod still answers

The workload's Services send their traffic (or, with filters, the requests that
match) to the local container while the session runs; several filtered sessions
share a workload. \`devbox down <workload> [--name N]\` (or Ctrl-C) ends one; the
last one restores the workload exactly.`,
    )
    .action(async (operands, flags, cmd) => {
      const { findProjectFile, selectWorkloads } = await import('../project/index.js');
      const { settings } = await import('../settings/index.js');
      const { names, command } = splitCommand(operands, rawArgsOf(cmd));
      const format = flags.output;
      checkModes(flags, command);
      const project = process.cwd();
      const file = await findProjectFile(project);
      const chosen = selectWorkloads(names, file, {
        ...(flags.container ? { container: flags.container } : {}),
        ...(flags.image ? { image: flags.image } : {}),
        ...(flags.build ? { build: { dir: flags.build, dockerfile: flags.file } } : {}),
        command,
        env: flags.env ?? [],
        volumes: flags.volume ?? [],
        publish: flags.publish ?? [],
        ...(flags.workdir ? { workdir: flags.workdir } : {}),
        sync: flags.sync ?? [],
        ...(flags.onChange ? { onChange: flags.onChange } : {}),
        ...(flags.name !== undefined ? { name: flags.name } : {}),
        filters: {
          headers: flags.httpHeader ?? [],
          ...(flags.httpPathPrefix !== undefined ? { pathPrefix: flags.httpPathPrefix } : {}),
          personal: Boolean(flags.personal),
          mirror: Boolean(flags.mirror),
        },
      });
      checkWorkloads(flags, chosen);
      const detach = Boolean(flags.detach || flags.sidecarOnly);
      const progress = createProgress(process.stderr);
      // One key for every workload of this up: a request carrying it reaches each of them.
      const personalKey = chosen.some((w) => w.filters.personal)
        ? (await import('../session/route-flags.js')).newPersonalKey()
        : undefined;
      const run = (w: WorkloadSettings) => ({
        target: kubeTarget({
          ...flags,
          namespace: flags.namespace ?? file?.namespace,
          context: flags.context ?? file?.context,
        }),
        workload: w.workload,
        container: w.container,
        image: w.image,
        ...(w.build ? { build: w.build } : {}),
        env: w.env,
        volumes: w.volumes,
        publish: w.publish,
        workdir: w.workdir,
        command: w.command,
        agentImage: flags.agentImage ?? settings().agentImage,
        rolloutTimeoutMs: flags.timeout,
        readyTimeoutMs: flags.timeout,
        tty: !detach && chosen.length === 1 && Boolean(process.stdin.isTTY && process.stdout.isTTY),
        ...(w.name !== undefined ? { name: w.name } : {}),
        filters: { ...w.filters, ...(w.filters.personal && personalKey ? { personalKey } : {}) },
        ...(flags.devcontainer
          ? { devcontainer: { path: flags.devcontainer === true ? '.' : flags.devcontainer } }
          : {}),
        ...(flags.sidecarOnly
          ? { sidecarOnly: { envFile: flags.writeEnv ?? '', labelFile: flags.writeLabels ?? '' } }
          : {}),
        progress,
        // With -o json, stdout carries the one JSON result: the container's output goes to stderr.
        logs: { stdout: format === 'json' ? process.stderr : process.stdout, stderr: process.stderr },
        ...(w.sync.length ? { sync: { flags: w.sync, onChange: w.onChange ?? 'restart', project } } : {}),
      });
      const notice = (text: string) => process.stderr.write(`${text}\n`);
      const warn = (results: UpResult[]) => {
        for (const r of results) for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
      };
      if (names.length === 1) {
        const { runSession } = await import('../session/run.js');
        const ran = await runSession({
          ...run(chosen[0]!),
          detach,
          onReady: (result) => {
            warn([result]);
            if (format === 'json') printJson(result);
            else printSummary(result);
          },
          notice,
        });
        for (const w of ran.down?.warnings ?? []) process.stderr.write(`warning: ${w}\n`);
        process.exitCode = ran.exitCode;
        return;
      }
      const { runSessions } = await import('../session/up-many.js');
      const ran = await runSessions({
        runs: chosen.map(run),
        detach,
        onReady: (results) => {
          warn(results);
          if (format === 'json') printJson(results);
          else for (const r of results) printSummary(r);
        },
        notice,
      });
      process.exitCode = ran.exitCode;
    });
}

/**
 * The operands before \`--\` name workloads; those after it are the command. Commander hands over
 * both as one list, so the command is the tail that follows \`--\` in the raw arguments.
 */
function splitCommand(
  operands: string[],
  rawArgs: readonly string[],
): { names: string[]; command: string[] } {
  const dashes = rawArgs.indexOf('--');
  const command = dashes === -1 ? [] : rawArgs.slice(dashes + 1);
  return { names: operands.slice(0, operands.length - command.length), command };
}

/** The arguments as the program was given them (commander keeps them, untyped, on the root command). */
function rawArgsOf(cmd: CommandUnknownOpts): readonly string[] {
  let root = cmd;
  while (root.parent) root = root.parent;
  return (root as unknown as { rawArgs?: string[] }).rawArgs ?? [];
}

type UpFlags = ReturnType<ReturnType<typeof upCommand>['opts']>;

/** Options that cannot go together, refused before anything starts. */
function checkModes(flags: UpFlags, command: string[]): void {
  const problems: string[] = [];
  if (flags.devcontainer) {
    for (const [flag, set] of [
      ['--image', flags.image],
      ['--build', flags.build],
      ['--sidecar-only', flags.sidecarOnly],
      ['-w', flags.workdir],
      ['a command after --', command.length > 0],
    ] as const)
      if (set)
        problems.push(
          `--devcontainer takes the image, command and workspace from devcontainer.json: drop ${flag}`,
        );
  }
  if (flags.sidecarOnly) {
    if (!flags.writeEnv || !flags.writeLabels)
      problems.push(
        '--sidecar-only needs --write-env and --write-labels (where the dev container reads the env and labels)',
      );
    if (flags.image || flags.build || command.length)
      problems.push('--sidecar-only starts no container: drop --image, --build and the command');
  } else if (flags.writeEnv || flags.writeLabels) {
    problems.push('--write-env and --write-labels go with --sidecar-only');
  }
  if (problems.length)
    throw new DevboxError('BAD_INPUT', problems.join('\n'), {
      hint: '`devbox devcontainer init <workload>` writes a dev container configuration that uses --sidecar-only.',
    });
}

/** What depends on each workload's settings, from the file or the flags. */
function checkWorkloads(flags: UpFlags, chosen: WorkloadSettings[]): void {
  const problems: string[] = [];
  if (chosen.length > 1 && (flags.devcontainer || flags.sidecarOnly))
    problems.push('--devcontainer and --sidecar-only run one workload: name it (devbox up <workload> …)');
  for (const w of chosen) {
    const of = chosen.length > 1 ? `${w.workload}: ` : '';
    if (w.sync.length) {
      if (flags.detach || flags.sidecarOnly)
        problems.push(
          `${of}--sync follows changes while the session runs in the foreground: drop --detach / --sidecar-only`,
        );
      if (w.onChange === 'rebuild' && !w.build) problems.push(`${of}--on-change rebuild needs --build <dir>`);
    } else if (w.onChange) {
      problems.push(`${of}--on-change goes with --sync`);
    }
  }
  if (problems.length) throw new DevboxError('BAD_INPUT', problems.join('\n'));
}

function printSummary(r: UpResult): void {
  const lines = [
    `${r.workload} runs locally in ${r.containers.service} (session ${r.session} "${r.name}", namespace ${r.namespace}).`,
  ];
  if (r.route.mode !== 'global') lines.push(`  takes: ${r.filter}`);
  if (r.personalKey) lines.push(`  your key (keep it to yourself): ${r.personalKey}`);
  if (r.curl) lines.push(`  try it from a pod of the cluster: ${r.curl}`);
  for (const p of r.intercepted) {
    lines.push(`  service/${p.service}:${p.port}/${p.protocol} → local port ${p.appPort}`);
  }
  if (r.resumed) lines.push('  (reused the agent already in the pods)');
  if (r.devcontainer)
    lines.push(
      `  dev container ${r.containers.service} (user ${r.devcontainer.remoteUser}, workspace ${r.devcontainer.remoteWorkspaceFolder}): attach your editor to it, or \`docker exec -it ${r.containers.service} sh\``,
    );
  if (r.files)
    lines.push(
      `  sidecar only: the dev container joins ${r.containers.sidecar} (env in ${r.files.envFile}, labels in ${r.files.labelFile})`,
    );
  lines.push(`End it with: devbox down ${r.workload} -n ${r.namespace} --name ${r.name}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}
