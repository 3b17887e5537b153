/**
 * The `Cookie` request header as a server reads it (RFC 6265 §5.4: `name=value` pairs joined by
 * `; `), and the `Set-Cookie` line the agent answers with. Lenient like browsers and servers: a
 * piece without `=` is kept as it is and never matches a name.
 */

/** The values of every cookie named `name`, in order, and the header without them (undefined when nothing is left). */
export function takeCookie(header: string, name: string): { values: string[]; rest: string | undefined } {
  const values: string[] = [];
  const kept: string[] = [];
  for (const raw of header.split(';')) {
    const piece = raw.trim();
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    if (eq > 0 && piece.slice(0, eq).trim() === name) values.push(unquote(piece.slice(eq + 1).trim()));
    else kept.push(piece);
  }
  return { values, rest: kept.length ? kept.join('; ') : undefined };
}

function unquote(value: string): string {
  return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
}

export interface SetCookieOptions {
  maxAgeSeconds: number;
  /** Only over HTTPS; set when the browser reached the entry by HTTPS. */
  secure: boolean;
}

/**
 * A host-only session-pinning cookie: no `Domain` attribute, so the browser sends it back to the
 * host it came from and to no other; `HttpOnly` keeps it from the page's scripts; `SameSite=Lax`
 * sends it on top-level navigations from elsewhere but not on cross-site subrequests.
 */
export function setCookieLine(name: string, value: string, options: SetCookieOptions): string {
  const maxAge = Math.max(0, Math.floor(options.maxAgeSeconds));
  return `${name}=${value}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Lax${options.secure ? '; Secure' : ''}`;
}
