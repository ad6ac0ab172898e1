/**
 * The demo page's script (bundled for the browser at build time): tails a stream
 * with `SseClient` over `FetchHttpClient` as a session of `SessionManager`, its
 * cursor in `localStorage` (`CursorStore.layerKeyValueStore`), so a reload resumes
 * after the last event shown. The page's own record (the ids each load showed, in
 * `sessionStorage`) is written in the same JavaScript task as the cursor, so a
 * reload keeps both or neither: every id is shown once across reloads. One tab at
 * a time runs a session (a Web Lock): the others of the origin wait for it.
 *
 * Query parameters: `url` (default: this server's /events), `session` (default "demo").
 * For tests and the curious, `window.__sseDemo` holds the page's state.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as BrowserKeyValueStore from "@effect/platform-browser/BrowserKeyValueStore"
import { Cause, type Chunk, Data, Effect, Fiber, Layer, Option, Stream } from "effect"
import * as CursorStore from "../../../store/CursorStore.js"
import * as EventTracker from "../../../client/EventTracker.js"
import * as PersistenceWorker from "../../../session/PersistenceWorker.js"
import * as SessionManager from "../../../session/SessionManager.js"
import * as SseClient from "../../../client/SseClient.js"
import type { SseEvent } from "../../../wire/SseEvent.js"

/** What one load of the page showed. */
interface Load {
  readonly resumedFrom: string | null
  /** Ids shown, in order (the newest `maxLoggedIds`); `count` counts them all. */
  ids: Array<string>
  count: number
}

interface DemoState {
  readonly url: string
  readonly session: string
  /** This tab's loads, oldest first (the newest `maxLoads`); the last is this one. */
  readonly loads: Array<Load>
  delivered: number
  duplicatesDropped: number
  reconnects: number
  storedCursor: string | null
  status: string
  error: string | null
}

declare global {
  interface Window {
    __sseDemo: DemoState
  }
}

/** Events listed on the page: the newest only, so the DOM stays small. */
const listedEvents = 15
/** Bounds of the tab's record in sessionStorage (a few MB at most, for ids of up to ~60 characters). */
const maxLoggedIds = 5_000
const maxLoads = 10

const params = new URLSearchParams(location.search)
const url = new URL(params.get("url") ?? "/events", location.href).href
const sessionId = params.get("session") ?? "demo"
const logKey = `sse-demo/${sessionId}/loads`
const lockName = `effect-sse-resume/${sessionId}`

const element = (id: string) => document.getElementById(id)!

// --- The tab's record of loads ---

const readLoads = (): Array<Load> => {
  try {
    const loads = JSON.parse(sessionStorage.getItem(logKey) ?? "[]")
    return Array.isArray(loads) ? loads : []
  } catch {
    return []
  }
}

const state: DemoState = {
  url,
  session: sessionId,
  loads: readLoads(),
  delivered: 0,
  duplicatesDropped: 0,
  reconnects: 0,
  storedCursor: null,
  status: "starting",
  error: null
}
window.__sseDemo = state

/** The tab's record could not be saved (sessionStorage full): the cursor stays where the record is. */
class RecordWriteError extends Data.TaggedError("RecordWriteError")<{ readonly cause: unknown }> {
  override get message() {
    return `the page's record could not be saved in sessionStorage: ${String(this.cause)}`
  }
}

const saveLoads = () => sessionStorage.setItem(logKey, JSON.stringify(state.loads))

const startLoad = (resumedFrom: string | null): Load => {
  const load: Load = { resumedFrom, ids: [], count: 0 }
  state.loads.push(load)
  if (state.loads.length > maxLoads) state.loads.splice(0, state.loads.length - maxLoads)
  saveLoads()
  return load
}

// --- Rendering ---

const render = () => {
  const status = element("status")
  status.textContent = state.status
  status.className = `badge ${state.status.split(" ")[0]}`
  element("delivered").textContent = state.delivered.toLocaleString("en")
  element("duplicates").textContent = state.duplicatesDropped.toLocaleString("en")
  element("reconnects").textContent = state.reconnects.toLocaleString("en")
  element("cursor").textContent = state.storedCursor ?? "none"
  const error = element("error")
  error.textContent = state.error ?? ""
  error.className = state.error === null ? "mono" : "mono shown"
  element("loads").replaceChildren(...state.loads.map((load, i) => {
    const row = document.createElement("tr")
    for (const text of [i + 1, load.resumedFrom ?? "(start)", load.ids[0] ?? "", load.ids.at(-1) ?? "", load.count]) {
      const cell = document.createElement("td")
      cell.textContent = String(text)
      row.append(cell)
    }
    return row
  }))
}

// One render per frame however fast events come.
let renderQueued = false
const scheduleRender = () => {
  if (renderQueued) return
  renderQueued = true
  requestAnimationFrame(() => {
    renderQueued = false
    render()
  })
}

const listEvents = (events: ReadonlyArray<SseEvent>) => {
  const list = element("events")
  for (const event of events.slice(-listedEvents)) {
    const item = document.createElement("li")
    const id = document.createElement("span")
    id.className = "id mono"
    id.textContent = event.id ?? "–"
    const type = document.createElement("span")
    type.className = "type mono"
    type.textContent = event.event
    const data = document.createElement("span")
    data.className = "mono"
    data.textContent = event.data.length > 120 ? `${event.data.slice(0, 120)}…` : event.data
    item.append(id, type, data)
    list.prepend(item)
  }
  while (list.childElementCount > listedEvents) list.lastElementChild!.remove()
}

// --- The stream ---

