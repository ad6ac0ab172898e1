import { NodeContext } from "@effect/platform-node"
import { Effect } from "effect"
import * as Cli from "./Cli.js"

Cli.runMain(Cli.main(process.argv).pipe(Effect.provide(NodeContext.layer)))
