/**
 * devcontainer.json is JSON with comments. The Dev Containers CLI parses it
 * fault-tolerantly and ignores errors, so a missing comma silently drops
 * settings; devbox reports every syntax error with its line and column
 * instead, and keeps the syntax tree so later checks can point at the
 * offending property too.
 */
import { findNodeAtLocation, type Node, type ParseError, parseTree, printParseErrorCode } from 'jsonc-parser';
import { DevboxError } from '../util/errors.js';

/** 1-based line and column, as editors show them. */
export interface Position {
  line: number;
  column: number;
}

/** A parsed JSONC document: its value, its tree, and a way to turn offsets into positions. */
export interface JsoncDocument {
  file: string;
  text: string;
  value: unknown;
  tree: Node | undefined;
}

/** Line and column of a character offset. */
export function positionAt(text: string, offset: number): Position {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: end - lineStart + 1 };
}

/** `file:line:column` of a JSON path in the document (its property name for a property; the file alone when absent). */
export function locate(doc: JsoncDocument, path: (string | number)[]): string {
  const found = doc.tree ? findNodeAtLocation(doc.tree, path) : undefined;
  if (!found) return doc.file;
  const node = found.parent?.type === 'property' ? found.parent : found;
  const { line, column } = positionAt(doc.text, node.offset);
  return `${doc.file}:${line}:${column}`;
}

const errorText: Record<string, string> = {
  InvalidSymbol: 'unexpected character',
  InvalidNumberFormat: 'invalid number',
  PropertyNameExpected: 'a property name in double quotes is expected',
  ValueExpected: 'a value is expected',
  ColonExpected: 'a colon is expected',
  CommaExpected: 'a comma is expected',
  CloseBraceExpected: 'a closing brace is expected',
  CloseBracketExpected: 'a closing bracket is expected',
  EndOfFileExpected: 'nothing may follow the top-level value',
  InvalidCommentToken: 'invalid comment',
  UnexpectedEndOfComment: 'unterminated comment',
  UnexpectedEndOfString: 'unterminated string',
  UnexpectedEndOfNumber: 'incomplete number',
  InvalidUnicode: 'invalid unicode escape',
  InvalidEscapeCharacter: 'invalid escape character',
  InvalidCharacter: 'invalid character in a string',
};

/**
 * Parses JSON with comments and trailing commas (as VS Code accepts them).
 * Every syntax error is reported at once, each as `file:line:column: what`;
 * a document whose top level is not an object is refused too.
 */
export function parseJsonc(text: string, file: string): JsoncDocument {
  const errors: ParseError[] = [];
  const tree = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length) {
    const lines = errors.map((e) => {
      const { line, column } = positionAt(text, e.offset);
      const code = printParseErrorCode(e.error);
      return `${file}:${line}:${column}: ${errorText[code] ?? code}`;
    });
    throw new DevboxError('BAD_INPUT', `${file} is not valid JSON with comments:\n  ${lines.join('\n  ')}`, {
      hint: 'Fix the file at the position shown (your editor jumps there with the line and column).',
    });
  }
  const value = tree ? nodeValue(tree) : undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new DevboxError('BAD_INPUT', `${file} must hold a JSON object ({ … })`, {
      hint: 'See https://containers.dev/implementors/json_reference/ for its properties.',
    });
  }
  return { file, text, value, tree };
}

/** The value of a tree node; unlike jsonc-parser's `getNodeValue`, keys such as `__proto__` stay plain data. */
function nodeValue(node: Node): unknown {
  switch (node.type) {
    case 'object': {
      const out: Record<string, unknown> = Object.create(null);
      for (const property of node.children ?? []) {
        const [key, value] = property.children ?? [];
        if (key && value) out[String(key.value)] = nodeValue(value);
      }
      return { ...out };
    }
    case 'array':
      return (node.children ?? []).map(nodeValue);
    default:
      return node.value;
  }
}
