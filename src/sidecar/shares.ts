/**
 * The share links of this session. The sidecar makes each share key itself and hands it, with the
 * session's personal key, only to its agents: neither key is written anywhere else, and both die
 * with the sidecar's tunnels (an agent forgets a session's shares when its tunnel closes).
 */
import { newShareKey, type Share } from '../tunnel/share.js';
import { DevboxError } from '../util/errors.js';

/** How long a link works unless the session ends first. */
export const SHARE_TTL_DEFAULT_S = 12 * 3600;
export const SHARE_TTL_MAX_S = 7 * 24 * 3600;

export interface ShareGrant {
  key: string;
  /** ISO time. */
  expires: string;
}

export interface ShareTunnels {
  addShare(share: Share): boolean;
  /** All of them without `key`. */
  revokeShares(key?: string): number;
}

export class SessionShares {
  constructor(
    private readonly personalKey: string | undefined,
    private readonly tunnels: ShareTunnels,
    private readonly now: () => number = Date.now,
  ) {}

  /** A new link key, applied by every agent pod of the session. */
  create(ttlSeconds: number = SHARE_TTL_DEFAULT_S): ShareGrant {
    if (this.personalKey === undefined) {
      throw new DevboxError('CONFLICT', 'this session takes every request, so there is nothing to share', {
        hint: 'start a personal session: devbox up <workload> --personal',
      });
    }
    if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > SHARE_TTL_MAX_S) {
      throw new DevboxError('BAD_INPUT', `a share lives 1 to ${SHARE_TTL_MAX_S} seconds, not ${ttlSeconds}`);
    }
    const share: Share = {
      key: newShareKey(),
      sessionKey: this.personalKey,
      expiresAt: this.now() + ttlSeconds * 1000,
    };
    if (!this.tunnels.addShare(share)) {
      this.tunnels.revokeShares(share.key);
      throw new DevboxError('TUNNEL', 'not every agent pod of the session can apply the link now', {
        hint: 'check the tunnels with devbox status; an agent older than share links needs devbox down, then up',
      });
    }
    return { key: share.key, expires: new Date(share.expiresAt).toISOString() };
  }

  /** Revokes every link of the session; returns how many there were. */
  revokeAll(): number {
    return this.tunnels.revokeShares();
  }
}