const describe = (status: SseClient.ConnectionStatus): string => {
  switch (status.state) {
    case "connecting":
      return `connecting (attempt ${status.attempt})`
    case "connected":
      return "connected"
    case "reconnecting":
      return `reconnecting: ${status.reason}`
  }
}

/**
 * The session's Web Lock, held for the page's lifetime. Two tabs share the cursor
 * (localStorage) but not their records (sessionStorage): run at once, each would
 * commit past the other's events. The browser releases the lock when the tab
 * unloads, so unlike a store lease it never keeps a reload waiting. Without Web
 * Locks (not a secure context: http on a host other than loopback) the page runs
 * unguarded.
 */
const holdSessionLock = Effect.async<void>((resume, signal) => {
  if (navigator.locks === undefined) {
    console.warn("No Web Locks here (not a secure context): two tabs on one session would skip events")
    return resume(Effect.void)
  }
  // Never settles: the lock goes with the page.
  const hold = () => {
    resume(Effect.void)
    return new Promise<never>(() => {})
  }
  navigator.locks.request(lockName, { ifAvailable: true }, (lock) => {
    if (lock !== null) return hold()
    state.status = `waiting: another tab holds session ${sessionId}`
    scheduleRender()
    // An interrupted wait (the forget button) withdraws the request.
    navigator.locks.request(lockName, { signal }, hold).catch(() => {})
    return undefined
  })
})

const program = Effect.gen(function*() {
  yield* holdSessionLock
  const manager = yield* SessionManager.SessionManager
  const store = yield* CursorStore.CursorStore
  // Not held: a lease would outlive a reload and keep the next load waiting for it.
  const session = yield* manager.open(sessionId)
  const resumedFrom = Option.getOrNull(yield* session.tracker.lastEventId)
  state.storedCursor = resumedFrom
  const load = startLoad(resumedFrom)
  scheduleRender()

  // The client drops replays with a copy of the session's tracker; the session
  // moves only once a chunk's cursor and record are written (commitChunk).
  const clientTracker = yield* EventTracker.copy(session.tracker)
  const events = SseClient.stream(HttpClientRequest.get(url), {
    tracker: clientTracker,
    // No traceparent/b3 headers: a cross-origin GET then needs no preflight for them.
    tracePropagation: false,
    onConnection: (status) =>
      Effect.sync(() => {
        if (status.state === "reconnecting") state.reconnects++
        state.status = describe(status)
        scheduleRender()
      })
  })

  /**
   * The tab's record, then the cursor: without a yield between them (the store and
   * both storages are synchronous), so they land in one task and a reload cannot
   * fall between them. A cursor that cannot be written takes the record back, and a
   * record that cannot be written (sessionStorage full) fails before the cursor moves.
   */
  const commit = (chunk: SessionManager.ChunkCommit) =>
    Effect.suspend(() => {
      const before = { ids: load.ids, count: load.count, saved: sessionStorage.getItem(logKey) }
      const restore = Effect.sync(() => {
        load.ids = before.ids
        load.count = before.count
        if (before.saved === null) sessionStorage.removeItem(logKey)
        else sessionStorage.setItem(logKey, before.saved)
      })
      return Effect.try({
        try: () => {
          load.ids = load.ids.concat(chunk.events.map((event) => event.id ?? "")).slice(-maxLoggedIds)
          load.count += chunk.events.length
          saveLoads()
        },
        catch: (cause) => new RecordWriteError({ cause })
      }).pipe(
        Effect.zipRight(chunk.cursor === undefined ? Effect.void : store.saveAll([chunk.cursor])),
        Effect.onError(() => restore)
      )
    }).pipe(Effect.withMaxOpsBeforeYield(Number.MAX_SAFE_INTEGER))

  const show = (chunk: Chunk.Chunk<SseEvent>) =>
    manager.commitChunk(session, chunk, commit).pipe(
      Effect.zipRight(Effect.all([clientTracker.counts, session.tracker.lastEventId])),
      Effect.map(([counts, cursor]) => {
        const events = Array.from(chunk)
        state.delivered = load.count
        state.duplicatesDropped = counts.duplicates
        state.storedCursor = Option.getOrNull(cursor)
        listEvents(events)
        scheduleRender()
      })
    )

  yield* Stream.runForEachChunk(events, show)
  state.status = "ended (the server has no more events)"
  scheduleRender()
})

const layer = SessionManager.layer().pipe(
  Layer.provideMerge(PersistenceWorker.layer()),
  Layer.provideMerge(CursorStore.layerKeyValueStore),
  Layer.provide(BrowserKeyValueStore.layerLocalStorage),
  Layer.merge(FetchHttpClient.layer)
)

const main = Effect.runFork(
  program.pipe(
    Effect.scoped,
    Effect.provide(layer),
    Effect.catchAllCause((cause) =>
      Effect.sync(() => {
        const error = Cause.squash(cause)
        state.status = "failed"
        state.error = error instanceof Error ? error.message : Cause.pretty(cause)
        scheduleRender()
      })
    )
  )
)

element("url").textContent = url
// Stops the stream first, so no chunk stores a cursor again after it is removed.
element("forget").addEventListener("click", () => {
  Effect.runFork(
    Fiber.interrupt(main).pipe(
      Effect.zipRight(Effect.flatMap(CursorStore.CursorStore, (store) => store.remove(sessionId))),
      Effect.provide(Layer.provide(CursorStore.layerKeyValueStore, BrowserKeyValueStore.layerLocalStorage)),
      Effect.ensuring(Effect.sync(() => {
        sessionStorage.removeItem(logKey)
        location.reload()
      }))
    )
  )
})
