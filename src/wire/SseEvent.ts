/**
 * One dispatched Server-Sent Event, as the WHATWG parsing rules define it.
 */
import { Schema } from "effect"

export class SseEvent extends Schema.Class<SseEvent>("SseEvent")({
  /** The `id` field of this event's block, if the block had one. */
  id: Schema.optional(Schema.String),
  /** The event type; the spec's default is `"message"`. */
  event: Schema.optionalWith(Schema.String, { default: () => "message" }),
  /** The `data` lines joined with `\n`. */
  data: Schema.optionalWith(Schema.String, { default: () => "" }),
  /** Reconnection time in milliseconds, when the block set one. */
  retry: Schema.optional(Schema.NonNegativeInt)
}) {}
