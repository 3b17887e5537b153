/** Public surface of the tunnel: the wire protocol shared by the sidecar and the agent, and the agent's env. */
export * from './agent-contract.js';
export {
  type AcceptHandle,
  type InboundHandler,
  type OpenOptions,
  TunnelClient,
  type TunnelClientOptions,
  UdpFlow,
} from './client.js';
export { ControlDecoder, encodeControl } from './control.js';
export { type DialFailure, dialFailure, StreamRefusedError } from './errors.js';
export { encodeFrame, FRAME_PAYLOAD_MAX, LengthPrefixDecoder } from './framing.js';
export { abortStream, type JoinResult, joinStreams } from './pipe.js';
export {
  openPortForward,
  PORT_FORWARD_SUBPROTOCOL,
  PortForwardDecoder,
  type PortForwardFrame,
  type PortForwardOptions,
  PortForwardStream,
  type PortForwardTransport,
  portForwardUrl,
} from './portforward.js';
export * from './protocol.js';
export * from './route.js';
