/**
 * What a connection on a filtered port speaks, judged from its first bytes: HTTP/2 with prior
 * knowledge (the client preface), HTTP/1.x (a request line), or anything else, which passes
 * through to the app untouched.
 */
export type Sniffed = 'h2' | 'http1' | 'other';

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** Longest request line waited for; a longer one goes to the HTTP parser, which answers 414/431. */
export const REQUEST_LINE_MAX = 16 * 1024;
const METHOD_MAX = 32;

/** `true` for the bytes of an HTTP token (RFC 9110 tchar). */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

const SP = 0x20;
const LF = 0x0a;
const CR = 0x0d;

/**
 * The protocol of a connection whose first bytes are `head`, or undefined while more bytes are
 * needed to tell. Once decided, more bytes never change the answer.
 */
export function sniff(head: Uint8Array): Sniffed | undefined {
  if (head.length === 0) return undefined;
  if (head[0] === H2_PREFACE[0]) {
    const n = Math.min(head.length, H2_PREFACE.length);
    let prefaceSoFar = true;
    for (let i = 0; i < n; i++) {
      if (head[i] !== H2_PREFACE[i]) {
        prefaceSoFar = false;
        break;
      }
    }
    if (prefaceSoFar) return n === H2_PREFACE.length ? 'h2' : undefined;
  }
  return sniffRequestLine(head);
}

/** `METHOD SP target SP HTTP/1.x CRLF`; the target is anything without controls or spaces. */
function sniffRequestLine(head: Uint8Array): Sniffed | undefined {
  let i = 0;
  while (i < head.length && TCHAR[head[i]!]) i++;
  if (i === head.length) return i <= METHOD_MAX ? undefined : 'other';
  if (i === 0 || i > METHOD_MAX || head[i] !== SP) return 'other';
  i++;
  const targetStart = i;
  while (i < head.length && head[i]! > SP && head[i] !== 0x7f) i++;
  if (i === head.length) return i <= REQUEST_LINE_MAX ? undefined : 'http1';
  if (i === targetStart || head[i] !== SP) return 'other';
  i++;
  const version = 'HTTP/1.';
  for (let k = 0; k < version.length; k++, i++) {
    if (i === head.length) return undefined;
    if (head[i] !== version.charCodeAt(k)) return 'other';
  }
  if (i === head.length) return undefined;
  if (head[i] !== 0x30 && head[i] !== 0x31) return 'other';
  i++;
  if (i === head.length) return undefined;
  if (head[i] === LF) return 'http1';
  if (head[i] !== CR) return 'other';
  i++;
  if (i === head.length) return undefined;
  return head[i] === LF ? 'http1' : 'other';
}
