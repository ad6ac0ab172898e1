/**
 * Runs a CLI program as a process: the documented exit code and one line on
 * failure (`Cli.outcome`). Loaded only once a command runs.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import { type CliError, outcome } from "./Cli.js"

/**
 * Logs go to stderr, as status does: stdout carries event lines only. SIGINT and
 * SIGTERM interrupt the program, which stores its cursor and exits 0.
 */
export const runMain = <A>(program: Effect.Effect<A, CliError>): void =>
  NodeRuntime.runMain(
    Effect.provide(program, Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true }))),
    {
      disableErrorReporting: true,
      // Its own pretty logger writes to stdout.
      disablePrettyLogger: true,
      teardown: (exit, onExit) => {
        // The Teardown type is generic; the exit it gets is this program's.
        const { code, line } = outcome(exit as Exit.Exit<unknown, CliError>)
        if (line !== undefined) process.stderr.write(`${line}\n`)
        onExit(code)
      }
    }
  )
