export * as Backpressure from "./Backpressure.js"
export * as EventTracker from "./EventTracker.js"
export { SseEvent } from "./SseEvent.js"
