/**
 * An id-only block (`id: 5\n\n`, or `id:\n\n`) dispatches no event, but per spec it
 * still sets the last-event-id buffer: MCP servers open every stream with one, so
 * that a cut before the first event can be resumed. The parser hands such a block
 * to the client as an `SseEvent` with empty data marked by this symbol; the tracker
 * moves the resume point on it and never returns it as a new event, so users
 * never see it.
 */
import type { SseEvent } from "../SseEvent.js"

export const idOnly: unique symbol = Symbol.for("effect-sse-resume/idOnly")

export const isIdOnly = (event: SseEvent): boolean => (event as { readonly [idOnly]?: true })[idOnly] === true
