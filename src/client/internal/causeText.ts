/**
 * An ended attempt in words, for `SseRetriesExhausted`'s message and the
 * connection hook: a transport failure by the innermost message of its chain
 * (`connect ECONNREFUSED 127.0.0.1:8080`, `getaddrinfo ENOTFOUND host`, a TLS
 * error), where the name of what failed is; the other ends by what they are.
 */
import type { Reconnect } from "../SseClientError.js"

/** The innermost message of an error chain (`cause`, or an AggregateError's `errors`): where the failure is named. */
const innermostMessage = (error: unknown): string | undefined => {
  let message: string | undefined
  // Bounded: a chain may be cyclic.
  for (let depth = 0; depth < 8 && typeof error === "object" && error !== null; depth++) {
    const { cause, errors, message: own } = error as { cause?: unknown; errors?: unknown; message?: unknown }
    if (Array.isArray(errors) && errors.length > 0) {
      // Happy eyeballs tried every address: each one's failure, once.
      const each = [...new Set(errors.map((inner) => innermostMessage(inner)).filter((m) => m !== undefined))]
      if (each.length > 0) return each.join("; ")
    }
    if (typeof own === "string" && own !== "") message = own
    error = cause
  }
  return message
}

/** Why an attempt ended, in words, for messages and the connection hook. */
export const causeText = (ended: Omit<Reconnect, "attempt">): string => {
  switch (ended.reason) {
    case "transport":
      return innermostMessage(ended.cause) ?? "the connection failed"
    case "status":
      return `HTTP ${ended.status}`
    case "idle":
      return "no data within idleTimeout"
    case "closed":
      return "the server closed the stream"
    case "requested":
      return "a reconnect was requested"
  }
}
