/**
 * The values the key-value store keeps, one JSON value per key, checked by hand
 * both ways: a stored value of another shape (corrupt, torn, another program's)
 * fails its read, and a value JSON would not carry back (NaN and Infinity become
 * null, integers past 2^53 lose digits) fails its write instead of landing.
 * Hand-written rather than a Schema, which would pull `effect/Schema` into the
 * root entry that browsers bundle.
 */
import { Data } from "effect"

/** Every key the store writes starts with this, so the store can share a `KeyValueStore` with other data. */
const keyPrefix = "effect-sse-resume/"
export const cursorKey = (sessionId: string) => `${keyPrefix}cursor/${sessionId}`
export const ownerKey = (sessionId: string) => `${keyPrefix}owner/${sessionId}`

/** A cursor as stored under its session's key (the session id is the key's, the epoch the lease's). */
export interface StoredCursor {
  readonly lastEventId: string
  readonly seq: number
  readonly recentIds?: ReadonlyArray<string> | undefined
  readonly updatedAt: number
  readonly stream?: string | undefined
}

/** A session's lease: `expiresAt` by this store's `Clock`, `released` once given up (its epoch kept). */
export interface StoredOwner {
  readonly owner: string
  readonly epoch: number
  readonly expiresAt: number
}

/** A value under `key` that does not decode (read), or one that would not read back (write). */
export class BadValue extends Data.TaggedError("BadValue")<{
  readonly key: string
  readonly writing: boolean
  /** What is wrong with it, as an Error so the store error's message names it. */
  readonly cause: Error
}> {
  override get message() {
    return this.writing ? `a value for ${this.key} that could not be read back` : `the value of ${this.key} does not read`
  }
}

/** One field's rule: the expected kind, as said in the error. */
type Rule = readonly [expected: string, test: (value: unknown) => boolean]

const string: Rule = ["a string", (value) => typeof value === "string"]
const integer: Rule = ["a safe integer", (value) => Number.isSafeInteger(value)]
const finite: Rule = ["a finite number", (value) => Number.isFinite(value)]
const strings: Rule = [
  "an array of strings",
  (value) => Array.isArray(value) && value.every((item) => typeof item === "string")
]
const optional = ([expected, test]: Rule): Rule => [`${expected} or nothing`, (value) => value === undefined || test(value)]

const cursorRules: Record<keyof StoredCursor, Rule> = {
  lastEventId: string,
  seq: integer,
  recentIds: optional(strings),
  updatedAt: finite,
  stream: optional(string)
}

const ownerRules: Record<keyof StoredOwner, Rule> = { owner: string, epoch: integer, expiresAt: finite }

/** `value`'s fields that `rules` name, or the first broken rule as an Error. */
const pick = <A>(rules: Record<keyof A, Rule>, value: unknown): A | Error => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return new Error(`Expected an object, got ${Array.isArray(value) ? "an array" : JSON.stringify(value) ?? String(value)}`)
  }
  const picked: Record<string, unknown> = {}
  for (const [field, [expected, test]] of Object.entries(rules) as Array<[string, Rule]>) {
    const fieldValue = (value as Record<string, unknown>)[field]
    if (!test(fieldValue)) return new Error(`Expected ${field} to be ${expected}, got ${String(fieldValue)}`)
    if (fieldValue !== undefined) picked[field] = fieldValue
  }
  return picked as A
}

/** A codec of one kind of stored value. */
export interface Codec<A> {
  readonly decode: (key: string, text: string) => A | BadValue
  readonly encode: (key: string, value: A) => string | BadValue
}

const codec = <A>(rules: Record<keyof A, Rule>): Codec<A> => ({
  decode: (key, text) => {
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (error) {
      return new BadValue({ key, writing: false, cause: error as Error })
    }
    const value = pick<A>(rules, parsed)
    return value instanceof Error ? new BadValue({ key, writing: false, cause: value }) : value
  },
  encode: (key, value) => {
    const checked = pick<A>(rules, value)
    return checked instanceof Error ? new BadValue({ key, writing: true, cause: checked }) : JSON.stringify(checked)
  }
})

export const storedCursor: Codec<StoredCursor> = codec(cursorRules)
export const storedOwner: Codec<StoredOwner> = codec(ownerRules)
