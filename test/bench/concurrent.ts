/**
 * Many concurrent SSE streams into one process: CPU time per event and heap per
 * open stream, `SseClient` side by side with plain `fetch` + `eventsource-parser`
 * (the floor of any client that parses) and the `eventsource` npm client.
 *
 *   npx tsx test/bench/concurrent.ts                      (10,000 streams, 50,000 events/s, 3 rounds)
 *   npx tsx test/bench/concurrent.ts --streams 1000       (quick: 1,000 streams, 5,000 events/s)
 *
 * Options: --streams N (10000), --rate EVENTS_PER_S (5 per stream), --rounds R (3),
 * --warmup S (3), --window S (5), --batch N (1000: streams opened at a time),
 * --kinds "a,b" (default all), --snapshot DIR (heap snapshots, at the baseline
 * and with the streams open, for test/bench/concurrent-heap.mjs),
 * --profile DIR (a CPU profile of the steady window, for concurrent-profile.mjs),
 * --client-flags="..." (more node flags for the client processes, e.g. --client-flags=--max-semi-space-size=64).
 *
 * The server (concurrent-server.mjs) runs in a process of its own, fresh for each
 * client run, and so does each client (concurrent-client.ts, bundled by esbuild
 * without keepNames, as a user's build would run it), so heaps never mix. Every
 * stream gets ~5 events/s, one event (~100 B, with an id) per write, spread over
 * time. Each round runs every kind once, in rotated order.
 *
 * Measured per run:
 * - the server's open sockets (every stream really is its own connection: no
 *   pool limit queued any) and the events/s it achieved in the window;
 * - client CPU (process.cpuUsage: user + system, all threads) in the window,
 *   divided by the events received in it;
 * - heap per stream: heapUsed after two global GCs with the streams open, minus
 *   the same before any was opened, over the streams; RSS and external +
 *   arrayBuffers the same way;
 * - delivery: after the server pauses, each stream's received count must equal
 *   what the server wrote to it, and no stream may have reconnected (the run
 *   exits with 1 otherwise, or when a stream had no socket of its own);
 * - why the CPU figure is what it is: events per socket read (1.00 means one
 *   event per chunk, the case the issue is about; a client that falls behind gets
 *   several), the share of time in GC pauses and the longest event-loop stall.
 * With --profile the profiler runs in the window, so that run's CPU figures include its cost.
 */
import * as esbuild from "esbuild"
import { type ChildProcess, fork } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"

const kinds = [
  "SseClient undici",
  "SseClient node:http",
  "SseClient fetch",
  "fetch + eventsource-parser",
  "eventsource"
]
const floor = "fetch + eventsource-parser"

const here = Path.dirname(fileURLToPath(import.meta.url))
const root = Path.resolve(here, "../..")

const { values: args } = parseArgs({
  options: {
    streams: { type: "string", default: "10000" },
    rate: { type: "string" },
    rounds: { type: "string", default: "3" },
    warmup: { type: "string", default: "3" },
    window: { type: "string", default: "5" },
    batch: { type: "string", default: "1000" },
    kinds: { type: "string" },
    snapshot: { type: "string" },
    profile: { type: "string" },
    "client-flags": { type: "string" }
  }
})
const streams = Number(args.streams)
const rate = args.rate === undefined ? 5 * streams : Number(args.rate)
const rounds = Number(args.rounds)
const warmupMillis = Number(args.warmup) * 1000
const windowMillis = Number(args.window) * 1000
const batch = Number(args.batch)
const chosen = args.kinds === undefined ? kinds : args.kinds.split(",").map((kind) => kind.trim())
for (const kind of chosen) if (!kinds.includes(kind)) throw new Error(`unknown kind ${kind}; kinds: ${kinds.join(", ")}`)

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

/**
 * The client bundled next to node_modules (so its bare imports resolve), without
 * keepNames; named by this run's pid, so two runs (two checkouts comparing
 * versions over one node_modules) never run each other's client.
 */
