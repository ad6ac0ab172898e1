/**
 * One open session in memory: its progress beside its tracker (`SessionState`) and
 * the caller's view of it (`SessionView`). Kept small: an idle session costs its
 * tracker plus these few fields, and the manager keeps 10,000s of them.
 */
import { Deferred, Effect, FiberId, Option } from "effect"
import type { Lease, SessionLost } from "../../store/CursorStore.js"
import type * as EventTracker from "../../client/EventTracker.js"
import type { PersistenceClosedError } from "../PersistenceWorker.js"
import type * as SessionManager from "../SessionManager.js"

/** What the next cursor write of a session says, and who holds it. */
export class SessionState {
  /** Scopes holding the session open; a held session is never evicted. */
  holds = 0
  /** The session's lease while held. */
  lease: Lease | undefined = undefined
  /** Set once the lease is lost; the session is removed and every new event fails with it. */
  lost: SessionLost | undefined = undefined
  // The next two are made when first needed: a Deferred costs ~700 bytes and a
  // semaphore ~550 (its bound members), while most of the 10,000s of open sessions
  // are never held nor awaited (an idle session must stay under 2 KB).
  /** Completed by `lose`; made by the first wait on `session.lost`. */
  lostSignal: Deferred.Deferred<never, SessionLost> | undefined = undefined
  /** One ownership change at a time: holds in this process share one lease. Made by the first hold. */
  owning: Effect.Semaphore | undefined = undefined
  /**
   * A `commitChunk` ended without saying whether it committed (interrupted in its
   * COMMIT, a connection lost after it): the next one reads the stored cursor first.
   */
  uncertain = false
  constructor(
    public seq: number,
    /** The `seq` already in the store; nothing to flush while `seq` equals it. */
    public storedSeq: number,
    public lastEventId: string | undefined,
    public lastActive: number,
    /** The stream the session resumes (`"<METHOD> <url>"`), written with its cursors; none if never named. */
    public stream: string | undefined
  ) {}

  /** Not held, and unused since `cutoff` (epoch ms). */
  isIdleSince(cutoff: number): boolean {
    return this.holds === 0 && this.lastActive <= cutoff
  }
}

type Tracker = EventTracker.EventTracker<PersistenceClosedError | SessionLost>

/**
 * The caller's `Session`: its Effects are made on each read by prototype getters,
 * not stored, since three stored Effects and their closures cost ~450 bytes per
 * idle session.
 */
export class SessionView implements SessionManager.Session {
  constructor(
    readonly sessionId: string,
    readonly tracker: Tracker,
    private readonly state: SessionState
  ) {}

  /** The state behind a session this manager made: private to the session's callers, not to its manager. */
  static stateOf(session: SessionManager.Session): SessionState {
    return (session as SessionView).state
  }

  get seq(): Effect.Effect<number> {
    return Effect.sync(() => this.state.seq)
  }
  get epoch(): Effect.Effect<Option.Option<number>> {
    return Effect.sync(() => Option.fromNullable(this.state.lease?.epoch))
  }
  get stream(): string | undefined {
    return this.state.stream
  }
  get lost(): Effect.Effect<never, SessionLost> {
    return Effect.suspend(() => {
      const { state } = this
      if (state.lost !== undefined) return Effect.fail(state.lost)
      return Deferred.await(state.lostSignal ??= Deferred.unsafeMake<never, SessionLost>(FiberId.none))
    })
  }
}

/**
 * The window stored with cursor `upTo`: cut right after it, since an id recorded
 * after the cursor would be skipped as a duplicate once a restarted process
 * resumes from that cursor.
 */
export const windowUpTo = (recentIds: ReadonlyArray<string>, upTo: string): ReadonlyArray<string> => {
  const end = recentIds.lastIndexOf(upTo)
  return end < 0 ? [] : end === recentIds.length - 1 ? recentIds : recentIds.slice(0, end + 1)
}
