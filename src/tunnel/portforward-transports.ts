/**
 * The ways a port-forward can reach the API server, in a module of their own so
 * that reading the settings does not load the WebSocket client.
 */
export const PORT_FORWARD_TRANSPORTS = ['auto', 'spdy', 'spdy-websocket', 'websocket'] as const;
export type PortForwardTransport = (typeof PORT_FORWARD_TRANSPORTS)[number];
