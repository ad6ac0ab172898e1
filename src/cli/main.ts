/**
 * The `sse-resume` process. `--help`, `--version` and usage errors are answered
 * from the command tree alone; a command's module (and the Effect runtime, the
 * store drivers, the demo) is imported only to run it.
 */
import * as Cli from "./Cli.js"
import { styleFor } from "./internal/help.js"

/**
 * The optional peer dependencies a command needs that are not installed, with their
 * ranges: a client-only install has none of them, and the CLI then says in one line
 * what to install instead of failing in a module loader.
 */
const missing = (packages: ReadonlyArray<keyof typeof Cli.peerRanges>): ReadonlyArray<string> =>
  packages.filter((name) => {
    try {
      import.meta.resolve(name)
      return false
    } catch {
      return true
    }
  }).map((name) => `${name}@${Cli.peerRanges[name]}`)

/** Refuses a command whose packages are missing, naming them; true when it may run. */
const installed = (packages: ReadonlyArray<keyof typeof Cli.peerRanges>): boolean => {
  const absent = missing(packages)
  if (absent.length === 0) return true
  process.stderr.write(`${Cli.name}: this command needs ${absent.length === 1 ? "a package" : "packages"} not installed: npm i ${absent.join(" ")}\n`)
  process.exitCode = Cli.ExitCode.usage
  return false
}

const invocation = Cli.parse(process.argv.slice(2), styleFor(process.stdout, process.env))
switch (invocation._tag) {
  case "Print":
    process.stdout.write(invocation.text)
    break
  case "Usage":
    process.stderr.write(`${Cli.name}: ${invocation.error.message}\n`)
    process.exitCode = Cli.ExitCode.usage
    break
  case "Tail": {
    if (!installed(["@effect/platform-node", invocation.args.options.pg === undefined ? "@effect/sql-sqlite-node" : "@effect/sql-pg"])) break
    const [{ runMain }, TailCommand] = await Promise.all([import("./Runtime.js"), import("./commands/tail/command.js")])
    runMain(TailCommand.run(invocation.args))
    break
  }
  case "ServeDemo": {
    if (!installed(["@effect/platform-node"])) break
    const [{ runMain }, ServeDemo] = await Promise.all([import("./Runtime.js"), import("./commands/ServeDemo.js")])
    runMain(ServeDemo.run(invocation.args, import.meta.url))
    break
  }
}
