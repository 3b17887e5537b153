/**
 * The built CLI as a user runs it, pointed at a kubeconfig and a Docker socket
 * that do not exist: a command that got past its flags fails on them, so none
 * of these tests can reach a cluster.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const cliPath = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
export const missingKubeconfig = '/nonexistent/devbox-test-kubeconfig';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function devbox(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliPath, ...args],
      {
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          KUBECONFIG: missingKubeconfig,
          DOCKER_HOST: 'unix:///nonexistent/devbox-test-docker.sock',
          ...env,
        },
        timeout: 30_000,
      },
      (err, stdout, stderr) => {
        const code = err && typeof err.code === 'number' ? err.code : err ? -1 : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The commands `devbox --help` lists, nested ones as `devcontainer init`. */
export async function listedCommands(prefix: string[] = []): Promise<string[][]> {
  const help = (await devbox([...prefix, '--help'])).stdout;
  const section = help.split(/\nCommands:\n/)[1]?.split(/\n\n/)[0] ?? '';
  const names = [...section.matchAll(/^ {2}(\S+)/gm)].map((m) => m[1]!).filter((n) => n !== 'help');
  const out: string[][] = [];
  for (const name of names) {
    const sub = (await devbox([...prefix, name, '--help'])).stdout;
    if (/\nCommands:\n/.test(sub)) out.push(...(await listedCommands([...prefix, name])));
    else out.push([...prefix, name]);
  }
  return out;
}