const bundle = async (): Promise<string> => {
  const outfile = Path.join(root, `node_modules/.cache/effect-sse-resume-bench/concurrent-client-${process.pid}.mjs`)
  process.on("exit", () => Fs.rmSync(outfile, { force: true }))
  await esbuild.build({
    entryPoints: [Path.join(here, "concurrent-client.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    outfile,
    logLevel: "warning"
  })
  return outfile
}

type Message = { type: string; [key: string]: any }

/** A forked child and a way to ask it something and await its answer (answers come in order). */
const child = (process: ChildProcess) => {
  const waiting = new Map<string, Array<(message: Message) => void>>()
  const early = new Map<string, Array<Message>>()
  process.on("message", (message: Message) => {
    const waiter = waiting.get(message.type)?.shift()
    if (waiter !== undefined) return waiter(message)
    early.set(message.type, [...(early.get(message.type) ?? []), message])
  })
  let exited: string | undefined
  const rejections = new Set<(error: Error) => void>()
  process.on("exit", (code, signal) => {
    exited = `exited (${code ?? signal})`
    for (const reject of rejections) reject(new Error(`child ${exited}`))
  })
  const next = (type: string, timeoutMillis = 180_000): Promise<Message> => {
    const queued = early.get(type)?.shift()
    if (queued !== undefined) return Promise.resolve(queued)
    if (exited !== undefined) return Promise.reject(new Error(`child ${exited} before "${type}"`))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${type}" within ${timeoutMillis} ms`)), timeoutMillis)
      rejections.add(reject)
      waiting.set(type, [...(waiting.get(type) ?? []), (message) => {
        clearTimeout(timer)
        rejections.delete(reject)
        resolve(message)
      }])
    })
  }
  return {
    next,
    ask: (type: string, answer = type, extra: Record<string, unknown> = {}) => {
      process.send({ type, ...extra })
      return next(answer)
    },
    kill: () => process.kill("SIGKILL")
  }
}

interface Result {
  readonly kind: string
  readonly sockets: number
  readonly openSeconds: number
  readonly sentPerSecond: number
  readonly receivedPerSecond: number
  readonly cpuMicrosPerEvent: number
  readonly cpuShare: number
  readonly eventsPerRead: number
  /** The client's longest event-loop stall in the window (ms), and its share of time in GC pauses. */
  readonly longestStall: number
  readonly gcShare: number
  /** The part of gcShare in scavenges (minor GCs). */
  readonly minorGcShare: number
  readonly serverCpuShare: number
  readonly heapPerStream: number
  readonly rssPerStream: number
  readonly externalPerStream: number
  readonly eventsPerStreamAtHeap: number
  readonly delivered: number
  readonly mismatched: number
  readonly repeats: number
  readonly failures: number
}

const cpuMicros = (cpu: NodeJS.CpuUsage) => cpu.user + cpu.system

