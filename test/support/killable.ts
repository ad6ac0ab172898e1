/**
 * Runs a child process that prints one number per line (the ids it delivered or
 * committed), killing it with SIGKILL `killAfterMillis` after its first line when
 * given: the crash tests' way of landing a kill anywhere in the child's work.
 */
import { spawn } from "node:child_process"

/**
 * What a test allows a child from spawn to its first printed line: starting node on
 * the bundle, connecting to its store and server, and its first event. Measured on the
 * 2-core machine under other work: 2.4–13.3 s at a load average of 15 (the exactly-once
 * children, SQLite and PostgreSQL, 12 runs), 0.5–1 s idle. Tests with several runs derive
 * their timeouts from it rather than guessing a total.
 */
export const childStartMillis = 15_000

export interface KilledRun {
  /** The numbers the child printed, in order. */
  readonly printed: Array<number>
  readonly killed: boolean
  /** Milliseconds from spawn to the first printed line (the child's start-up and first work), if any. */
  readonly startMillis: number | undefined
  /** Milliseconds from spawn to exit. */
  readonly totalMillis: number
}

/** Resolves when the child ends; any end but SIGKILL or exit 0 rejects with its stderr. */
export const runKillable = (script: string, args: ReadonlyArray<string>, killAfterMillis: number | undefined) =>
  new Promise<KilledRun>((resolve, reject) => {
    const spawned = Date.now()
    let startMillis: number | undefined
    const proc = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    let err = ""
    let timer: NodeJS.Timeout | undefined
    proc.stdout.on("data", (data: Buffer) => {
      out += data.toString()
      startMillis ??= Date.now() - spawned
      if (killAfterMillis !== undefined && timer === undefined) {
        timer = setTimeout(() => proc.kill("SIGKILL"), killAfterMillis)
      }
    })
    proc.stderr.on("data", (data: Buffer) => (err += data.toString()))
    proc.on("error", reject)
    proc.on("exit", (code, signal) => {
      clearTimeout(timer)
      if (signal !== "SIGKILL" && code !== 0) return reject(new Error(`child exited ${code}: ${err}`))
      // Only the child's number lines: a log line (a lease renewal retried under load) is not a delivery.
      resolve({ printed: out.split("\n").filter((l) => /^\d+$/.test(l)).map(Number), killed: signal === "SIGKILL", startMillis, totalMillis: Date.now() - spawned })
    })
  })
