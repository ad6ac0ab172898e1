/**
 * The errors of the cursor and lease stores, in a module of their own that imports
 * nothing of the stores' machinery: the stores' internals build them, and callers
 * `catchTag` them, without either importing the other.
 */
import { Data, Effect } from "effect"

/** A store could not be opened, read or written; `message` is one line naming the underlying reason. */
export class CursorStoreError extends Data.TaggedError("CursorStoreError")<{
  readonly operation: "open" | "load" | "save" | "remove" | "acquire" | "renew" | "release"
  readonly cause: unknown
}> {
  override get message() {
    return `${this.operation} failed: ${reasonOf(this.cause)}`
  }
}

/**
 * The messages down a chain of causes, on one line: drivers' errors come wrapped
 * ("Failed to execute statement" around "no such table"), and Node reports a
 * connection refused on several addresses as an AggregateError with no message.
 */
const reasonOf = (cause: unknown): string => {
  const parts: Array<string> = []
  let link = cause
  for (let depth = 0; depth < 5 && link !== undefined && link !== null; depth++) {
    if (!(link instanceof Error)) {
      parts.push(String(link))
      break
    }
    const message = link.message === "" && link instanceof AggregateError
      ? link.errors.map((error) => (error instanceof Error ? error.message : String(error))).join("; ")
      : link.message
    if (message !== "" && !parts.includes(message)) parts.push(message)
    link = link.cause
  }
  return parts.length === 0 ? String(cause) : parts.join(": ").replace(/\s+/g, " ").trim()
}

/**
 * Makes every failure of a store operation a `CursorStoreError`, defects included:
 * drivers throw on some I/O errors (better-sqlite3 on a directory or a corrupt
 * file), and a store's caller should see a reason, not a crash.
 */
export const mapStoreFailure = (operation: CursorStoreError["operation"]) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, CursorStoreError, R> =>
  effect.pipe(
    Effect.mapError((cause) => new CursorStoreError({ operation, cause })),
    Effect.catchAllDefect((cause) => Effect.fail(new CursorStoreError({ operation, cause })))
  )

/**
 * Another owner holds the lease (`sessionId` names what is leased: a session, or
 * any other key). Carries what a caller needs to say who holds it and how long it
 * may last, e.g. to suggest waiting for it.
 */
export class SessionBusy extends Data.TaggedError("SessionBusy")<{
  readonly sessionId: string
  readonly owner: string
  /** Until the lease ends if its owner stops renewing it (by the store's clock). */
  readonly expiresInMillis: number
}> {
  override get message() {
    return `session "${this.sessionId}" is held by ${this.owner} (lease ends within ${Math.max(0, this.expiresInMillis)} ms unless renewed)`
  }
}

/**
 * This process no longer owns the session: another owner took it after the lease
 * expired ("taken"), a write carried a stale epoch ("fenced"), or renewals failed
 * for a whole lease ("unrenewed", so another owner may hold it by now).
 */
export class SessionLost extends Data.TaggedError("SessionLost")<{
  readonly sessionId: string
  readonly epoch: number
  readonly reason: "taken" | "fenced" | "unrenewed"
}> {
  override get message() {
    return `session "${this.sessionId}" lost (epoch ${this.epoch}, ${this.reason}): another owner may hold it`
  }
}

/**
 * A chunk's cursor was not committed: the stored `seq` is no longer `previousSeq`, so
 * another writer (a concurrent commit of the same session, or the PersistenceWorker)
 * moved it after this process read it. Nothing of the transaction was kept.
 */
export class CursorConflict extends Data.TaggedError("CursorConflict")<{
  readonly sessionId: string
  readonly previousSeq: number
}> {
  override get message() {
    return `session "${this.sessionId}": the stored cursor moved past seq ${this.previousSeq} meanwhile; nothing committed`
  }
}
