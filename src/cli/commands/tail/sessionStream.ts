/**
 * INTEGRATION STUB (issue 19.2): `SessionManager.SessionStreamMismatch` and the
 * `stream` option of `hold` are written on the session branch. Until they are
 * merged, this declares the error's shape so the CLI compiles against it; at
 * integration, delete this file and import `SessionStreamMismatch` from
 * `src/session/SessionManager.ts` in `../Tail.ts`.
 */
import * as Data from "effect/Data"

/** The session's stored cursor was made on another stream than the one asked for. */
export class SessionStreamMismatch extends Data.TaggedError("SessionStreamMismatch")<{
  readonly sessionId: string
  /** The stream (`"<METHOD> <url>"`) the session's cursor belongs to. */
  readonly stored: string
  /** The stream this run asked for. */
  readonly requested: string
}> {}
