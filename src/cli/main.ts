/**
 * The `sse-resume` process. `--help`, `--version` and usage errors are answered
 * from the command tree alone; a command's module (and the Effect runtime, the
 * store drivers, the demo) is imported only to run it.
 */
import * as Cli from "./Cli.js"
import { styleFor } from "./internal/help.js"

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
    const [{ runMain }, TailCommand] = await Promise.all([import("./Runtime.js"), import("./commands/tail/command.js")])
    runMain(TailCommand.run(invocation.args))
    break
  }
  case "ServeDemo": {
    const [{ runMain }, ServeDemo] = await Promise.all([import("./Runtime.js"), import("./commands/ServeDemo.js")])
    runMain(ServeDemo.run(invocation.args, import.meta.url))
    break
  }
}
