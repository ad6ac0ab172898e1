/**
 * The log's ids, `<generation>-<seq>`, in a module of their own: the core, the fan-out
 * and every backend use them, and none of those should import another for it.
 */
import type * as EventLog from "../EventLog.js"

/** The id of `seq` in `generation`: the form every backend issues. */
export const formatId = (generation: number, seq: number): string => `${generation}-${seq}`

/** The seq of an id this log issued (the caller knows it is one). */
export const seqOf = (event: EventLog.LoggedEvent): number => Number(event.id.slice(event.id.indexOf("-") + 1))
