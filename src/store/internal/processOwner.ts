/**
 * Owner names that say which process holds a lease, so a lease store can tell a
 * dead holder on this host from a live one and take its lease at once instead of
 * waiting out the lease (a `kill -9` and an immediate restart otherwise waits).
 *
 * On Linux a name is `<host>/<pid>@<boot>.<pidns>.<start>`: the kernel's boot id
 * (its first 8 hex digits), the pid namespace and the process's start time in
 * clock ticks since boot (`/proc/<pid>/stat`). The holder is known dead only when
 * boot and namespace are ours (the pid means the same process table here) and the
 * pid is gone, a zombie, or a process started at another time (the pid reused).
 * Anywhere else the name is `<host>/<pid>` and a lease is waited out as before.
 *
 * Reached through `process.getBuiltinModule`, not an import: the root entry is
 * bundled for browsers, where there is no process and these return nothing.
 */
import type * as Fs from "node:fs"
import type * as Os from "node:os"

interface ProcessLike {
  readonly pid?: number
  readonly env?: Record<string, string | undefined>
  readonly getBuiltinModule?: (id: string) => unknown
}

const proc = (globalThis as { process?: ProcessLike }).process
const fs = proc?.getBuiltinModule?.("node:fs") as typeof Fs | undefined
const os = proc?.getBuiltinModule?.("node:os") as typeof Os | undefined

/** The start time (ticks since boot) and state letter of process `pid`, none if there is no such process. */
const statOf = (pid: number | "self"): { readonly start: string; readonly state: string } | undefined => {
  const text = fs!.readFileSync(`/proc/${pid}/stat`, "utf8")
  // The command name (2nd field) is in parentheses and may hold spaces or ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
  return fields.length > 19 ? { state: fields[0]!, start: fields[19]! } : undefined
}

/** This process's boot id and pid namespace, or none off Linux. */
const here = ((): { readonly boot: string; readonly pidns: string; readonly start: string } | undefined => {
  try {
    if (fs === undefined) return undefined
    const boot = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").replace(/-/g, "").slice(0, 8)
    const pidns = /\d+/.exec(fs.readlinkSync("/proc/self/ns/pid"))?.[0]
    const self = statOf("self")
    return pidns === undefined || self === undefined || !/^[0-9a-f]{8}$/.test(boot)
      ? undefined
      : { boot, pidns, start: self.start }
  } catch {
    return undefined
  }
})()

const hostName = (): string =>
  proc?.env?.HOSTNAME ?? proc?.env?.COMPUTERNAME ?? (() => {
    try {
      return os?.hostname() ?? "localhost"
    } catch {
      return "localhost"
    }
  })()

/** This process's owner name: see the module's doc; a random name where there is no process. */
export const processOwner = (): string => {
  if (proc?.pid === undefined) return `owner-${Math.random().toString(36).slice(2, 10)}`
  const name = `${hostName()}/${proc.pid}`
  return here === undefined ? name : `${name}@${here.boot}.${here.pidns}.${here.start}`
}

const ownerName = /^.*\/(\d+)@([0-9a-f]{8})\.(\d+)\.(\d+)$/

/**
 * Whether `owner` names a process of this host (same kernel boot, same pid
 * namespace) that no longer runs: gone, a zombie, or its pid now another
 * process's. False whenever that cannot be known for sure.
 */
export const isDeadOwner = (owner: string): boolean => {
  const match = ownerName.exec(owner)
  if (match === null || here === undefined) return false
  const [, pid, boot, pidns, start] = match
  if (boot !== here.boot || pidns !== here.pidns) return false
  try {
    const stat = statOf(Number(pid))
    return stat === undefined ? false : stat.start !== start || stat.state === "Z" || stat.state === "X"
  } catch (error) {
    return (error as { code?: string }).code === "ENOENT"
  }
}
