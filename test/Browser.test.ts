/**
 * The demo page in a real browser (headless Chromium, test/support/browser.ts): it
 * tails the demo server with SseClient over FetchHttpClient, its cursor in
 * localStorage, and is reloaded mid-stream. Read from the page: what each load
 * showed (`window.__sseDemo`), and the cursor as stored.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import type { Page } from "playwright-core"
import * as DemoServer from "../src/cli/DemoServer.js"
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
  readonly error: string | null
  /** The cursor in localStorage, as CursorStore.layerKeyValueStore wrote it. */
  readonly stored: { readonly lastEventId: string; readonly seq: number } | null
}

let browser: Browser
const pageScript = browserFound ? readFileSync(pageBundle, "utf8") : ""

/**
 * Waits until load `load` (0: the first) showed `events` events, or the page
 * failed; then reads the page's state, and the stored cursor in the same task.
 */
const shown = (page: Page, session: string, load: number, events: number) =>
  Effect.promise(async () => {
    await page.waitForFunction(
      ([load, events]) => {
        const demo = window.__sseDemo
        return demo !== undefined && (demo.error !== null || (demo.loads[load]?.count ?? 0) >= events)
      },
      [load, events] as const,
      { timeout: 20_000, polling: 50 }
    )
    return page.evaluate((session) => {
      const demo = window.__sseDemo
      const stored = localStorage.getItem(`effect-sse-resume/cursor/${session}`)
      return JSON.parse(JSON.stringify({ ...demo, stored: stored === null ? null : JSON.parse(stored) }))
    }, session) as Promise<PageState>
  })

/** Every id across the loads, in order: 1, 2, 3, … with none twice and none missing. */
const expectExactlyOnceInOrder = (loads: ReadonlyArray<Load>) => {
  const all = loads.flatMap((load) => load.ids).map(Number)
  expect(all[0]).toBe(1)
  expect(all.every((id, i) => id === i + 1)).toBe(true)
  expect(loads.reduce((sum, load) => sum + load.count, 0)).toBe(all.length)
}

/** Opens the page, waits for `events`, reloads, waits for `events` more; the states before and after. */
const reloadMidStream = (pageUrl: string, session: string, events: number) =>
  Effect.gen(function*() {
    const page = yield* Effect.acquireRelease(
      Effect.promise(() => browser.context.newPage()),
      (page) => Effect.promise(() => page.close())
    )
    yield* Effect.promise(() => page.goto(pageUrl))
    const first = yield* shown(page, session, 0, events)
    expect(first.error).toBeNull()
    yield* Effect.promise(() => page.reload())
    const second = yield* shown(page, session, 1, events)
    expect(second.error).toBeNull()
    return { first, second }
  })

describe.skipIf(!browserFound)("the demo page in Chromium", () => {
  beforeAll(async () => {
    browser = await launch()
  })
  afterAll(async () => {
    await browser?.close()
  })

  it.scopedLive("a reload resumes after the stored cursor: every id once, in order, across both loads", () =>
    Effect.gen(function*() {
      const server = yield* DemoServer.make({ eventsPerSecond: 1_000, replayOverlap: 3, pageScript })
      const before = server.requests.length
      const { first, second } = yield* reloadMidStream(`${server.origin}/?session=resume`, "resume", 300)
      const [load1, load2] = second.loads
      expect(second.loads).toHaveLength(2)
      // The first load started from nothing; the second right after what the first showed.
      expect(load1!.resumedFrom).toBeNull()
      expect(load2!.resumedFrom).toBe(load1!.ids.at(-1))
      expect(Number(load2!.ids[0])).toBe(Number(load2!.resumedFrom) + 1)
      expectExactlyOnceInOrder(second.loads)
      expect(first.loads[0]!.ids).toEqual(load1!.ids.slice(0, first.loads[0]!.ids.length))
      // The server was asked for the stored cursor, replayed 3 events before it, and the tracker dropped them.
      expect(server.requests.slice(before)).toEqual([undefined, load2!.resumedFrom])
      expect(second.duplicatesDropped).toBe(3)
      // The stored cursor is the last id shown: written in the same task as the page's record.
      expect(second.stored?.lastEventId).toBe(load2!.ids.at(-1))
      expect(second.stored?.seq).toBe(load1!.count + load2!.count)
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
      const { second } = yield* reloadMidStream(`${server.origin}/?session=drops`, "drops", 700)
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
      const { second } = yield* reloadMidStream(pageUrl, "cors", 400)
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
        const page = yield* Effect.acquireRelease(
          Effect.promise(() => browser.context.newPage()),
          (page) => Effect.promise(() => page.close())
        )
        const url = encodeURIComponent(`${server.origin}/old`)
        yield* Effect.promise(() => page.goto(`${site.origin}/?session=${session}&url=${url}`))
        const state = yield* shown(page, session, 0, 100)
        expect(state.error).toBeNull()
        expectExactlyOnceInOrder(state.loads)
        // fetch hid the 307 (redirect: "manual"), so the GET went again for the browser to follow.
        const streamPaths = server.seen.map((r) => `${r.method} ${r.path}`).filter((r) => /^GET \/(old|events)/.test(r))
        expect(streamPaths.slice(0, 3)).toEqual(["GET /old", "GET /old", "GET /events"])
      }
    }))
})
