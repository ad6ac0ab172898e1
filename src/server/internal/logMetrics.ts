/**
 * The event log's metrics, here so the machinery that updates them does not import
 * the public module at run time; `EventLog.ts` re-exports them.
 */
import { Metric } from "effect"

export const appended = Metric.counter("event_log_appended", {
  description: "Events appended to the event log",
  incremental: true
})
export const readers = Metric.gauge("event_log_readers", {
  description: "Followers of the event log's streams now"
})
export const subscriptions = Metric.gauge("event_log_subscriptions", {
  description: "Streams followed in this process, each through one shared subscription however many followers it has"
})
export const readerFallbacks = Metric.counter("event_log_reader_fallbacks", {
  description: "Times a follower fell behind its buffer and went on from storage",
  incremental: true
})
export const trimmed = Metric.counter("event_log_trimmed", {
  description: "Events removed by retention",
  incremental: true
})

