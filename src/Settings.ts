/**
 * The one error for settings given in code that a module cannot run with. Every
 * `make` and `layer` taking settings (`SessionManager`, `PersistenceWorker`,
 * `SessionGroup.run`, `Telemetry`) merges them over its `defaults` by the same
 * rule (an option given as `undefined` keeps its default) and refuses a bad one
 * with this error, so one `catchTag("SettingsError")` handles them all. Settings
 * read from the environment (each module's `config`) fail earlier, with Effect's
 * own `ConfigError` naming the variable.
 */
import { Data } from "effect"

export class SettingsError extends Data.TaggedError("SettingsError")<{
  /** The module whose settings these are, e.g. "SessionManager". */
  readonly module: string
  /** The setting's name in that module's `Settings`, e.g. "maxSessions". */
  readonly setting: string
  readonly value: unknown
  /** The rule the value breaks, e.g. "must be a whole number ≥ 1". */
  readonly reason: string
}> {
  override get message() {
    return `${this.module}.${this.setting}: ${describe(this.value)} ${this.reason}`
  }
}

const describe = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value)
  if (typeof value === "object" && value !== null && "toJSON" in value) return JSON.stringify(value)
  return String(value)
}
