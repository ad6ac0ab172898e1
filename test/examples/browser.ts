/**
 * The example of docs/BROWSER.md ("In the browser"), type-checked by `npx tsc --noEmit`
 * (the demo page, src/cli/demo/ui/page.ts, is the same program run in Chromium by
 * test/Browser.test.ts). In docs/BROWSER.md the import below reads `from "effect-sse-resume"`;
 * test/ReadmeExamples.test.ts checks the two are otherwise the same.
 */
import { FetchHttpClient, HttpClientRequest } from "@effect/platform"
import { BrowserKeyValueStore } from "@effect/platform-browser"
import { Effect, Layer, Stream } from "effect"
import { CursorStore, EventTracker, PersistenceWorker, SessionManager, SseClient } from "../../src/index.js"

declare const render: (data: string) => void

const Sessions = SessionManager.layer().pipe(
  Layer.provideMerge(PersistenceWorker.layer()),
  Layer.provideMerge(CursorStore.layerKeyValueStore),
  Layer.provide(BrowserKeyValueStore.layerLocalStorage)
)

export const tail = Effect.gen(function*() {
  // open, not hold: a page unload runs no finalizer, so a lease would outlive the reload.
  const session = yield* (yield* SessionManager.SessionManager).open("news-feed")
  const tracker = yield* EventTracker.copy(session.tracker)
  yield* SseClient.stream(HttpClientRequest.get("/events"), { tracker, tracePropagation: false }).pipe(
    Stream.runForEachChunk((events) =>
      Effect.zipRight(
        Effect.sync(() => {
          for (const event of events) render(event.data)
        }),
        session.tracker.recordAll(events)
      )
    )
  )
}).pipe(Effect.provide(Layer.merge(Sessions, FetchHttpClient.layer)))
