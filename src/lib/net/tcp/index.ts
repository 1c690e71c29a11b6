/**
 * TCP for Atoll: `import { attachTcp } from "atoll/net/tcp"`. See socket.ts for the API, and
 * connection.ts for what the protocol implements, RFC by RFC. Web Streams adapters are in
 * "atoll/net/tcp/streams", imported separately.
 */
export { attachTcp, type AttachTcpOptions } from "./socket.ts";
export { TcpLayer, TCP_EPHEMERAL_FIRST, TCP_EPHEMERAL_LAST, type ConnectOptions, type ListenOptions } from "./layer.ts";
export { TcpListener, type FlowHandler } from "./listener.ts";
export { TcpFlow } from "./flow.ts";
export { type TcpState } from "./connection.ts";
export { TcpError, type TcpErrorReason } from "./error.ts";
export { type TcpCounters, type FlowCounters } from "./counters.ts";
export {
  DEFAULT_TCP_SETTINGS,
  type FlowOptions,
  type KeepAliveOptions,
  type TcpLayerOptions,
  type ConnectionSettings,
  type LayerSettings,
} from "./settings.ts";
export { type CongestionAlgorithm } from "./congestion.ts";
