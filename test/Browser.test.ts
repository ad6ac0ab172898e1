/**
 * The demo page in a real browser (headless Chromium, test/support/browser.ts): it
 * tails the demo server with SseClient over FetchHttpClient, its cursor in
 * localStorage, and is reloaded mid-stream. Read from the page: what each load
 * showed (`window.__sseDemo`), the cursor as stored, and whether the cursor and the
 * page's record ever disagreed between two tasks (`watchCommits`).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { readFileSync } from "node:fs"
import type { Page } from "playwright-core"
import * as DemoServer from "../src/cli/demo/DemoServer.js"
import { type Browser, browserFound, launch, noteBrowserSkip } from "./support/browser.js"
import { pageBundle } from "./support/cliBundle.js"

noteBrowserSkip("Browser")

interface Load {
  readonly resumedFrom: string | null
  readonly ids: ReadonlyArray<string>
  readonly count: number
}

interface PageState {
  readonly loads: ReadonlyArray<Load>
  readonly delivered: number
  readonly duplicatesDropped: number
  readonly reconnects: number
  readonly status: string
  readonly error: string | null
  /** Where the stored cursor and the page's record disagreed at a task's end (`watchCommits`). */
  readonly torn: ReadonlyArray<string>
  /** The cursor in localStorage, as CursorStore.layerKeyValueStore wrote it. */
  readonly stored: { readonly lastEventId: string; readonly seq: number } | null
}

let browser: Browser
const pageScript = browserFound ? readFileSync(pageBundle, "utf8") : ""

/**
 * Installed in the page before its script: after each storage write, a task queued
 * behind it compares the stored cursor with the last id of the page's record. The
 * page writes both in one task, so they agree whenever a task ends; a commit split
 * across tasks shows here even when no reload happens to fall into the split.
 */
const watchCommits = () => {
  const session = new URLSearchParams(location.search).get("session") ?? "demo"
  const cursorKey = `effect-sse-resume/cursor/${session}`
  const logKey = `sse-demo/${session}/loads`
  const torn: Array<string> = []
  ;(window as unknown as { __torn: Array<string> }).__torn = torn
  const check = new MessageChannel()
  let queued = false
  check.port1.onmessage = () => {
    queued = false
    const log = sessionStorage.getItem(logKey)
    if (log === null) return
    const last = (JSON.parse(log) as Array<Load>).at(-1)
    const recorded = last === undefined ? null : last.ids.at(-1) ?? last.resumedFrom
    const stored = localStorage.getItem(cursorKey)
    const cursor = stored === null ? null : (JSON.parse(stored) as { lastEventId: string }).lastEventId
    if (cursor !== recorded && torn.length < 10) torn.push(`cursor ${cursor}, record ${recorded}`)
  }
  const setItem = Storage.prototype.setItem
  Storage.prototype.setItem = function(key, value) {
    setItem.call(this, key, value)
    if (queued) return
    queued = true
    check.port2.postMessage(null)
  }
}

/**
 * Installed in the page before its script: fills a storage area to its quota but
 * about `reserve` characters, so the page's own writes soon fail as a full one's do.
 */
const fillStorage = ([area, reserve]: readonly ["localStorage" | "sessionStorage", number]) => {
  const storage = window[area]
  storage.setItem("reserve", "x".repeat(reserve))
  let n = 0
  for (let size = 1 << 20; size >= 16; size >>= 2) {
    try {
      for (;;) storage.setItem(`filler/${n++}`, "x".repeat(size))
    } catch {
      // Full at this size: on with smaller ones.
    }
  }
  storage.removeItem("reserve")
}

/** A new tab, watched by `watchCommits`, its storage filled first if `full` says so; closed with the scope. */
const openPage = (url: string, full?: Parameters<typeof fillStorage>[0]) =>
  Effect.gen(function*() {
    const page = yield* Effect.acquireRelease(
      Effect.promise(() => browser.context.newPage()),
      (page) => Effect.promise(() => page.close())
    )
    if (full !== undefined) yield* Effect.promise(() => page.addInitScript(fillStorage, full))
    yield* Effect.promise(() => page.addInitScript(watchCommits))
    yield* Effect.promise(() => page.goto(url))
    return page
  })

