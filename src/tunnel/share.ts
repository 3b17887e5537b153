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

/** The query parameter of a share link (`<entry URL>?devbox-share=<key>`). */
export const SHARE_QUERY = 'devbox-share';
/** The cookie that pins a browser to a share. */
export const SHARE_COOKIE = 'devbox-session';

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

/**
 * Control message (sidecar → agent): apply `share` on this agent's intercept ports for as long as
 * the session that sent it lives. Sending a key again replaces its share.
 */
export interface ShareMessage {
  type: 'share';
  share: Share;
}

/** Control message (sidecar → agent): forget a share this session sent. */
export interface ShareRevokeMessage {
  type: 'share-revoke';
  key: string;
}

/** The share a `share` control message carries; undefined when any part of it is malformed. */
export function shareOf(message: { share?: unknown }): Share | undefined {
  const share = message.share as Partial<Share> | null | undefined;
  if (typeof share !== 'object' || share === null) return undefined;
  const { key, sessionKey, expiresAt } = share;
  if (typeof key !== 'string' || !isShareKeyShape(key)) return undefined;
  if (typeof sessionKey !== 'string' || sessionKey === '' || sessionKey.length > 256) return undefined;
  if (typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt)) return undefined;
  return { key, sessionKey, expiresAt };
}
