// The data path, in order: bytes → Sse → SseClient → EventTracker → callbacks
// (Backpressure) → PersistenceWorker → CursorStore, with SessionOwnership giving a
// held session to one process at a time, SessionManager tying a session's tracker
// to its stored cursor, SessionGroup spreading many sessions over instances, and
// ExactlyOnce committing a handled chunk and its cursor in one transaction.
// The store engines are separate entry points (`effect-sse-resume/sqlite`,
// `effect-sse-resume/pg`), as are Telemetry and SseEventSchema (SseEvent as an
// effect/Schema, kept off the root so a browser bundle carries no Schema).
export { SseEvent } from "./wire/SseEvent.js"
export * as Sse from "./wire/Sse.js"
export * as SseClient from "./client/SseClient.js"
export * as EventTracker from "./client/EventTracker.js"
export * as Backpressure from "./client/Backpressure.js"
export * as PersistenceWorker from "./session/PersistenceWorker.js"
export * as CursorStore from "./store/CursorStore.js"
export * as LeaseStore from "./store/LeaseStore.js"
export * as SessionOwnership from "./session/SessionOwnership.js"
export * as SessionManager from "./session/SessionManager.js"
export * as SessionGroup from "./session/SessionGroup.js"
export * as ExactlyOnce from "./session/ExactlyOnce.js"
export * as EventTable from "./session/EventTable.js"
export * as EventLog from "./server/EventLog.js"
export * as SseServer from "./server/SseServer.js"
export * as StreamProducer from "./server/StreamProducer.js"
export * as McpEventStore from "./server/McpEventStore.js"
export * as Settings from "./Settings.js"
