/**
 * EventTracker throughput, side by side with a plain-JS window (our practical limit)
 * and a port of the naive design (a deque scanned linearly), in one run.
 *
 *   npx tsx test/bench/tracker.ts            (part of `npm run bench`)
 *
 * Each variant's window is pre-filled with `window` ids (untimed); then a stream of
 * events with 10% replays (ids 5 back, always inside the window) is timed. The
 * best of several rounds is reported as events/s (other load on the machine only
 * ever slows a round down).
 */
import { Effect, Option } from "effect"
import { EventTracker, SseEvent } from "../../src/index.js"

const windows = [100, 1_000, 10_000, 100_000]
const eventsPerRound = 100_000
const rounds = 5
const chunkSize = 1_000

interface Recorder {
  /** Records all events one call per event; returns how many were new. */
  readonly perEvent: (events: ReadonlyArray<SseEvent>) => number
  /** Records all events one call per chunk of `chunkSize`. */
  readonly perChunk: (events: ReadonlyArray<SseEvent>) => number
  /** Fills the window with `ids` (untimed), the cheapest way the variant allows. */
  readonly fill: (ids: ReadonlyArray<string>) => void
}

const makeEvents = (start: number, count: number): Array<SseEvent> => {
  const events: Array<SseEvent> = []
  for (let i = 0; i < count; i++) {
    const n = i % 10 === 9 ? start + i - 5 : start + i
    events.push(new SseEvent({ id: `evt-${n}` }))
  }
  return events
}

const chunksOf = <A>(items: ReadonlyArray<A>): Array<ReadonlyArray<A>> => {
  const chunks: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += chunkSize) chunks.push(items.slice(i, i + chunkSize))
  return chunks
}

/** Set + ring with no Effect at all: what the window costs by itself. */
const plainBaseline = (capacity: number): Recorder => {
  const ids = new Set<string>()
  const ring: Array<string> = []
  let head = 0
  let last: string | undefined
  const admit = (id: string) => {
    if (ids.has(id)) return false
    if (ring.length < capacity) ring.push(id)
    else {
      ids.delete(ring[head]!)
      ring[head] = id
      head = (head + 1) % capacity
    }
    ids.add(id)
    last = id
    return true
  }
  const recordAll = (events: ReadonlyArray<SseEvent>) => {
    let fresh = 0
    for (const e of events) if (e.id !== undefined && admit(e.id)) fresh++
    return fresh
  }
  void last
  return {
    perEvent: recordAll,
    perChunk: (events) => chunksOf(events).reduce((n, c) => n + recordAll(c), 0),
    fill: (fill) => fill.forEach(admit)
  }
}

/**
 * The naive `record_event`: a deque scanned linearly, then push_back and pop_front.
 * Plain synchronous JS, which flatters it (the design it ports also takes two locks).
 */
const naivePort = (capacity: number): Recorder => {
  const seen: Array<string> = []
  let last: string | undefined
  const record = (e: SseEvent) => {
    const id = e.id
    if (id === undefined) return false
    if (seen.some((s) => s === id)) return false
    seen.push(id)
    if (seen.length > capacity) seen.shift()
    last = id
    return true
  }
  const recordAll = (events: ReadonlyArray<SseEvent>) => {
    let fresh = 0
    for (const e of events) if (record(e)) fresh++
    return fresh
  }
  void last
  return {
    perEvent: recordAll,
    perChunk: (events) => chunksOf(events).reduce((n, c) => n + recordAll(c), 0),
    fill: (fill) => void seen.push(...fill.slice(-capacity))
  }
}

const effectTracker = (options: EventTracker.Options): Recorder => {
  const tracker = Effect.runSync(EventTracker.make(options))
  return {
    perEvent: (events) => {
      const results = Effect.runSync(Effect.forEach(events, tracker.recordEvent))
      return results.filter((r) => r === "new").length
    },
    perChunk: (events) => {
      let fresh = 0
      Effect.runSync(Effect.forEach(chunksOf(events), (c) =>
        Effect.map(tracker.recordAll(c), (f) => {
          fresh += f.length
        }), { discard: true }))
      return fresh
    },
    fill: (ids) => Effect.runSync(tracker.restore({ lastEventId: Option.fromNullable(ids.at(-1)), recentIds: ids }))
  }
}

