/**
 * Progress as steps with durations on stderr. On a terminal the running step
 * shows a spinner; elsewhere only finished steps are printed, one per line.
 */
export interface Progress {
  step<T>(title: string, run: () => Promise<T>): Promise<T>;
  note(text: string): void;
}

const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export function createProgress(
  stream: NodeJS.WriteStream = process.stderr,
  options: { quiet?: boolean } = {},
): Progress {
  const tty = Boolean(stream.isTTY);
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;
  return {
    async step<T>(title: string, run: () => Promise<T>): Promise<T> {
      const started = Date.now();
      let timer: NodeJS.Timeout | undefined;
      if (tty && !options.quiet) {
        let i = 0;
        timer = setInterval(() => stream.write(`\r${frames[i++ % frames.length]} ${title}`), 80);
      }
      const clear = () => {
        if (timer) clearInterval(timer);
        if (tty && !options.quiet) stream.write('\r\x1b[2K');
      };
      try {
        const result = await run();
        clear();
        if (!options.quiet) stream.write(`✓ ${title} (${seconds(Date.now() - started)})\n`);
        return result;
      } catch (err) {
        clear();
        if (!options.quiet) stream.write(`✗ ${title} (${seconds(Date.now() - started)})\n`);
        throw err;
      }
    },
    note(text: string) {
      if (!options.quiet) stream.write(`  ${text}\n`);
    },
  };
}

export const silentProgress: Progress = {
  step: (_title, run) => run(),
  note: () => {},
};
