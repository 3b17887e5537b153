/**
 * `devbox completion bash|zsh|fish`: shell completion scripts written from the
 * command tree itself, so every command and flag added later completes too.
 */
import { Argument, Command, type CommandUnknownOpts } from '@commander-js/extra-typings';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

interface Flag {
  short?: string;
  long?: string;
  description: string;
  takesValue: boolean;
  choices?: readonly string[];
}

/** One command of the tree: its path from the root (`['devcontainer', 'init']`), subcommands and flags. */
interface Node {
  path: string[];
  subcommands: { name: string; description: string }[];
  /** The values a first argument takes, when it has a fixed list (`completion <shell>`). */
  values: readonly string[];
  flags: Flag[];
}

export function completionCommand() {
  return new Command('completion')
    .description('Print a completion script for your shell')
    .addArgument(new Argument('<shell>', 'bash, zsh or fish').choices(SHELLS))
    .addHelpText(
      'after',
      `
Examples:
  source <(devbox completion bash)                              # bash, this shell; add it to ~/.bashrc
  devbox completion zsh > "\${fpath[1]}/_devbox"                # zsh, then start a new shell
  devbox completion fish > ~/.config/fish/completions/devbox.fish`,
    )
    .action(function (this: CommandUnknownOpts, shell) {
      let root = this;
      while (root.parent) root = root.parent;
      process.stdout.write(completionScript(root, shell));
    });
}

export function completionScript(root: CommandUnknownOpts, shell: Shell): string {
  const nodes = commandTree(root);
  const name = root.name();
  if (shell === 'bash') return bashScript(name, nodes);
  if (shell === 'zsh') return zshScript(name, nodes);
  return fishScript(name, nodes);
}

function commandTree(root: CommandUnknownOpts): Node[] {
  const nodes: Node[] = [];
  const visit = (command: CommandUnknownOpts, path: string[]) => {
    const help = command.createHelp();
    const subcommands = help.visibleCommands(command);
    nodes.push({
      path,
      subcommands: subcommands.map((c) => ({ name: c.name(), description: c.description() })),
      values: command.registeredArguments[0]?.argChoices ?? [],
      flags: help.visibleOptions(command).map((o) => ({
        ...(o.short ? { short: o.short } : {}),
        ...(o.long ? { long: o.long } : {}),
        description: o.description,
        takesValue: Boolean(o.required || o.optional),
        ...(o.argChoices ? { choices: o.argChoices } : {}),
      })),
    });
    for (const sub of subcommands) if (sub.name() !== 'help') visit(sub, [...path, sub.name()]);
  };
  visit(root, []);
  return nodes;
}

const flagNames = (f: Flag) => [f.short, f.long].filter((n): n is string => Boolean(n));
const key = (path: string[]) => ['', ...path].join('/');

/** Walks the words typed so far (`word`: the shell variable of each) to the deepest command they name, in `cmd` (`/devcontainer/init`). */
function commandWalk(nodes: Node[], variable: string): string {
  const word = `\${${variable}}`;
  const known = nodes.filter((n) => n.path.length > 0).map((n) => `${key(n.path)}`);
  return `case "$cmd/${word}" in
      ${known.map((k) => `'${k}'`).join('|')}) cmd="$cmd/${word}" ;;
    esac`;
}

function bashScript(name: string, nodes: Node[]): string {
  const fn = `_${name.replace(/\W/g, '_')}`;
  const words = nodes.map(
    (n) =>
      `    '${key(n.path)}') words='${[...n.subcommands.map((s) => s.name), ...n.values, ...n.flags.flatMap(flagNames)].join(' ')}' ;;`,
  );
  const patterns = (n: Node, flags: Flag[]) =>
    flags
      .flatMap(flagNames)
      .map((flag) => `'${key(n.path)} ${flag}'`)
      .join('|');
  const values = nodes.flatMap((n) => {
    const free = n.flags.filter((f) => f.takesValue && !f.choices);
    return [
      ...n.flags
        .filter((f) => f.choices)
        .map(
          (f) =>
            `    ${patterns(n, [f])}) COMPREPLY=($(compgen -W '${f.choices!.join(' ')}' -- "$cur")); return ;;`,
        ),
      ...(free.length ? [`    ${patterns(n, free)}) COMPREPLY=(); return ;;`] : []),
    ];
  });
  return `# ${name} completion for bash. Load it with: source <(${name} completion bash)
${fn}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} cmd='' words='' i
  for ((i = 1; i < COMP_CWORD; i++)); do
    ${commandWalk(nodes, 'COMP_WORDS[i]')}
  done
  # The value of a flag: its choices, else files (complete -o default).
  case "$cmd $prev" in
${values.join('\n')}
  esac
  case "$cmd" in
${words.join('\n')}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F ${fn} ${name}
`;
}

