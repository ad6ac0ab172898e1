/**
 * Headless Chromium for the browser tests: the system's binary (Debian's `chromium`
 * package) driven by playwright-core; nothing downloads a browser. Without one the
 * tests are skipped and say so, unless SSE_BROWSER_REQUIRED=1 (set by .ci/run),
 * which makes a missing browser a failure.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type BrowserContext, chromium } from "playwright-core"

/** CHROMIUM_PATH, else Debian's. */
export const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
export const browserRequired = process.env.SSE_BROWSER_REQUIRED === "1"
export const browserFound = existsSync(chromiumPath)

/** Logs once why the browser tests are skipped, and fails where a browser is required. */
export const noteBrowserSkip = (suite: string): void => {
  if (browserFound) return
  if (browserRequired) throw new Error(`[${suite}] SSE_BROWSER_REQUIRED=1 but no browser at ${chromiumPath}`)
  console.log(
    `[${suite}] browser tests skipped: no Chromium at ${chromiumPath} ` +
      "(apt-get install chromium, or set CHROMIUM_PATH)"
  )
}

/**
 * The flags a sandboxed, offline machine needs: no sandbox (root), no GPU, and no
 * background connections to Google's hosts, which a closed network refuses.
 */
const flags = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

export interface Browser {
  readonly context: BrowserContext
  readonly close: () => Promise<void>
}

/** A fresh browser with an empty profile of its own (its own localStorage). */
export const launch = async (): Promise<Browser> => {
  const profile = mkdtempSync(join(tmpdir(), "sse-chromium-"))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: flags,
    viewport: { width: 1100, height: 820 }
  })
  return {
    context,
    close: async () => {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    }
  }
}
