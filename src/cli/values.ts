/** Flag values checked while the command line is parsed, before anything runs. */
import { InvalidArgumentError } from '@commander-js/extra-typings';

/** A duration in seconds (`--timeout 90`, `--timeout 1.5`), returned in milliseconds. */
export function secondsAsMs(value: string): number {
  const seconds = Number(value);
  if (value.trim() === '' || !Number.isFinite(seconds) || seconds <= 0) {
    throw new InvalidArgumentError('Give a number of seconds above 0, e.g. 120.');
  }
  return Math.round(seconds * 1000);
}

/** A value that must not be empty (an image name, a file). */
export function nonEmpty(value: string): string {
  if (value.trim() === '') throw new InvalidArgumentError('It must not be empty.');
  return value;
}
