/**
 * Heap bytes per open idle session: 10,000 sessions, maxTracked 100, empty windows,
 * on the compiled build (what users run; under tsx, esbuild's keepNames names every
 * closure and overstates it).
 *
 *   npm run build && node --expose-gc test/bench/idle-heap.mjs
 */
import { Context, Effect, Layer } from "effect"
import { CursorStore, PersistenceWorker, SessionManager } from "../../dist/index.js"

const sessions = 10_000
const maxTracked = 100

const perSession = Effect.scoped(Effect.gen(function*() {
  const context = yield* Layer.build(
    SessionManager.layer({ maxSessions: sessions, maxTracked }).pipe(
      Layer.provideMerge(PersistenceWorker.layer()),
      Layer.provideMerge(CursorStore.layerMemory)
    )
  )
  const manager = Context.get(context, SessionManager.SessionManager)
  globalThis.gc()
  globalThis.gc()
  const before = process.memoryUsage().heapUsed
  yield* Effect.forEach(Array.from({ length: sessions }, (_, i) => `idle-${i}`), manager.open, { discard: true })
  globalThis.gc()
  globalThis.gc()
  if ((yield* manager.size) !== sessions) throw new Error("sessions were not all open")
  return (process.memoryUsage().heapUsed - before) / sessions
}))

const bytes = await Effect.runPromise(perSession)
console.log(
  `\nheap per open idle session (${sessions.toLocaleString("en")} sessions, maxTracked ${maxTracked}, compiled build): ` +
    `${Math.round(bytes).toLocaleString("en")} bytes; target ≤ 2 KB: ${bytes <= 2048 ? "ok" : "MISSED"}`
)
