/**
 * The SSE byte parser itself, for callers that feed bytes themselves and want
 * what `Sse.parse` hides: the client drives it chunk by chunk inside its own
 * reading stage (one stage per chunk instead of two), and asks it for id-only
 * blocks (`idOnlyBlocks`), which set the resume point without being events.
 *
 * A re-export, not a wrapper: the class is the one `Sse.parse` uses, so a
 * caller pays no call per event or chunk beyond the parser's own.
 */
export { Parser, SseEventTooLarge } from "./internal/parser.js"
