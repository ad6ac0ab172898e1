import { describe, expect, it } from "vitest"
import { longFunctions } from "./functionLength.js"

/** The longest function src/ may hold, in lines (a `make`'s `Effect.gen` counts). */
const limit = 80

/**
 * Functions still over the limit when the check came in (issue 18), each with the
 * length it may not exceed: the event log's constructors, to be cut into named steps.
 * Shrink an entry when its function shrinks; remove it once under the limit.
 */
const pending: Record<string, number> = {
  "src/server/internal/sqlLog.ts make": 227,
  "src/server/internal/eventLog.ts make": 157
}

describe("function length", () => {
  it(`no function in src/ is longer than ${limit} lines, but the pending ones, which do not grow`, () => {
    const named = longFunctions(process.cwd(), limit).map((f) => ({ key: `${f.file} ${f.name}`, lines: f.lines }))
    expect(named.filter(({ key, lines }) => !(key in pending) || lines > pending[key]!)).toEqual([])
  })
})
