import { errorText } from '../../util/errors.js';
import type { Progress } from '../../util/progress.js';

/**
 * Undo steps, run newest first. Each is pushed before the change it undoes, so a failure or
 * Ctrl-C at any point unwinds exactly what was done; each undoes only what this session did.
 */
export class UndoStack {
  private readonly steps: { what: string; run: () => Promise<unknown> }[] = [];

  push(what: string, run: () => Promise<unknown>): void {
    this.steps.push({ what, run });
  }

  /** Runs every step (newest first), reporting each; returns the failures. */
  async unwind(progress: Progress): Promise<string[]> {
    const failures: string[] = [];
    while (this.steps.length) {
      const step = this.steps.pop()!;
      try {
        await progress.step(`Undoing: ${step.what}`, step.run);
      } catch (err) {
        failures.push(`${step.what}: ${errorText(err)}`);
      }
    }
    return failures;
  }
}
