/**
 * "atoll/http": an HTTP/1.1 server (RFC 9110, RFC 9112) with web-standard handlers.
 *
 *   import { serveHttp, serveStatic } from "atoll/http";
 *   import { Response } from "atoll/web";
 *
 *   serveHttp((accept) => tcp.listen(80, accept), (request) => new Response("hello\n"));
 *
 * Layers, each usable alone:
 *   connection.ts  Http1Connection: the protocol engine, a state machine over bytes (no I/O)
 *   server.ts      serveHttp / serveHttpConnection: the engine over a ByteFlow, with fetch handlers
 *   limits.ts      the server's budgets (connections, requests in flight) and their rate-limited reports
 *   static.ts      serveStatic: a handler for baked assets (atoll/assets)
 *   testing.ts     createFlowPair, ManualTimers: in-memory flows and timers
 */
export {
  DEFAULT_LIMITS,
  DEFAULT_TIMEOUTS,
  Exchange,
  Http1Connection,
  type BodyRead,
  type ConnectionHooks,
  type ConnectionLimitKind,
  type ConnectionOptions,
  type ExchangeRecord,
  type HttpLimits,
  type HttpTimeouts,
  type HttpTimers,
  type ResponseHead,
} from "./connection.ts";
export { DEFAULT_SERVER_LIMITS, LIMIT_REPORT_INTERVAL_MS, LimitReporter, type LimitKind, type ServerLimits } from "./limits.ts";
export { PROTOCOL_ERRORS, ProtocolError, type ProtocolErrorKind } from "./errors.ts";
export type { BodyFraming, RequestInfo, TargetForm } from "./framing.ts";
export type { FieldLine, RequestHead } from "./head.ts";
export {
  serveHttp,
  serveHttpConnection,
  type ByteFlow,
  type ConnectionInfo,
  type FetchHandler,
  type HttpLogger,
  type HttpServer,
  type ServeOptions,
} from "./server.ts";
export { HttpStats, commonLogLine } from "./stats.ts";
export { serveStatic, type StaticOptions } from "./static.ts";
export {
  chooseContentCoding,
  evaluatePreconditions,
  evaluateRange,
  ifRangeAllows,
  parseEntityTagList,
  strongMatch,
  weakMatch,
  type EntityTag,
  type PreconditionOutcome,
  type RangeOutcome,
} from "./representation.ts";
export { httpDate } from "./syntax.ts";
export { createFlowPair, FlowResetError, ManualTimers, type MemoryFlow } from "./testing.ts";
export {
  DEFAULT_HTTP_PORT,
  serve,
  type ApplianceExport,
  type FetchApp,
  type ServedHttp,
  type ServeShortcutOptions,
} from "./serve.ts";
