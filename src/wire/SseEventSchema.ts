/**
 * `SseEvent` as an `effect/Schema`: to decode events from JSON (a log, a queue,
 * a fixture) and encode them back. Its own entry point,
 * `effect-sse-resume/SseEventSchema`, so that the root's bundle does not carry
 * effect/Schema and fast-check (issue 18). `SseEvent` was a `Schema.Class`
 * before; code that used it as a schema (`Schema.decodeUnknown(SseEvent)`) takes
 * `SseEventSchema.SseEvent` instead, which decodes, encodes and validates as the
 * class did and yields the same `SseEvent` instances.
 */
import * as Arbitrary from "effect/Arbitrary"
import * as Schema from "effect/Schema"
import { SseEvent as SseEventClass } from "./SseEvent.js"

/** The fields as the Schema.Class declared them: `event` defaults to `"message"`, `data` to `""`. */
export const fields = {
  id: Schema.optional(Schema.String),
  event: Schema.optionalWith(Schema.String, { default: () => "message" }),
  data: Schema.optionalWith(Schema.String, { default: () => "" }),
  retry: Schema.optional(Schema.NonNegativeInt)
}

/** An `SseEvent` instance as it is (the schema's type side). */
export const SseEventFromSelf: Schema.Schema<SseEventClass> = Schema.instanceOf(SseEventClass, {
  identifier: "SseEvent",
  arbitrary: () => () => Arbitrary.make(Schema.typeSchema(Schema.Struct(fields))).map((props) => new SseEventClass(props))
})

/** An `SseEvent` from its fields, an object such as JSON gives: `{ "id": "1", "data": "x" }`. */
export const SseEvent: Schema.Schema<SseEventClass, Schema.Struct.Encoded<typeof fields>> = Schema.transform(
  Schema.Struct(fields),
  SseEventFromSelf,
  {
    strict: true,
    // Validated by the struct already.
    decode: (props) => new SseEventClass(props, true),
    encode: (event) => event
  }
)
