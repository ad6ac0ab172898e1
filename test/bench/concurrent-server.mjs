/**
 * The SSE server of the concurrency benchmark (test/bench/concurrent.ts), run in
 * its own process so its CPU is not the client's. Forked with IPC; argv:
 * `streams rate`. Stream `i` is `GET /?s=i`; every open stream gets one event
 * every `streams / rate` seconds, each event (~100 B, with an id) in its own
 * write, so its own HTTP chunk and its own TCP segment (Nagle is off). The
 * streams take turns round-robin on a 5 ms tick, so each tick writes to a
 * different slice of them: events are spread in time, not sent in bursts.
 *
 * Messages in: `{ type: "mark" }` (answers with the counters), `{ type: "pause" }`
 * (stops writing, answers), `{ type: "counts" }` (events written per stream).
 */
import * as Http from "node:http"

const streams = Number(process.argv[2])
const rate = Number(process.argv[3])
const tickMillis = 5

/** Each stream's open response, or undefined while it is not connected. */
const open = new Array(streams).fill(undefined)
const written = new Float64Array(streams)
let sockets = 0
let maxSockets = 0
let requests = 0
/** A stream asked for twice: a client reconnected, which should not happen here. */
let repeats = 0
let total = 0
let paused = false
/** Writes the socket did not take at once (kernel buffer full: the client lags). */
let backlogged = 0

const padding = "y".repeat(40)

const server = Http.createServer((req, res) => {
  const slot = Number(new URL(req.url, "http://x").searchParams.get("s"))
  if (!(slot >= 0 && slot < streams)) return void res.writeHead(404).end()
  requests++
  if (open[slot] !== undefined || written[slot] > 0) repeats++
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" })
  res.flushHeaders()
  open[slot] = res
  res.on("close", () => {
    if (open[slot] === res) open[slot] = undefined
  })
})
server.on("connection", (socket) => {
  sockets++
  if (sockets > maxSockets) maxSockets = sockets
  socket.on("close", () => sockets--)
})
server.keepAliveTimeout = 0
server.headersTimeout = 0
server.requestTimeout = 0

let next = 0
let due = 0
let last = performance.now()
const tick = () => {
  const now = performance.now()
  due += (now - last) * rate / 1000
  last = now
  // Never more than one round of the streams per tick: a stalled loop does not burst.
  let budget = Math.min(Math.floor(due), streams)
  due -= budget
  if (due > streams) due = streams
  while (budget-- > 0) {
    const slot = next
    next = next + 1 === streams ? 0 : next + 1
    const res = open[slot]
    if (res === undefined || paused) continue
    const n = ++written[slot]
    if (!res.write(`id: ${n}\nevent: tick\ndata: {"s":${slot},"n":${n},"p":"${padding}"}\n\n`)) backlogged++
    total++
  }
}
setInterval(tick, tickMillis)

process.on("message", (message) => {
  switch (message.type) {
    case "mark":
      return process.send({
        type: "mark",
        at: performance.now(),
        total,
        sockets,
        maxSockets,
        requests,
        repeats,
        backlogged,
        cpu: process.cpuUsage()
      })
    case "pause":
      paused = true
      return process.send({ type: "paused" })
    case "counts":
      return process.send({ type: "counts", written: Array.from(written) })
  }
})

server.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, () => {
  process.send({ type: "listening", port: server.address().port })
})
