// The data path, in order: bytes → Sse → SseClient → EventTracker → callbacks
// (Backpressure) → PersistenceWorker → CursorStore, with SessionOwnership giving a
// held session to one process at a time, SessionManager tying a session's tracker
// to its stored cursor, SessionGroup spreading many sessions over instances, and
// ExactlyOnce committing a handled chunk and its cursor in one transaction.
// The store engines are separate entry points (`effect-sse-resume/sqlite`,
// `effect-sse-resume/pg`), as is Telemetry.
export { SseEvent } from "./SseEvent.js"
export * as Sse from "./Sse.js"
export * as SseClient from "./SseClient.js"
export * as EventTracker from "./EventTracker.js"
export * as Backpressure from "./Backpressure.js"
export * as PersistenceWorker from "./PersistenceWorker.js"
export * as CursorStore from "./CursorStore.js"
export * as SessionOwnership from "./SessionOwnership.js"
export * as SessionManager from "./SessionManager.js"
export * as SessionGroup from "./SessionGroup.js"
export * as ExactlyOnce from "./ExactlyOnce.js"