const runOne = async (clientFile: string, kind: string, round: number): Promise<Result> => {
  const serverProcess = fork(Path.join(here, "concurrent-server.mjs"), [String(streams), String(rate)], {
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })
  const server = child(serverProcess)
  const { port } = await server.next("listening")
  const slug = kind.replace(/[^a-z0-9]+/gi, "-").toLowerCase()
  const clientProcess = fork(clientFile, [kind, `http://127.0.0.1:${port}/`, String(streams)], {
    execArgv: ["--expose-gc", ...(args["client-flags"]?.split(" ").filter((flag) => flag !== "") ?? [])],
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })
  const client = child(clientProcess)
  try {
    const baseline = (await client.next("baseline")).memory as NodeJS.MemoryUsage
    if (args.snapshot !== undefined) {
      await client.ask("snapshot", "snapshot", { path: Path.join(args.snapshot, `${slug}-${round}-baseline.heapsnapshot`) })
    }
    const openedAt = performance.now()
    for (let from = 0; from < streams; from += batch) {
      const to = Math.min(streams, from + batch)
      await client.ask("open", "open", { from, to })
      while ((await server.ask("mark")).requests < to) {
        if (performance.now() - openedAt > 120_000) throw new Error(`${kind}: streams ${from}–${to} did not all reach the server`)
        await sleep(20)
      }
    }
    const openSeconds = (performance.now() - openedAt) / 1000
    await server.ask("go")
    await sleep(warmupMillis)
    const s0 = await server.ask("mark")
    const c0 = await client.ask("mark")
    if (args.profile !== undefined) await client.ask("profile-start")
    await sleep(windowMillis)
    const c1 = await client.ask("mark")
    const s1 = await server.ask("mark")
    if (args.profile !== undefined) {
      await client.ask("profile-stop", "profile-stop", { path: Path.join(args.profile, `${slug}-${round}.cpuprofile`) })
    }
    const heap = (await client.ask("heap")).memory as NodeJS.MemoryUsage
    const eventsAtHeap = (await client.ask("mark")).received
    if (args.snapshot !== undefined) {
      await client.ask("snapshot", "snapshot", { path: Path.join(args.snapshot, `${slug}-${round}.heapsnapshot`) })
    }
    // Stop writing, let what is in flight (or queued behind a saturated client) arrive, then compare stream by stream.
    await server.ask("pause")
    const sent = (await server.ask("mark")).total
    const drainedAt = performance.now()
    while ((await client.ask("mark")).received < sent && performance.now() - drainedAt < 60_000) await sleep(100)
    const written: Array<number> = (await server.ask("counts")).written
    const { counts, failures } = await client.ask("counts")
    let mismatched = 0
    let delivered = 0
    for (let i = 0; i < streams; i++) {
      if (counts[i] !== written[i]) mismatched++
      delivered += counts[i]
    }
    const events = c1.received - c0.received
    const cpu = cpuMicros(c1.cpu) - cpuMicros(c0.cpu)
    return {
      kind,
      sockets: s1.sockets,
      openSeconds,
      sentPerSecond: (s1.total - s0.total) / ((s1.at - s0.at) / 1000),
      receivedPerSecond: events / ((c1.at - c0.at) / 1000),
      cpuMicrosPerEvent: cpu / events,
      cpuShare: cpu / ((c1.at - c0.at) * 1000),
      eventsPerRead: events / (c1.reads - c0.reads),
      longestStall: c1.stall,
      gcShare: (c1.gcMillis - c0.gcMillis) / (c1.at - c0.at),
      minorGcShare: (c1.minorGcMillis - c0.minorGcMillis) / (c1.at - c0.at),
      serverCpuShare: (cpuMicros(s1.cpu) - cpuMicros(s0.cpu)) / ((s1.at - s0.at) * 1000),
      heapPerStream: (heap.heapUsed - baseline.heapUsed) / streams,
      rssPerStream: (heap.rss - baseline.rss) / streams,
      externalPerStream: (heap.external + heap.arrayBuffers - baseline.external - baseline.arrayBuffers) / streams,
      eventsPerStreamAtHeap: eventsAtHeap / streams,
      delivered,
      mismatched,
      repeats: s1.repeats,
      failures
    }
  } finally {
    if (args.profile !== undefined || args.snapshot !== undefined) {
      clientProcess.send({ type: "exit" })
      await new Promise((resolve) => clientProcess.once("exit", resolve))
    } else {
      client.kill()
    }
    server.kill()
  }
}

