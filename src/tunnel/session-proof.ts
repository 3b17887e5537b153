/**
 * Mutual proof of the session token, with the token itself never on the wire (see protocol.ts,
 * "Sessions"). The sidecar sends a nonce; the agent answers with its own nonce and
 * HMAC-SHA256(token, "devbox-agent-proof" ‖ sidecar nonce ‖ agent nonce); only when that checks out
 * does the sidecar answer HMAC-SHA256(token, "devbox-sidecar-proof" ‖ agent nonce ‖ sidecar nonce).
 * A pod that is not the agent learns a random nonce and nothing derived from the token; the two
 * labels keep one side's proof from ever serving as the other's.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const NONCE_BYTES = 32;
const AGENT_LABEL = 'devbox-agent-proof';
const SIDECAR_LABEL = 'devbox-sidecar-proof';
/** base64url of 32 bytes, nothing else (what travels in a header). */
const NONCE_TEXT = /^[A-Za-z0-9_-]{43}$/;
const PROOF_TEXT = /^[A-Za-z0-9_-]{43}$/;

export function newNonce(): string {
  return randomBytes(NONCE_BYTES).toString('base64url');
}

export function isNonce(text: string | undefined): text is string {
  return text !== undefined && NONCE_TEXT.test(text);
}

/** What the agent sends to show it holds `token`. */
export function agentProof(token: string, sidecarNonce: string, agentNonce: string): string {
  return proof(token, AGENT_LABEL, sidecarNonce, agentNonce);
}

/** What the sidecar sends, once the agent has proved itself, to show it holds `token`. */
export function sidecarProof(token: string, agentNonce: string, sidecarNonce: string): string {
  return proof(token, SIDECAR_LABEL, agentNonce, sidecarNonce);
}

/** Constant-time comparison of a received proof with the expected one; false for any malformed text. */
export function proofMatches(received: unknown, expected: string): boolean {
  if (typeof received !== 'string' || !PROOF_TEXT.test(received)) return false;
  return timingSafeEqual(Buffer.from(received), Buffer.from(expected));
}

function proof(token: string, label: string, first: string, second: string): string {
  return createHmac('sha256', token).update(`${label}\0${first}\0${second}`).digest('base64url');
}
