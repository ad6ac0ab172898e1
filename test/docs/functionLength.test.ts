import { describe, expect, it } from "vitest"
import { longFunctions } from "./functionLength.js"

/** The longest function src/ may hold, in lines (a `make`'s `Effect.gen` counts). */
const limit = 80

describe("function length", () => {
  it(`no function in src/ is longer than ${limit} lines`, () => {
    expect(longFunctions(process.cwd(), limit).map((f) => `${f.file}:${f.line} ${f.name} (${f.lines} lines)`)).toEqual([])
  })
})
