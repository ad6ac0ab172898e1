/**
 * The tracker's de-duplication window: the newest `capacity` admitted ids. A Set
 * for O(1) membership plus a ring of the same ids for O(1) eviction of the oldest.
 * Synchronous and Effect-free, so the tracker's hot path is plain code and the
 * window is unit-tested on its own.
 */

/**
 * How an id is kept. Ids in canonical decimal form below 10^9 (what most servers
 * send) are kept as small integers: V8 stores those inline, while a window of
 * fresh id strings from the parser keeps young strings alive from an old Set,
 * which measured as most of the client's per-event cost (GC scavenges). The
 * mapping is one-to-one: "007" or "1e3" stay strings.
 */
type Key = string | number

const keyOf = (id: string): Key => {
  const length = id.length
  if (length === 0 || length > 9) return id
  let n = 0
  for (let i = 0; i < length; i++) {
    const digit = id.charCodeAt(i) - 48
    if (digit < 0 || digit > 9 || (digit === 0 && i === 0 && length > 1)) return id
    n = n * 10 + digit
  }
  return n
}

/** The ring of every empty window, never written: `admit` gives a window its own first. */
const noKeys: Array<Key> = []

export class IdWindow {
  // Both made by the first admit: an empty Set and array cost ~180 bytes, and a
  // session manager keeps thousands of windows that may never see an event.
  private keys: Set<Key> | undefined = undefined
  private ring: Array<Key> = noKeys
  private head = 0

  constructor(readonly capacity: number) {}

  /** How many ids the window holds (never more than `capacity`). */
  get size(): number {
    return this.keys === undefined ? 0 : this.keys.size
  }

  has(id: string): boolean {
    return this.keys !== undefined && this.keys.has(keyOf(id))
  }

  /** Inserts `id`, evicting the oldest id when full; false (and no change) when `id` is already held. */
  admit(id: string): boolean {
    const key = keyOf(id)
    if (this.keys === undefined) {
      this.keys = new Set()
      this.ring = []
    } else if (this.keys.has(key)) {
      return false
    }
    if (this.ring.length < this.capacity) {
      this.ring.push(key)
    } else {
      this.keys.delete(this.ring[this.head]!)
      this.ring[this.head] = key
      this.head = this.head + 1 === this.capacity ? 0 : this.head + 1
    }
    this.keys.add(key)
    return true
  }

  /** Replaces the contents with the newest `capacity` of `ids` (given oldest first). */
  reset(ids: ReadonlyArray<string>): void {
    this.keys = undefined
    this.ring = noKeys
    this.head = 0
    for (let i = Math.max(0, ids.length - this.capacity); i < ids.length; i++) this.admit(ids[i]!)
  }

  /** The held ids, oldest first. */
  oldestFirst(): Array<string> {
    const keys = this.ring.length < this.capacity
      ? this.ring
      : this.ring.slice(this.head).concat(this.ring.slice(0, this.head))
    return keys.map(String)
  }
}
