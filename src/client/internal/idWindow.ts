/**
 * The tracker's de-duplication window: the newest `capacity` admitted ids. A hash
 * for O(1) membership plus a ring of the same ids for O(1) eviction of the oldest.
 * Synchronous and Effect-free, so the tracker's hot path is plain code and the
 * window is unit-tested on its own.
 */

/**
 * How an id is kept. Ids in canonical decimal form below 10^9 (what most servers
 * send) are kept as small integers, in a table of their own; other ids, as
 * strings, in a Set. The mapping is one-to-one: "007" or "1e3" stay strings.
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

/** The table and ring of every empty window, never written: a window gets its own first. */
const noSlots = new Int32Array(0)
/** The table's first size; it doubles past 3/4 full. */
const FIRST_SLOTS = 16

/**
 * Integer ids in an open-addressing table (linear probing, key + 1 stored, 0 for
 * empty, deletion by backward shift: no tombstones). Measured against a Set of
 * the same integers: a Set full of churn rebuilds its table every few thousand
 * inserts, and those ~300 KB tables are garbage the collector copies and
 * promotes; under a stream of 100 B events that was the client's largest cost.
 * A typed array is never scanned by the collector, and is a third of the size.
 */
class IntTable {
  private slots = noSlots
  private shift = 32
  size = 0

  has(key: number): boolean {
    const slots = this.slots
    if (slots.length === 0) return false
    const mask = slots.length - 1
    const stored = key + 1
    for (let i = this.home(key); ; i = (i + 1) & mask) {
      const at = slots[i]!
      if (at === stored) return true
      if (at === 0) return false
    }
  }

  /** Adds `key` unless it is held (one probe run for both); whether it was added. */
  addNew(key: number): boolean {
    if ((this.size + 1) * 4 > this.slots.length * 3) this.grow()
    const slots = this.slots
    const mask = slots.length - 1
    const stored = key + 1
    let i = this.home(key)
    for (let at = slots[i]!; at !== 0; at = slots[i]!) {
      if (at === stored) return false
      i = (i + 1) & mask
    }
    slots[i] = stored
    this.size++
    return true
  }

  delete(key: number): void {
    const slots = this.slots
    const mask = slots.length - 1
    const stored = key + 1
    let hole = this.home(key)
    while (slots[hole] !== stored) {
      if (slots[hole] === 0) return
      hole = (hole + 1) & mask
    }
    // Move back each later key of the run that may sit in the hole (its home is not between them).
    for (let j = (hole + 1) & mask; slots[j] !== 0; j = (j + 1) & mask) {
      if (((j - this.home(slots[j]! - 1)) & mask) >= ((j - hole) & mask)) {
        slots[hole] = slots[j]!
        hole = j
      }
    }
    slots[hole] = 0
    this.size--
  }

  private home(key: number): number {
    return Math.imul(key, 0x9e3779b1) >>> this.shift
  }

  private grow(): void {
    const old = this.slots
    const length = old.length === 0 ? FIRST_SLOTS : old.length * 2
    this.slots = new Int32Array(length)
    this.shift = 32 - Math.log2(length)
    this.size = 0
    for (let i = 0; i < old.length; i++) if (old[i] !== 0) this.addNew(old[i]! - 1)
  }
}

/** A ring slot holding a string id, which is then in `strings` at the same index. */
const STRING = -1

export class IdWindow {
  // All made by the first admit that needs them: a session manager keeps
  // thousands of windows that may never see an event.
  private numbers: IntTable | undefined = undefined
  private strings: Set<string> | undefined = undefined
  /**
   * The ring of held ids, oldest at `head` once full: integer keys in a typed
   * array (4 bytes each, where a JS array takes 8 and is scanned by the
   * collector), string ids beside them. It grows by doubling up to `capacity`.
   */
  private ring = noSlots
  private stringRing: Array<string | undefined> | undefined = undefined
  private count = 0
  private head = 0

  constructor(readonly capacity: number) {}

  /** How many ids the window holds (never more than `capacity`). */
  get size(): number {
    return this.count
  }

  has(id: string): boolean {
    return this.holds(keyOf(id))
  }

  /** Inserts `id`, evicting the oldest id when full; false (and no change) when `id` is already held. */
  admit(id: string): boolean {
    const key = keyOf(id)
    if (typeof key === "number") {
      if (!(this.numbers ??= new IntTable()).addNew(key)) return false
    } else {
      const strings = this.strings ??= new Set()
      if (strings.has(key)) return false
      strings.add(key)
    }
    let at: number
    if (this.count < this.capacity) {
      if (this.count === this.ring.length) this.grow()
      at = this.count++
    } else {
      // The oldest is not `key`, which was not held.
      at = this.head
      this.remove(at)
      this.head = this.head + 1 === this.capacity ? 0 : this.head + 1
    }
    if (typeof key === "number") {
      this.ring[at] = key
    } else {
      this.ring[at] = STRING
      ;(this.stringRing ??= [])[at] = key
    }
    return true
  }

  /** Replaces the contents with the newest `capacity` of `ids` (given oldest first). */
  reset(ids: ReadonlyArray<string>): void {
    this.numbers = undefined
    this.strings = undefined
    this.ring = noSlots
    this.stringRing = undefined
    this.count = 0
    this.head = 0
    for (let i = Math.max(0, ids.length - this.capacity); i < ids.length; i++) this.admit(ids[i]!)
  }

  /** The held ids, oldest first. */
  oldestFirst(): Array<string> {
    const ids: Array<string> = []
    for (let n = 0; n < this.count; n++) {
      const at = this.count < this.capacity ? n : (this.head + n) % this.capacity
      const key = this.ring[at]!
      ids.push(key === STRING ? this.stringRing![at]! : String(key))
    }
    return ids
  }

  private grow(): void {
    const ring = new Int32Array(Math.min(this.capacity, Math.max(FIRST_SLOTS, this.ring.length * 2)))
    ring.set(this.ring)
    this.ring = ring
  }

  private holds(key: Key): boolean {
    return typeof key === "number"
      ? this.numbers !== undefined && this.numbers.has(key)
      : this.strings !== undefined && this.strings.has(key)
  }

  /** Drops the id in ring slot `at` from the lookup. */
  private remove(at: number): void {
    const key = this.ring[at]!
    if (key !== STRING) {
      this.numbers!.delete(key)
    } else {
      this.strings!.delete(this.stringRing![at]!)
      this.stringRing![at] = undefined
    }
  }
}
