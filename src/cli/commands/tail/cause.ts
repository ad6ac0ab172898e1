/**
 * A transport failure in words: the deepest cause in an error's chain that says
 * something (`connect ECONNREFUSED 127.0.0.1:1`, `getaddrinfo ENOTFOUND host`, a
 * TLS reason), not the wrappers' "fetch failed" or "Transport error".
 */

interface Failure {
  readonly message?: unknown
  readonly code?: unknown
  readonly cause?: unknown
  readonly errors?: unknown
}

const wordsOf = (failure: Failure): string | undefined => {
  const message = typeof failure.message === "string" ? failure.message : ""
  const code = typeof failure.code === "string" ? failure.code : undefined
  // Happy eyeballs: one error per address tried, under an AggregateError without a message.
  if (message === "" && Array.isArray(failure.errors) && failure.errors.length > 0) {
    const each = failure.errors.map((error) => wordsOf(error as Failure)).filter((words) => words !== undefined)
    return each.length === 0 ? code : [...new Set(each)].join(", ")
  }
  if (message === "") return code
  return code === undefined || message.includes(code) ? message : `${message} (${code})`
}

/**
 * The deepest cause of `error` that carries a system code (at most 10 levels
 * down), else the deepest with a message, if any.
 */
export const causeOf = (error: unknown): string | undefined => {
  let coded: string | undefined
  let deepest: string | undefined
  let current: unknown = error
  for (let depth = 0; depth < 10 && typeof current === "object" && current !== null; depth++) {
    const failure = current as Failure
    const words = wordsOf(failure)
    if (words !== undefined) {
      deepest = words
      if (typeof failure.code === "string") coded = words
    }
    current = failure.cause
  }
  return coded ?? deepest
}
