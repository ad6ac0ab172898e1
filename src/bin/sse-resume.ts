import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import * as Cli from "../Cli.js"

NodeRuntime.runMain(Cli.main(process.argv).pipe(Effect.provide(NodeContext.layer)), {
  disableErrorReporting: true,
  teardown: (exit, onExit) => {
    const { code, line } = Cli.outcome(exit)
    if (line !== undefined) process.stderr.write(`${line}\n`)
    onExit(code)
  }
})
