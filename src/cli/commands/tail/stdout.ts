/** Event lines to stdout, at the pace of its reader. */
import * as Effect from "effect/Effect"

/**
 * Writes to stdout, waiting for 'drain' when its buffer is full: that is what makes
 * a slow reader (a pipe) slow the stream. A reader that goes away (`| head`) stops
 * the run the way Ctrl-C does: quietly, with the cursor stored.
 */
export const stdoutWriter = (): ((text: string) => Effect.Effect<void>) => {
  let closed = false
  process.stdout.on("error", () => {
    closed = true
    process.stdout.emit("drain")
  })
  return (text) =>
    Effect.suspend(() =>
      closed ? Effect.interrupt : Effect.async<void>((resume) => {
        if (process.stdout.write(text)) return resume(Effect.void)
        const onDrain = () => resume(closed ? Effect.interrupt : Effect.void)
        process.stdout.once("drain", onDrain)
        return Effect.sync(() => process.stdout.off("drain", onDrain))
      })
    )
}
