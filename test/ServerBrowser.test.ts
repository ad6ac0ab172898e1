/**
 * SseServer read by Chromium's native EventSource (headless, test/support/browser.ts):
 * a page that keeps what it saw and the last id in sessionStorage, and is reloaded
 * mid-stream; each load opens `new EventSource("/streams/page?lastEventId=<stored>")`,
 * since a native EventSource cannot be given a header.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Schedule, Stream } from "effect"
import type { Page } from "playwright-core"
import * as EventLog from "../src/server/EventLog.js"
import * as SseServer from "../src/server/SseServer.js"
import * as StreamProducer from "../src/server/StreamProducer.js"
import { type Browser, browserFound, launch, noteBrowserSkip } from "./support/browser.js"
import { serve } from "./support/logServer.js"

noteBrowserSkip("ServerBrowser")

let browser: Browser

/** The page: every event's data and the last id written in the same task, so a reload never splits them. */
const page = `<!doctype html><meta charset="utf-8"><title>reader</title><script>
const stored = sessionStorage.getItem("last")
const seen = JSON.parse(sessionStorage.getItem("seen") ?? "[]")
const loads = JSON.parse(sessionStorage.getItem("loads") ?? "[]")
loads.push({ resumedFrom: stored, before: seen.length })
sessionStorage.setItem("loads", JSON.stringify(loads))
const source = new EventSource("/streams/page" + (stored === null ? "" : "?lastEventId=" + encodeURIComponent(stored)))
window.__state = { seen: seen.length, closed: false, errors: [] }
source.onmessage = (event) => {
  seen.push(Number(event.data))
  sessionStorage.setItem("seen", JSON.stringify(seen))
  sessionStorage.setItem("last", event.lastEventId)
  window.__state.seen = seen.length
}
source.onerror = () => {
  // The stream completed: the response ended, the reconnect got 204, and the EventSource closed for good.
  if (source.readyState === EventSource.CLOSED) window.__state.closed = true
}
</script>`

const seenAtLeast = (tab: Page, count: number) =>
  Effect.promise(() =>
    tab.waitForFunction((count) => (window as any).__state?.seen >= count, count, { timeout: 20_000, polling: 20 })
  )

describe.skipIf(!browserFound)("SseServer in Chromium", () => {
  beforeAll(async () => {
    browser = await launch()
  })
  afterAll(async () => {
    await browser?.close()
  })

  it.scopedLive("a page reloaded mid-stream resumes through ?lastEventId=: each event once, in order, and 204 closes it", () =>
    Effect.gen(function*() {
      const total = 1_500
      const requested: Array<string> = []
      const app = yield* SseServer.make({
        stream: "page",
        authorize: (request) => Effect.sync(() => void requested.push(request.url)),
        retry: Duration.millis(50)
      })
      const served = yield* serve(
        HttpRouter.empty.pipe(
          HttpRouter.get("/", HttpServerResponse.html(page)),
          HttpRouter.get("/streams/page", app)
        )
      )
      const producers = yield* StreamProducer.StreamProducer
      // 10 events every 10 ms: paced by ticks, not per event, so a loaded machine's timers do not stretch it 10×.
      const source = Stream.range(1, total).pipe(
        Stream.map((n): EventLog.EventInput => ({ data: String(n) })),
        Stream.grouped(10),
        Stream.schedule(Schedule.spaced(Duration.millis(10))),
        Stream.flattenChunks
      )
      yield* producers.start("page", source, { epoch: 1 })

      const tab = yield* Effect.acquireRelease(
        Effect.promise(() => browser.context.newPage()),
        (tab) => Effect.promise(() => tab.close())
      )
      yield* Effect.promise(() => tab.goto(`${served.origin}/`))
      for (const count of [200, 530, 910]) {
        yield* seenAtLeast(tab, count)
        yield* Effect.promise(() => tab.reload())
      }
      yield* Effect.promise(() =>
        tab.waitForFunction(() => (window as any).__state?.closed === true, undefined, { timeout: 30_000, polling: 50 })
      )
      const state = yield* Effect.promise(() =>
        tab.evaluate(() => ({
          seen: JSON.parse(sessionStorage.getItem("seen") ?? "[]") as Array<number>,
          loads: JSON.parse(sessionStorage.getItem("loads") ?? "[]") as Array<{ resumedFrom: string | null; before: number }>
        }))
      )
      expect(state.seen).toEqual(Array.from({ length: total }, (_, i) => i + 1))
      expect(state.loads).toHaveLength(4)
      expect(state.loads[0]!.resumedFrom).toBeNull()
      // Each reload asked for the stream after the id it had stored, through the query parameter.
      for (const load of state.loads.slice(1)) {
        expect(load.resumedFrom).not.toBeNull()
        expect(requested).toContain(`/streams/page?lastEventId=${encodeURIComponent(load.resumedFrom!)}`)
      }
    }).pipe(Effect.provide(StreamProducer.layer), Effect.provide(EventLog.layerMemory())), 60_000)
})
