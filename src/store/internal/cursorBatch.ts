/** What every cursor store does to a `saveAll` batch before writing it. */
import type { Cursor } from "../CursorStore.js"
import { SessionLost } from "../StoreError.js"

/** Whether `a` supersedes `b`: a later owner's cursor first, then the higher `seq`. */
const supersedes = (a: Cursor, b: Cursor) =>
  (a.epoch ?? 0) !== (b.epoch ?? 0) ? (a.epoch ?? 0) > (b.epoch ?? 0) : a.seq > b.seq

/** The newest cursor per session among `cursors`, so one statement never touches a row twice. */
export const newestPerSession = (cursors: Iterable<Cursor>): Map<string, Cursor> => {
  const newest = new Map<string, Cursor>()
  for (const cursor of cursors) {
    const seen = newest.get(cursor.sessionId)
    if (seen === undefined || supersedes(cursor, seen)) newest.set(cursor.sessionId, cursor)
  }
  return newest
}

/** The answer to a cursor whose epoch is no longer its session's. */
export const fenced = (cursor: Cursor) => new SessionLost({ sessionId: cursor.sessionId, epoch: cursor.epoch!, reason: "fenced" })

/** `cursor` as it replaces `stored`: a cursor saved without a stream keeps the stream the stored one belongs to. */
export const keepingStream = (cursor: Cursor, stored: Cursor | undefined): Cursor =>
  cursor.stream === undefined && stored?.stream !== undefined ? { ...cursor, stream: stored.stream } : cursor
