/** How `tail` prints an event on stdout. */
import type { SseEvent } from "../../../wire/SseEvent.js"

export type Format = "json" | "data"

/**
 * `json`: one JSON object per event, one per line: easy to read, grep and pipe into jq.
 * `data`: the event's data as sent, so a stream of JSON messages pipes into jq as is.
 */
const formatters: Record<Format, (event: SseEvent) => string> = {
  json: (event) =>
    JSON.stringify(event.retry === undefined
      ? { id: event.id ?? null, event: event.event, data: event.data }
      : { id: event.id ?? null, event: event.event, data: event.data, retry: event.retry }),
  data: (event) => event.data
}

/** The lines of a chunk, each ending in a newline. */
export const lines = (format: Format, events: Iterable<SseEvent>): string => {
  const print = formatters[format]
  let text = ""
  for (const event of events) text += print(event) + "\n"
  return text
}
