/**
 * `$(VAR)` references in container env values, command and args, with the kubelet's
 * rules: `$$` is an escaped `$`; a reference to an unknown name, an unterminated `$(`
 * and any other `$x` are kept literally; nothing is expanded recursively.
 */

/** Looks a name up; `undefined` keeps the reference as written. */
export type VariableLookup = (name: string) => string | undefined;

/** Expands `$(NAME)` references in `input` through `lookup`. */
export function expandReferences(input: string, lookup: VariableLookup): string {
  let out = '';
  let checkpoint = 0;
  for (let cursor = 0; cursor < input.length; cursor++) {
    if (input[cursor] !== '$' || cursor + 1 >= input.length) continue;
    out += input.slice(checkpoint, cursor);
    const next = input.slice(cursor + 1);
    const { text, isReference, consumed } = readReference(next);
    if (isReference) out += lookup(text) ?? `$(${text})`;
    else out += text;
    cursor += consumed;
    checkpoint = cursor + 1;
  }
  return out + input.slice(checkpoint);
}

/** What follows a `$`: an escaped `$`, a `(NAME)` reference, or literal text. */
function readReference(rest: string): { text: string; isReference: boolean; consumed: number } {
  if (rest[0] === '$') return { text: '$', isReference: false, consumed: 1 };
  if (rest[0] === '(') {
    const close = rest.indexOf(')', 1);
    if (close >= 0) return { text: rest.slice(1, close), isReference: true, consumed: close + 1 };
    // Unterminated: keep "$(" and continue scanning after the parenthesis.
    return { text: '$(', isReference: false, consumed: 1 };
  }
  // Any other character (a whole code point, so surrogate pairs stay intact) is literal.
  const ch = String.fromCodePoint(rest.codePointAt(0) as number);
  return { text: `$${ch}`, isReference: false, consumed: ch.length };
}

/** The names `input` refers to, in order (used to mark values derived from secrets). */
export function referencedNames(input: string): string[] {
  const names: string[] = [];
  expandReferences(input, (name) => {
    names.push(name);
    return undefined;
  });
  return names;
}
