/**
 * A share: what lets a browser carry a personal session's key. The CLI makes it, the entry
 * workload's agent applies it (`agent/http/share.ts`). Both keys are secrets: never logged, never
 * written to the cluster.
 */
import { randomBytes } from 'node:crypto';

export interface Share {
  /** What the link and the browser's cookie carry. */
  key: string;
  /** The personal session's key the share stands for. */
  sessionKey: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

/** 32 random bytes in base64url: 256 bits in 43 characters. */
const KEY_BYTES = 32;
/** What the agent looks up: base64url of 16 to 64 bytes; anything else is no key at all. */
const KEY_SHAPE = /^[A-Za-z0-9_-]{22,86}$/;

/** A new unguessable share key. */
export function newShareKey(): string {
  return randomBytes(KEY_BYTES).toString('base64url');
}

export function isShareKeyShape(key: string): boolean {
  return KEY_SHAPE.test(key);
}
