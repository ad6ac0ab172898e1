/**
 * One dispatched Server-Sent Event, as the WHATWG parsing rules define it.
 *
 * A plain class on `Data.Class` (so `Equal.equals` and `Hash.hash` compare the
 * fields), not a `Schema.Class`: that pulled effect/Schema and, through it,
 * fast-check into every browser bundle of the root (~60 kB of the tail's
 * gzipped size, issue 18). Where a schema is needed, to decode events from
 * JSON, `SseEventSchema.SseEvent` is one, in its own entry point.
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"

/**
 * Whether `event` stands for an id-only block (`id: 5\n\n`): no event per spec,
 * but it sets the resume point. The parser gives such blocks only when asked
 * (`Parser`'s `idOnlyBlocks`); the tracker moves the resume point on them and
 * never hands them on.
 */
export { isIdOnly } from "./internal/idOnly.js"

export class SseEvent extends Data.Class<{
  /** The `id` field of this event's block, if the block had one. */
  readonly id?: string | undefined
  /** The event type; the spec's default is `"message"`. */
  readonly event: string
  /** The `data` lines joined with `\n`. */
  readonly data: string
  /** Reconnection time in milliseconds, when the block set one. */
  readonly retry?: number | undefined
}> {
  /**
   * `event` defaults to `"message"` and `data` to `""`. A field of the wrong type,
   * or a `retry` that is not a non-negative integer, throws an
   * `IllegalArgumentException`, unless `options` is `true` or
   * `{ disableValidation: true }` (what `Schema.Class` constructors took).
   */
  constructor(
    props: {
      readonly id?: string | undefined
      readonly event?: string | undefined
      readonly data?: string | undefined
      readonly retry?: number | undefined
    } = {},
    options?: boolean | { readonly disableValidation?: boolean | undefined }
  ) {
    const event = props.event === undefined ? "message" : props.event
    const data = props.data === undefined ? "" : props.data
    if (options !== true && (typeof options !== "object" || options.disableValidation !== true)) {
      validate(props.id, event, data, props.retry)
    }
    // The fields in one order, whatever the argument's: events made here and by
    // the parser's constructors (same order) share V8's object layout. An `id`
    // given as undefined stays a key, as the Schema.Class kept it.
    const fields: { id?: string | undefined; event: string; data: string; retry?: number } = Object.hasOwn(props, "id")
      ? { id: props.id, event, data }
      : { event, data }
    if (props.retry !== undefined) fields.retry = props.retry
    super(fields)
  }

  /** As the `Schema.Class` printed it: `SseEvent({ "id": "1", "event": "message", "data": "x", "retry": undefined })`. */
  override toString(): string {
    return `SseEvent({ "id": ${show(this.id)}, "event": ${show(this.event)}, ` +
      `"data": ${show(this.data)}, "retry": ${show(this.retry)} })`
  }
}

/** A field's value as `Inspectable` prints it. */
const show = (value: unknown): string => typeof value === "string" ? JSON.stringify(value) : String(value)

/** Throws on the first field that is not what the type says. */
const validate = (id: unknown, event: unknown, data: unknown, retry: unknown): void => {
  const bad = id !== undefined && typeof id !== "string"
    ? ["id", id, "a string"]
    : typeof event !== "string"
    ? ["event", event, "a string"]
    : typeof data !== "string"
    ? ["data", data, "a string"]
    : retry !== undefined && !(typeof retry === "number" && Number.isSafeInteger(retry) && retry >= 0)
    ? ["retry", retry, "a non-negative integer"]
    : undefined
  if (bad !== undefined) {
    throw new Cause.IllegalArgumentException(`SseEvent's ${bad[0]} must be ${bad[2]}: ${show(bad[1])}`)
  }
}