const eventSets = new Map<number, Array<SseEvent>>()
const eventsFor = (window: number) => {
  let events = eventSets.get(window)
  if (events === undefined) eventSets.set(window, events = makeEvents(window, eventsPerRound))
  return events
}

let sink = 0
const variants: ReadonlyArray<readonly [string, (capacity: number) => Recorder]> = [
  ["plain Set+ring (baseline)", plainBaseline],
  ["EventTracker, no callback", (maxTracked) => effectTracker({ maxTracked })],
  ["EventTracker, sync callback", (maxTracked) => effectTracker({ maxTracked, onNewEvent: (id) => void (sink += id.length) })],
  ["EventTracker, async callback", (maxTracked) => effectTracker({ maxTracked, onNewEventAsync: () => Effect.void })],
  ["card port (deque, linear scan)", naivePort]
]


/** Events/s of one variant and mode at one window size. */
const measure = (make: (capacity: number) => Recorder, mode: "perEvent" | "perChunk", window: number, linear: boolean) => {
  // The linear scan costs O(window) per event: fewer events keep its rounds short.
  const count = linear ? Math.max(200, Math.min(eventsPerRound, Math.floor(2e8 / window / 20))) : eventsPerRound
  const rates: Array<number> = []
  for (let round = 0; round < rounds; round++) {
    const recorder = make(window)
    recorder.fill(Array.from({ length: window }, (_, i) => `warm-${i}`))
    const events = eventsFor(window).slice(0, count)
    const started = performance.now()
    const fresh = recorder[mode](events)
    const seconds = (performance.now() - started) / 1000
    if (fresh !== count - Math.floor(count / 10)) throw new Error(`variant lost or repeated events: ${fresh}`)
    rates.push(count / seconds)
  }
  return Math.max(...rates)
}

const format = (n: number) => n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${(n / 1e3).toFixed(1)} k`

const rows: Array<string> = []
const results = new Map<string, number>()
for (const window of windows) {
  for (const [name, make] of variants) {
    for (const mode of ["perEvent", "perChunk"] as const) {
      const rate = measure(make, mode, window, name.startsWith("card"))
      results.set(`${name}|${mode}|${window}`, rate)
    }
  }
}

const header = `| variant | call | ${windows.map((w) => `window ${w.toLocaleString("en")}`).join(" | ")} |`
rows.push(header, `|---|---|${windows.map(() => "---:").join("|")}|`)
for (const [name] of variants) {
  for (const mode of ["perEvent", "perChunk"] as const) {
    const cells = windows.map((w) => {
      const rate = results.get(`${name}|${mode}|${w}`)!
      const base = results.get(`plain Set+ring (baseline)|perChunk|${w}`)!
      return `${format(rate)}/s (${(base / rate).toFixed(2)}× cost)`
    })
    rows.push(`| ${name} | ${mode === "perEvent" ? "recordEvent" : "recordAll ×1000"} | ${cells.join(" | ")} |`)
  }
}

const r = (name: string, mode: string, w: number) => results.get(`${name}|${mode}|${w}`)!
const checks = windows.map((w) => {
  const none = r("EventTracker, no callback", "perEvent", w)
  const sync = r("EventTracker, sync callback", "perEvent", w)
  const noneAll = r("EventTracker, no callback", "perChunk", w)
  const syncAll = r("EventTracker, sync callback", "perChunk", w)
  const base = r("plain Set+ring (baseline)", "perChunk", w)
  const card = r("card port (deque, linear scan)", "perChunk", w)
  return `window ${w}: sync/no-callback cost ${(none / sync).toFixed(2)}× (recordEvent), ${(noneAll / syncAll).toFixed(2)}× (recordAll); ` +
    `recordAll vs baseline ${(base / noneAll).toFixed(2)}×; recordEvent vs baseline ${(base / none).toFixed(2)}×; ` +
    `speed-up over card port ${(noneAll / card).toFixed(0)}×`
})
const scale = r("EventTracker, no callback", "perChunk", 100) / r("EventTracker, no callback", "perChunk", 100_000)

console.log(`EventTracker benchmark (${eventsPerRound.toLocaleString("en")} events/round, 10% replays, best of ${rounds} rounds; cost = baseline rate / rate)\n`)
console.log(rows.join("\n"))
console.log("\n" + checks.join("\n"))
console.log(`per-event cost at window 100,000 vs 100 (recordAll, no callback): ${scale.toFixed(2)}×`)
if (sink < 0) console.log(sink)