/** The page's state, and the stored cursor read in the same task. */
const read = (page: Page, session: string) =>
  Effect.promise(() =>
    page.evaluate((session) => {
      const demo = window.__sseDemo
      const stored = localStorage.getItem(`effect-sse-resume/cursor/${session}`)
      const torn = (window as unknown as { __torn: Array<string> }).__torn
      return JSON.parse(JSON.stringify({ ...demo, torn, stored: stored === null ? null : JSON.parse(stored) }))
    }, session) as Promise<PageState>
  )

/** Waits until the page's status starts with `prefix`. */
const status = (page: Page, prefix: string) =>
  Effect.promise(() =>
    page.waitForFunction((prefix) => window.__sseDemo?.status.startsWith(prefix) === true, prefix, {
      timeout: 20_000,
      polling: 50
    })
  )

/**
 * Waits until load `load` (0: the first) showed `events` events, or the page
 * failed; then reads the page's state, and the stored cursor in the same task.
 */
const shown = (page: Page, session: string, load: number, events: number) =>
  Effect.promise(() =>
    page.waitForFunction(
      ([load, events]) => {
        const demo = window.__sseDemo
        return demo !== undefined && (demo.error !== null || (demo.loads[load]?.count ?? 0) >= events)
      },
      [load, events] as const,
      { timeout: 20_000, polling: 50 }
    )
  ).pipe(Effect.zipRight(read(page, session)))

/** Every id across the loads, in order: 1, 2, 3, … with none twice and none missing. */
const expectExactlyOnceInOrder = (loads: ReadonlyArray<Load>) => {
  const all = loads.flatMap((load) => load.ids).map(Number)
  expect(all[0]).toBe(1)
  expect(all.every((id, i) => id === i + 1)).toBe(true)
  expect(loads.reduce((sum, load) => sum + load.count, 0)).toBe(all.length)
}

/**
 * Opens the page and reloads it after each count of `events` shown by a load; the
 * states before the first reload and after the last load's count.
 */
const reloadMidStream = (pageUrl: string, session: string, events: ReadonlyArray<number>) =>
  Effect.gen(function*() {
    const page = yield* openPage(pageUrl)
    const first = yield* shown(page, session, 0, events[0]!)
    expect(first.error).toBeNull()
    expect(first.torn).toEqual([])
    let last = first
    for (let load = 1; load < events.length; load++) {
      yield* Effect.promise(() => page.reload())
      last = yield* shown(page, session, load, events[load]!)
      expect(last.error).toBeNull()
      expect(last.torn).toEqual([])
    }
    return { first, last }
  })