const median = (xs: Array<number>) => {
  const sorted = xs.slice().sort((a, b) => a - b)
  const middle = sorted.length / 2
  return sorted.length % 2 === 1 ? sorted[Math.floor(middle)]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** Median, and the range over rounds when there is more than one. */
const spread = (xs: Array<number>, digits: number, unit = "") => {
  const show = (x: number) => x.toLocaleString("en", { minimumFractionDigits: digits, maximumFractionDigits: digits })
  if (xs.length === 1) return show(xs[0]!) + unit
  return `${show(median(xs))}${unit} (${show(Math.min(...xs))}–${show(Math.max(...xs))})`
}

const main = async () => {
  const clientFile = await bundle()
  for (const dir of [args.snapshot, args.profile]) if (dir !== undefined) Fs.mkdirSync(dir, { recursive: true })
  const results: Array<Array<Result>> = []
  const load = Fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")
  console.log(
    `\nConcurrent streams: ${streams.toLocaleString("en")} streams, ${rate.toLocaleString("en")} events/s in total ` +
      `(${(rate / streams).toFixed(1)} per stream, one ~100 B event per write), ${rounds} round(s) in rotated order, ` +
      `warm-up ${warmupMillis / 1000} s, window ${windowMillis / 1000} s; load average before: ${load}` +
      (args["client-flags"] === undefined ? "" : `; client flags ${args["client-flags"]}`)
  )
  for (let round = 0; round < rounds; round++) {
    const byKind: Array<Result> = []
    for (let k = 0; k < chosen.length; k++) {
      const kind = chosen[(k + round) % chosen.length]!
      const result = await runOne(clientFile, kind, round)
      byKind.push(result)
      const problems = [
        result.sockets !== streams && `${result.sockets} sockets open at the server`,
        result.mismatched > 0 && `${result.mismatched} streams received other than what was written`,
        result.repeats > 0 && `${result.repeats} reconnects`,
        result.failures > 0 && `${result.failures} client errors`
      ].filter(Boolean)
      console.log(
        `  round ${round + 1} ${kind}: ${result.sockets} sockets (opened in ${result.openSeconds.toFixed(1)} s), ${result.receivedPerSecond.toFixed(0)} events/s received ` +
          `(${result.sentPerSecond.toFixed(0)} sent), ${result.cpuMicrosPerEvent.toFixed(2)} µs CPU/event, ` +
          `${result.eventsPerRead.toFixed(2)} events/read, longest stall ${result.longestStall.toFixed(0)} ms, ` +
          `GC ${(100 * result.gcShare).toFixed(0)}% of the time (scavenges ${(100 * result.minorGcShare).toFixed(0)}%), client ${(100 * result.cpuShare).toFixed(0)}% CPU, server ${(100 * result.serverCpuShare).toFixed(0)}%, ${result.heapPerStream.toFixed(0)} B heap/stream, ${result.delivered} events delivered` +
          (problems.length > 0 ? ` — PROBLEM: ${problems.join("; ")}` : "")
      )
      if (problems.length > 0) process.exitCode = 1
    }
    results.push(byKind)
  }
  const of = (kind: string, pick: (result: Result) => number) =>
    results.map((round) => pick(round.find((result) => result.kind === kind)!))
  const ratio = (kind: string, pick: (result: Result) => number) =>
    results.map((round) =>
      pick(round.find((result) => result.kind === kind)!) / pick(round.find((result) => result.kind === floor)!)
    )
  const withFloor = chosen.includes(floor)
  console.log(
    `\n| client | server sockets | events/s sent → received | events/read | GC pauses (scavenges) | CPU µs/event | ×floor | client CPU | heap B/stream | ×floor | RSS B/stream | external+arrayBuffers B/stream | delivered exactly |`
  )
  console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
  for (const kind of chosen) {
    const exact = of(kind, (r) => r.mismatched + r.repeats + r.failures).every((n) => n === 0)
    console.log(
      `| ${kind} | ${spread(of(kind, (r) => r.sockets), 0)} | ${spread(of(kind, (r) => r.sentPerSecond), 0)} → ${
        spread(of(kind, (r) => r.receivedPerSecond), 0)
      } | ${spread(of(kind, (r) => r.eventsPerRead), 2)} | ${spread(of(kind, (r) => 100 * r.gcShare), 0, "%")}; ${median(of(kind, (r) => 100 * r.minorGcShare)).toFixed(0)}% | ${spread(of(kind, (r) => r.cpuMicrosPerEvent), 2)} | ${
        withFloor ? spread(ratio(kind, (r) => r.cpuMicrosPerEvent), 2, "×") : "–"
      } | ${spread(of(kind, (r) => 100 * r.cpuShare), 0, "%")} | ${spread(of(kind, (r) => r.heapPerStream), 0)} | ${
        withFloor ? spread(ratio(kind, (r) => r.heapPerStream), 2, "×") : "–"
      } | ${spread(of(kind, (r) => r.rssPerStream), 0)} | ${spread(of(kind, (r) => r.externalPerStream), 0)} | ${
        exact ? "yes" : "NO"
      } |`
    )
  }
  console.log(
    `\nHeap measured with ~${median(results.flat().map((r) => r.eventsPerStreamAtHeap)).toFixed(0)} events received per stream ` +
      `(SseClient's dedup window holds that many ids). Targets: SseClient CPU/event ≤ 1.5× floor, heap/stream ≤ 2× floor.`
  )
}

await main()
