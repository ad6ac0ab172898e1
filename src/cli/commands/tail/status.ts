/**
 * `tail`'s status lines on stderr: rewritten in place on a terminal, appended
 * otherwise. A reconnect names its cause (`connect ECONNREFUSED 127.0.0.1:1`,
 * a DNS or TLS failure), so a person sees why, not only that.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as SseClient from "../../../client/SseClient.js"
import type * as Tail from "../Tail.js"

const plural = (count: number, one: string, many: string) => `${count} ${count === 1 ? one : many}`

const describeConnection = (status: SseClient.ConnectionStatus, url: string, cause: string | undefined): string => {
  switch (status.state) {
    case "connecting":
      return `connecting to ${url} (attempt ${status.attempt}${status.lastEventId ? `, Last-Event-ID ${status.lastEventId}` : ""})`
    case "connected":
      return `connected (HTTP ${status.status})`
    case "reconnecting":
      return `reconnecting in ${(status.delayMillis / 1000).toFixed(1)} s: ${status.reason}` +
        (status.status === undefined ? "" : ` (HTTP ${status.status})`) +
        (status.reason === "transport" && cause !== undefined ? ` (${cause})` : "")
  }
}

const countsLine = (c: Tail.Counts) =>
  `${c.delivered} delivered, ${plural(c.duplicatesDropped, "duplicate", "duplicates")} dropped, ` +
  `${plural(c.reconnects, "reconnect", "reconnects")}`

/**
 * The printer of a run's `Tail.Status`. `lastCause` is the last transport failure's
 * cause in words, read when a reconnect is reported.
 */
export const statusPrinter = (
  url: string,
  lastCause: () => string | undefined,
  stream: NodeJS.WriteStream = process.stderr
) => {
  const live = stream.isTTY === true
  let progress = ""
  const say = (line: string) =>
    Effect.sync(() => {
      if (live) stream.write(`\r\x1b[2K${line}\n${progress}`)
      else stream.write(`${line}\n`)
    })
  return (status: Tail.Status): Effect.Effect<void> => {
    switch (status._tag) {
      case "Waiting":
        return say(`waiting: ${status.busy.message}`)
      case "Resuming":
        return say(Option.match(status.lastEventId, {
          onNone: () => "starting from the beginning (no stored cursor)",
          onSome: (id) => `resuming after stored cursor ${id}`
        }))
      case "Connection":
        return say(describeConnection(status, url, lastCause()))
      case "Stopped": {
        const s = status.summary
        const cursor = Option.match(s.storedCursor, {
          onNone: () => "none",
          onSome: (c) => `${c.lastEventId} (seq ${c.seq})`
        })
        return Effect.sync(() => {
          progress = ""
          stream.write(`${live ? "\r\x1b[2K" : ""}stopped: ${countsLine(s)}; stored cursor ${cursor}\n`)
        })
      }
      case "Progress": {
        const c = status.counts
        const line = `${status.eventsPerSecond.toFixed(0)} events/s, ${countsLine(c)}, ` +
          plural(c.backpressureTimeouts, "backpressure timeout", "backpressure timeouts")
        return Effect.sync(() => {
          if (live) {
            progress = line
            stream.write(`\r\x1b[2K${line}`)
          } else stream.write(`${line}\n`)
        })
      }
    }
  }
}
