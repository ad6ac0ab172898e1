/**
 * The SSE server of the concurrency benchmark (test/bench/concurrent.ts), run in
 * its own process so its CPU is not the client's. Forked with IPC; argv:
 * `streams rate`. Stream `i` is `GET /?s=i`; every open stream gets one event
 * every `streams / rate` seconds, each event (~100 B, with an id) in its own
 * write, so its own HTTP chunk and its own TCP segment (Nagle is off). The
 * streams take turns round-robin on a 5 ms tick, so each tick writes to a
 * different slice of them: events are spread in time, not sent in bursts.
 *
 * It starts paused, so streams open without events racing them. Messages in:
 * `go` (start writing), `mark` (answers with the counters), `pause` (stops
 * writing), `counts` (events written per stream).
 */
import * as Net from "node:net"

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
let paused = true
/** Writes the socket did not take at once (kernel buffer full: the client lags). */
let backlogged = 0

const padding = "y".repeat(40)
const head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-store\r\n" +
  "transfer-encoding: chunked\r\n\r\n"

// A bare TCP server writing HTTP/1.1 by hand: node:http's ServerResponse costs
// more per write than the clients being measured, and this machine has two cores.
const server = Net.createServer({ noDelay: true }, (socket) => {
  sockets++
  if (sockets > maxSockets) maxSockets = sockets
  let request = ""
  let slot = -1
  socket.setEncoding("latin1")
  socket.on("data", (text) => {
    if (slot !== -1) return
    request += text
    if (!request.includes("\r\n\r\n")) return
    const match = /^GET \/\?s=(\d+) HTTP\/1\.1\r\n/.exec(request)
    slot = match === null ? streams : Number(match[1])
    if (!(slot < streams)) return void socket.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
    requests++
    if (open[slot] !== undefined || written[slot] > 0) repeats++
    socket.write(head)
    open[slot] = socket
  })
  socket.on("error", () => {})
  socket.on("close", () => {
    sockets--
    if (slot >= 0 && open[slot] === socket) open[slot] = undefined
  })
})

let next = 0
let due = 0
let last = performance.now()
const tick = () => {
  const now = performance.now()
  due += (now - last) * rate / 1000
  last = now
  // At most one event per stream per tick; what a late tick could not send is
  // carried over (up to a second's worth), so the rate holds on a busy machine.
  let budget = Math.min(Math.floor(due), streams)
  due = Math.min(due - budget, rate)
  while (budget-- > 0) {
    const slot = next
    next = next + 1 === streams ? 0 : next + 1
    const socket = open[slot]
    if (socket === undefined || paused) continue
    const n = ++written[slot]
    const event = `id: ${n}\nevent: tick\ndata: {"s":${slot},"n":${n},"p":"${padding}"}\n\n`
    // One HTTP chunk per event, in one write.
    if (!socket.write(`${event.length.toString(16)}\r\n${event}\r\n`, "latin1")) backlogged++
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
    case "go":
    case "pause":
      paused = message.type === "pause"
      return process.send({ type: message.type })
    case "counts":
      return process.send({ type: "counts", written: Array.from(written) })
  }
})

server.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, () => {
  process.send({ type: "listening", port: server.address().port })
})