describe.skipIf(!browserFound)("the demo page in Chromium", () => {
  beforeAll(async () => {
    browser = await launch()
  })
  afterAll(async () => {
    await browser?.close()
  })

  it.scopedLive("reloads resume after the stored cursor: every id once, in order, across the loads", () =>
    Effect.gen(function*() {
      const server = yield* DemoServer.make({ eventsPerSecond: 1_000, replayOverlap: 3, pageScript })
      const before = server.requests.length
      // Four reloads, each after a different count, so they fall at different points of a chunk's commit.
      const { first, last } = yield* reloadMidStream(`${server.origin}/?session=resume`, "resume", [
        230,
        90,
        170,
        55,
        120
      ])
      const loads = last.loads
      expect(loads).toHaveLength(5)
      // The first load started from nothing; each next one right after what the one before showed.
      expect(loads[0]!.resumedFrom).toBeNull()
      for (let i = 1; i < loads.length; i++) {
        expect(loads[i]!.resumedFrom).toBe(loads[i - 1]!.ids.at(-1))
        expect(Number(loads[i]!.ids[0])).toBe(Number(loads[i]!.resumedFrom) + 1)
      }
      expectExactlyOnceInOrder(loads)
      expect(first.loads[0]!.ids).toEqual(loads[0]!.ids.slice(0, first.loads[0]!.ids.length))
      // The server was asked for each stored cursor, replayed 3 events before it, and the tracker dropped them.
      expect(server.requests.slice(before)).toEqual([undefined, ...loads.slice(1).map((load) => load.resumedFrom)])
      expect(last.duplicatesDropped).toBe(3)
      // The stored cursor is the last id shown: written in the same task as the page's record.
      expect(last.stored?.lastEventId).toBe(loads.at(-1)!.ids.at(-1))
      expect(last.stored?.seq).toBe(loads.reduce((sum, load) => sum + load.count, 0))
    }))

  it.scopedLive("the server cutting the connection every 200 events, with replayed overlap: exactly once across a reload", () =>
    Effect.gen(function*() {
      const server = yield* DemoServer.make({
        eventsPerSecond: 2_000,
        dropEvery: 200,
        replayOverlap: 5,
        retryMillis: 50,
        pageScript
      })
      const { last: second } = yield* reloadMidStream(`${server.origin}/?session=drops`, "drops", [700, 700])
      expectExactlyOnceInOrder(second.loads)
      expect(second.loads[1]!.resumedFrom).toBe(second.loads[0]!.ids.at(-1))
      // This load's own reconnects, each resumed with the last id it had.
      expect(second.reconnects).toBeGreaterThanOrEqual(2)
      expect(second.duplicatesDropped).toBeGreaterThanOrEqual(5 * second.reconnects)
      const resumed = server.requests.filter((id) => id !== undefined).map(Number)
      expect(resumed.length).toBeGreaterThanOrEqual(6)
      expect(second.stored?.lastEventId).toBe(second.loads[1]!.ids.at(-1))
    }))

  it.scopedLive("a page of another origin: CORS, and reconnects with Last-Event-ID (a preflighted header)", () =>
    Effect.gen(function*() {
      const site = yield* DemoServer.make({ pageScript })
      const stream = yield* DemoServer.make({ eventsPerSecond: 2_000, dropEvery: 150, retryMillis: 50 })
      const pageUrl = `${site.origin}/?session=cors&url=${encodeURIComponent(stream.url)}`
      const { last: second } = yield* reloadMidStream(pageUrl, "cors", [400, 400])
      expectExactlyOnceInOrder(second.loads)
      expect(second.reconnects).toBeGreaterThanOrEqual(1)
      // The stream's server answered the browser's preflight, and the resumes came through: Chromium
      // checks each reconnect's Last-Event-ID against the allowed headers of a preflight (cached
      // for 5 s, so not every reconnect asks again); without Last-Event-ID allowed they fail.
      const preflights = stream.seen.filter((r) => r.method === "OPTIONS")
      expect(preflights.length).toBeGreaterThanOrEqual(1)
      // Only Last-Event-ID needs one: the first GET goes without a preflight (no trace or
      // Cache-Control header of ours), and every preflight asks for that header alone.
      expect(stream.seen[0]).toMatchObject({ method: "GET", path: "/events", lastEventId: undefined })
      expect(new Set(preflights.map((r) => r.requestHeaders))).toEqual(new Set(["last-event-id"]))
      expect(stream.requests.filter((id) => id !== undefined).length).toBeGreaterThanOrEqual(2)
      expect(stream.requests).toContain(second.loads[1]!.resumedFrom)
      // The page's own server served the page only.
      expect(site.requests).toEqual([])
    }))

  it.scopedLive("a redirect (307 /old → /events), same origin and cross-origin, is followed by the browser", () =>
    Effect.gen(function*() {
      const site = yield* DemoServer.make({ eventsPerSecond: 1_000, pageScript })
      const other = yield* DemoServer.make({ eventsPerSecond: 1_000 })
      for (const [session, server] of [["same", site], ["cross", other]] as const) {
        const url = encodeURIComponent(`${server.origin}/old`)
        const page = yield* openPage(`${site.origin}/?session=${session}&url=${url}`)
        const state = yield* shown(page, session, 0, 100)
        expect(state.error).toBeNull()
        expectExactlyOnceInOrder(state.loads)
        // fetch hid the 307 (redirect: "manual"), so the GET went again for the browser to follow.
        const streamPaths = server.seen.map((r) => `${r.method} ${r.path}`).filter((r) => /^GET \/(old|events)/.test(r))
        expect(streamPaths.slice(0, 3)).toEqual(["GET /old", "GET /old", "GET /events"])
      }
    }))

  it.scopedLive("two tabs on one session: the second waits for the first's Web Lock, then resumes where it stopped", () =>
    Effect.gen(function*() {
      const site = yield* DemoServer.make({ pageScript })
      // Tab A's server has 400 events, so A's record is final before the tab closes; tab B's goes on.
      const ending = yield* DemoServer.make({ eventsPerSecond: 1_000, totalEvents: 400 })
      const endless = yield* DemoServer.make({ eventsPerSecond: 1_000 })
      const tab = (server: DemoServer.DemoServer) =>
        `${site.origin}/?session=tabs&url=${encodeURIComponent(server.url)}`
      const scopeA = yield* Scope.make()
      const a = yield* openPage(tab(ending)).pipe(Scope.extend(scopeA))
      yield* shown(a, "tabs", 0, 100)
      const b = yield* openPage(tab(endless))
      yield* status(b, "waiting")
      // A runs on to its server's last event while B waits: B opened nothing and recorded nothing.
      const stateA = yield* shown(a, "tabs", 0, 400)
      const waiting = yield* read(b, "tabs")
      expect(waiting.status).toBe("waiting: another tab holds session tabs")
      expect(waiting.loads).toEqual([])
      expect(endless.requests).toEqual([])
      expect(stateA.loads[0]!.count).toBe(400)
      // Closing A releases its lock: B takes over from A's cursor.
      yield* Scope.close(scopeA, Exit.void)
      const stateB = yield* shown(b, "tabs", 0, 200)
      expect(stateB.error).toBeNull()
      expect(stateB.loads[0]!.resumedFrom).toBe("400")
      expect(endless.requests[0]).toBe("400")
      expectExactlyOnceInOrder([...stateA.loads, ...stateB.loads])
      expect([...stateA.torn, ...stateB.torn]).toEqual([])
    }))

  it.scopedLive("sessionStorage full: the record's write fails before the cursor moves, so the cursor never passes the record", () =>
    Effect.gen(function*() {
      const server = yield* DemoServer.make({ eventsPerSecond: 1_000, pageScript })
      // Room for the record of a few hundred ids.
      const page = yield* openPage(`${server.origin}/?session=fullrecord`, ["sessionStorage", 1_500])
      yield* status(page, "failed")
      const state = yield* read(page, "fullrecord")
      expect(state.error).toMatch(/quota/i)
      const load = state.loads[0]!
      expect(load.count).toBeGreaterThan(50)
      expect(state.stored?.lastEventId).toBe(load.ids.at(-1))
      expect(state.torn).toEqual([])
    }))

  it.scopedLive("localStorage full: the cursor's write fails and the record written before it is taken back", () =>
    Effect.gen(function*() {
      const server = yield* DemoServer.make({ eventsPerSecond: 1_000, pageScript })
      const page = yield* openPage(`${server.origin}/?session=fullcursor`, ["localStorage", 0])
      yield* status(page, "failed")
      const state = yield* read(page, "fullcursor")
      expect(state.stored).toBeNull()
      // In memory and in sessionStorage: the load showed nothing.
      expect(state.loads).toEqual([{ resumedFrom: null, ids: [], count: 0 }])
      const saved = yield* Effect.promise(() => page.evaluate(() => sessionStorage.getItem("sse-demo/fullcursor/loads")))
      expect(JSON.parse(saved!)).toEqual(state.loads)
      expect(server.requests).toHaveLength(1)
    }))
})
