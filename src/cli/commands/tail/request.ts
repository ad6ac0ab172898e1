/**
 * The request `tail` sends: the method, the headers, and a body whose content
 * type is the caller's, else guessed from the body.
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"

export interface RequestOptions {
  readonly url: string
  readonly method?: string | undefined
  readonly headers?: Record<string, string> | undefined
  readonly body?: string | undefined
}

/**
 * The body's content type: the caller's `Content-Type` header, else JSON when the
 * body parses as JSON (JSON APIs and MCP servers answer 415 to `text/plain`).
 */
const contentTypeOf = (headers: Record<string, string> | undefined, body: string): string => {
  for (const [name, value] of Object.entries(headers ?? {})) if (name.toLowerCase() === "content-type") return value
  try {
    JSON.parse(body)
    return "application/json"
  } catch {
    return "text/plain"
  }
}

/** The stream's identity for its cursor: `"<METHOD> <url>"` (glossary: `stream`). */
export const streamOf = (options: RequestOptions): string => `${(options.method ?? "GET").toUpperCase()} ${options.url}`

export const request = (options: RequestOptions): HttpClientRequest.HttpClientRequest => {
  let request = HttpClientRequest.make((options.method ?? "GET").toUpperCase() as "GET")(options.url)
  if (options.headers !== undefined) request = HttpClientRequest.setHeaders(request, options.headers)
  // The body's content type replaces the header's, so the header's is passed as the body's.
  if (options.body !== undefined) {
    request = HttpClientRequest.bodyText(request, options.body, contentTypeOf(options.headers, options.body))
  }
  return request
}
