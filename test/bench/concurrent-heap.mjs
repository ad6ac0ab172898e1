/**
 * Where the per-stream heap goes: two V8 heap snapshots of the same client
 * process (test/bench/concurrent.ts --snapshot DIR writes them), one before any
 * stream was opened and one with `streams` open, compared by kind of object.
 *
 *   node --max-old-space-size=8000 test/bench/concurrent-heap.mjs BASELINE SNAPSHOT STREAMS [TOP]
 *
 * Prints, per stream (the difference divided by `streams`): objects and shallow
 * bytes of each kind, largest first (these add up to the heap per stream), then
 * the retained bytes of the largest kinds (what one instance keeps alive that
 * nothing outside it does; nested instances of the same kind counted once).
 *
 * A kind is the constructor name; objects made by `Object.create(proto)` or as
 * literals (most of Effect's) are all "Object", so those are told apart by their
 * first property names (`Object{_op,effect_instruction_i0,…}`); closures by
 * function name and source line; strings, arrays and V8's own objects by type.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"

export const load = (file) => {
  const raw = JSON.parse(Fs.readFileSync(file, "utf8"))
  const meta = raw.snapshot.meta
  const nodeFields = meta.node_fields.length
  const edgeFields = meta.edge_fields.length
  const nodeTypes = meta.node_types[0]
  const edgeTypes = meta.edge_types[0]
  const nodes = raw.nodes
  const edges = raw.edges
  const strings = raw.strings
  const count = nodes.length / nodeFields
  const firstEdge = new Uint32Array(count + 1)
  for (let i = 0, e = 0; i < count; i++) {
    firstEdge[i] = e
    e += nodes[i * nodeFields + 4] * edgeFields
  }
  firstEdge[count] = edges.length
  const line = new Int32Array(count).fill(-1)
  const script = new Int32Array(count).fill(-1)
  const locationFields = meta.location_fields.length
  for (let i = 0; i < raw.locations.length; i += locationFields) {
    const node = raw.locations[i] / nodeFields
    script[node] = raw.locations[i + 1]
    line[node] = raw.locations[i + 2]
  }
  const weak = edgeTypes.indexOf("weak")
  const property = edgeTypes.indexOf("property")
  const internal = edgeTypes.indexOf("internal")
  const typeOf = (n) => nodeTypes[nodes[n * nodeFields]]
  const nameOf = (n) => strings[nodes[n * nodeFields + 1]]
  const selfSize = (n) => nodes[n * nodeFields + 3]
  const edgeName = (e) => {
    const value = edges[e + 1]
    const type = edges[e]
    return type === edgeTypes.indexOf("element") || type === edgeTypes.indexOf("hidden") ? String(value) : strings[value]
  }
  const target = (e) => edges[e + 2] / nodeFields
  /** The node an edge of `type` named `name` leads to, if any. */
  const follow = (n, type, name) => {
    for (let e = firstEdge[n]; e < firstEdge[n + 1]; e += edgeFields) {
      if (edges[e] === type && edgeName(e) === name) return target(e)
    }
    return -1
  }
  // Script names by script id, through closure → shared → script (named by its URL).
  const scriptNames = new Map()
  const scriptName = (n) => {
    const id = script[n]
    if (scriptNames.has(id)) return scriptNames.get(id)
    let name = "?"
    const shared = follow(n, internal, "shared")
    const scriptNode = shared === -1 ? -1 : follow(shared, internal, "script_or_debug_info")
    if (scriptNode !== -1) {
      const full = nameOf(scriptNode)
      const inModules = full.lastIndexOf("node_modules/")
      name = inModules >= 0 ? full.slice(inModules + 13).replace("/dist/esm/", "/") : Path.basename(full)
    }
    scriptNames.set(id, name)
    return name
  }
  const keyOf = (n) => {
    const type = typeOf(n)
    const name = nameOf(n)
    switch (type) {
      case "object": {
        if (name !== "Object") return name
        const names = []
        for (let e = firstEdge[n]; e < firstEdge[n + 1] && names.length < 4; e += edgeFields) {
          if (edges[e] !== property) continue
          const key = edgeName(e)
          if (key !== "__proto__") names.push(key)
        }
        return `Object{${names.join(",")}}`
      }
      case "closure":
        return `(closure) ${name || "anonymous"} ${line[n] >= 0 ? `${scriptName(n)}:${line[n] + 1}` : ""}`
      case "string":
      case "concatenated string":
      case "sliced string":
        return "(string)"
      case "number":
        return "(heap number)"
      default:
        return `(${type}) ${name.length > 60 ? name.slice(0, 60) + "…" : name}`
    }
  }
  const keys = new Array(count)
  for (let n = 0; n < count; n++) keys[n] = keyOf(n)
  return { count, nodes, nodeFields, edges, edgeFields, firstEdge, weak, keys, selfSize, target, edgeName, edgeTypes }
}

/**
 * Immediate dominators from the root (node 0), ignoring weak edges: the
 * iterative algorithm of Cooper, Harvey and Kennedy over a reverse postorder.
 */