const zshQuote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;

function zshScript(name: string, nodes: Node[]): string {
  const fn = `_${name.replace(/\W/g, '_')}`;
  const patterns = (n: Node, flags: Flag[]) =>
    flags
      .flatMap(flagNames)
      .map((flag) => `'${key(n.path)} ${flag}'`)
      .join('|');
  const candidates = nodes.map((n) => {
    const entries = [
      ...n.subcommands.map((s) => `${s.name}:${s.description}`),
      ...n.values,
      ...n.flags.flatMap((f) => flagNames(f).map((flag) => `${flag}:${f.description}`)),
    ];
    return `    '${key(n.path)}') candidates=(${entries.map(zshQuote).join(' ')}) ;;`;
  });
  const values = nodes.flatMap((n) => {
    const free = n.flags.filter((f) => f.takesValue && !f.choices);
    return [
      ...n.flags
        .filter((f) => f.choices)
        .map((f) => `    ${patterns(n, [f])}) compadd -- ${f.choices!.join(' ')}; return ;;`),
      ...(free.length ? [`    ${patterns(n, free)}) _files; return ;;`] : []),
    ];
  });
  return `#compdef ${name}
# ${name} completion for zsh. Put it in a folder of $fpath as _${name}, or load it with: source <(${name} completion zsh)
${fn}() {
  local cmd='' prev=\${words[CURRENT-1]} i
  local -a candidates
  for ((i = 2; i < CURRENT; i++)); do
    ${commandWalk(nodes, 'words[i]')}
  done
  case "$cmd $prev" in
${values.join('\n')}
  esac
  case "$cmd" in
${candidates.join('\n')}
  esac
  _describe -t commands ${zshQuote(name)} candidates
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  ${fn} "$@"
else
  compdef ${fn} ${name}
fi
`;
}

const fishQuote = (text: string) => `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

function fishScript(name: string, nodes: Node[]): string {
  const lines = [
    `# ${name} completion for fish: ${name} completion fish > ~/.config/fish/completions/${name}.fish`,
  ];
  lines.push(`complete -c ${name} -f`);
  for (const n of nodes) {
    // Inside this command and not yet in one of its subcommands.
    const inside = [
      ...(n.path.length ? n.path.map((p) => `__fish_seen_subcommand_from ${p}`) : []),
      ...(n.subcommands.length
        ? [`not __fish_seen_subcommand_from ${n.subcommands.map((s) => s.name).join(' ')}`]
        : []),
    ];
    const condition = inside.length ? `-n ${fishQuote(inside.join('; and '))} ` : '';
    for (const s of n.subcommands) {
      lines.push(`complete -c ${name} ${condition}-a ${s.name} -d ${fishQuote(s.description)}`);
    }
    if (n.values.length) lines.push(`complete -c ${name} ${condition}-a ${fishQuote(n.values.join(' '))}`);
    for (const f of n.flags) {
      const names = [f.short ? `-s ${f.short.slice(1)}` : '', f.long ? `-l ${f.long.slice(2)}` : '']
        .filter(Boolean)
        .join(' ');
      const value = f.choices ? ` -x -a ${fishQuote(f.choices.join(' '))}` : f.takesValue ? ' -r -F' : '';
      lines.push(`complete -c ${name} ${condition}${names}${value} -d ${fishQuote(f.description)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
