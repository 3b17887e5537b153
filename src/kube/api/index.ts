/**
 * The Kubernetes access core the CLI and the sidecar share: requests, list + watch with
 * relist, one API error type, one backoff policy. Light on purpose (no generated client):
 * it is bundled into the sidecar.
 */
export { Backoff, type BackoffOptions, sleep } from './backoff.js';
export {
  apiError,
  credentialError,
  type ErrorHints,
  KubeApiError,
  RBAC_TEMPLATE,
  type RequestContext,
  transportError,
} from './errors.js';
export {
  Informer,
  type InformerOptions,
  type InformerStats,
  type KubeObject,
  listAll,
  type WatchEvent,
  type WatchEventType,
} from './informer.js';
export {
  type ApiEndpoint,
  type ApiTransport,
  createApiTransport,
  type Query,
  type RequestOptions,
  readBody,
  type StreamOptions,
  type TokenConnection,
  type TokenSource,
  tokenConnection,
  tokenEndpoint,
} from './transport.js';