export const dominators = (heap) => {
  const { count, edges, edgeFields, firstEdge, weak, target } = heap
  const order = new Int32Array(count).fill(-1)
  const postorder = new Int32Array(count)
  let visited = 0
  const stack = new Int32Array(count)
  const cursor = new Uint32Array(count)
  const seen = new Uint8Array(count)
  let top = 0
  stack[top++] = 0
  seen[0] = 1
  cursor[0] = firstEdge[0]
  while (top > 0) {
    const n = stack[top - 1]
    let pushed = false
    while (cursor[n] < firstEdge[n + 1]) {
      const e = cursor[n]
      cursor[n] += edgeFields
      if (edges[e] === weak) continue
      const to = target(e)
      if (seen[to] === 0) {
        seen[to] = 1
        cursor[to] = firstEdge[to]
        stack[top++] = to
        pushed = true
        break
      }
    }
    if (!pushed) {
      top--
      order[n] = visited
      postorder[visited++] = n
    }
  }
  // Predecessors, in compressed rows.
  const predecessorCount = new Uint32Array(count + 1)
  for (let n = 0; n < count; n++) {
    if (order[n] === -1) continue
    for (let e = firstEdge[n]; e < firstEdge[n + 1]; e += edgeFields) {
      if (edges[e] !== weak) predecessorCount[target(e) + 1]++
    }
  }
  for (let n = 0; n < count; n++) predecessorCount[n + 1] += predecessorCount[n]
  const predecessors = new Int32Array(predecessorCount[count])
  const fill = predecessorCount.slice(0, count)
  for (let n = 0; n < count; n++) {
    if (order[n] === -1) continue
    for (let e = firstEdge[n]; e < firstEdge[n + 1]; e += edgeFields) {
      if (edges[e] !== weak) predecessors[fill[target(e)]++] = n
    }
  }
  const idom = new Int32Array(count).fill(-1)
  idom[0] = 0
  const intersect = (a, b) => {
    while (a !== b) {
      while (order[a] < order[b]) a = idom[a]
      while (order[b] < order[a]) b = idom[b]
    }
    return a
  }
  for (let changed = true; changed;) {
    changed = false
    for (let i = visited - 2; i >= 0; i--) {
      const n = postorder[i]
      let dom = -1
      for (let p = predecessorCount[n]; p < predecessorCount[n + 1]; p++) {
        const pred = predecessors[p]
        if (order[pred] === -1 || idom[pred] === -1) continue
        dom = dom === -1 ? pred : intersect(pred, dom)
      }
      if (dom !== -1 && idom[n] !== dom) {
        idom[n] = dom
        changed = true
      }
    }
  }
  const retained = new Float64Array(count)
  for (let i = 0; i < visited; i++) {
    const n = postorder[i]
    retained[n] += heap.selfSize(n)
    if (n !== 0) retained[idom[n]] += retained[n]
  }
  return { idom, retained }
}

const tally = (heap) => {
  const byKey = new Map()
  for (let n = 0; n < heap.count; n++) {
    const entry = byKey.get(heap.keys[n]) ?? { count: 0, self: 0 }
    entry.count++
    entry.self += heap.selfSize(n)
    byKey.set(heap.keys[n], entry)
  }
  return byKey
}

/** Retained bytes of each kind in `wanted`, an instance inside another of its kind counted once. */
const retainedByKey = (heap, wanted) => {
  const { idom, retained } = dominators(heap)
  const out = new Map([...wanted].map((key) => [key, 0]))
  for (let n = 1; n < heap.count; n++) {
    const key = heap.keys[n]
    if (!out.has(key) || idom[n] === -1) continue
    let nested = false
    for (let up = idom[n], steps = 0; up !== 0 && steps < 10_000; up = idom[up], steps++) {
      if (heap.keys[up] === key) {
        nested = true
        break
      }
    }
    if (!nested) out.set(key, out.get(key) + retained[n])
  }
  return out
}

const main = (baselineFile, snapshotFile, streamsArg, topArg) => {
  if (snapshotFile === undefined || streamsArg === undefined) {
    console.error("usage: concurrent-heap.mjs BASELINE SNAPSHOT STREAMS [TOP]")
    process.exit(2)
  }
  const streams = Number(streamsArg)
  const top = Number(topArg ?? 45)
  const baseline = load(baselineFile)
  const snapshot = load(snapshotFile)
  const before = tally(baseline)
  const after = tally(snapshot)
  const rows = [...after].map(([key, { count, self }]) => {
    const old = before.get(key) ?? { count: 0, self: 0 }
    return { key, count: (count - old.count) / streams, self: (self - old.self) / streams }
  })
  rows.sort((a, b) => b.self - a.self)
  const total = rows.reduce((sum, row) => sum + row.self, 0)

  console.log(`\n${Path.basename(snapshotFile)} against ${Path.basename(baselineFile)}, ${streams} streams`)
  console.log(`shallow bytes per stream, all kinds: ${total.toFixed(0)}`)
  console.log("\n| kind | objects/stream | shallow B/stream | share |")
  console.log("|---|---|---|---|")
  for (const row of rows.slice(0, top)) {
    console.log(`| ${row.key.replaceAll("|", "\\|")} | ${row.count.toFixed(2)} | ${row.self.toFixed(0)} | ${(100 * row.self / total).toFixed(1)}% |`)
  }
  const wanted = new Set(rows.slice(0, top).map((row) => row.key))
  const retainedBefore = retainedByKey(baseline, wanted)
  const retainedAfter = retainedByKey(snapshot, wanted)
  const retainedRows = [...wanted].map((key) => ({
    key,
    retained: (retainedAfter.get(key) - retainedBefore.get(key)) / streams
  })).sort((a, b) => b.retained - a.retained)
  console.log("\n| kind | retained B/stream (outermost instances) |")
  console.log("|---|---|")
  for (const row of retainedRows.slice(0, 25)) console.log(`| ${row.key.replaceAll("|", "\\|")} | ${row.retained.toFixed(0)} |`)
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(Path.basename(process.argv[1]))) main(...process.argv.slice(2))
