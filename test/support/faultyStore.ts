/** Wraps a real store so tests can make its writes fail or stall; reads stay real. */
import { Deferred, Effect, Layer } from "effect"
import { type Cursor, CursorStore, CursorStoreError } from "../../src/store/CursorStore.js"

export interface Faults {
  /** While true, every saveAll fails. */
  failing: boolean
  /** While set, every saveAll waits for it. */
  stall: Deferred.Deferred<void> | undefined
  /** Every saveAll call, successful or not, with its cursors. */
  readonly calls: Array<ReadonlyArray<Cursor>>
}

export const faults = (): Faults => ({ failing: false, stall: undefined, calls: [] })

export const faulty = (f: Faults): Layer.Layer<CursorStore, never, CursorStore> =>
  Layer.effect(
    CursorStore,
    Effect.map(CursorStore, (real) =>
      CursorStore.of({
        ...real,
        saveAll: (cursors) =>
          Effect.suspend(() => {
            const batch = Array.from(cursors)
            f.calls.push(batch)
            const stalled = f.stall === undefined ? Effect.void : Deferred.await(f.stall)
            return Effect.zipRight(
              stalled,
              Effect.suspend(() =>
                f.failing
                  ? Effect.fail(new CursorStoreError({ operation: "save", cause: "injected fault" }))
                  : real.saveAll(batch)
              )
            )
          })
      }))
  )
