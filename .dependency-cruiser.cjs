// Architecture rules, checked in .ci/run (`npm run lint:arch`). The folders are the data path:
// wire → client → store → session, and wire/store → server; engines and the CLI sit on top.
// Type-only imports are not dependencies here (tsPreCompilationDeps: false): an internal module
// importing its public module's types, as Effect's own modules do, is not a cycle at run time.
const folders = ["wire", "client", "store", "session", "server", "engines", "cli"]
/** What each folder may import besides itself, `src/internal/` and packages. */
const allowed = {
  wire: [],
  client: ["wire"],
  store: ["wire"],
  session: ["wire", "client", "store"],
  server: ["wire", "client", "store"],
  engines: ["wire", "store", "server"],
  cli: folders
}
const drivers = [
  "@effect/sql-pg", "@effect/sql-sqlite-node", "better-sqlite3", "pg", "ioredis",
  "@effect/platform-node", "@effect/cli", "@effect/opentelemetry", "@opentelemetry/sdk-[^/]+", "@opentelemetry/exporter-[^/]+"
]

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "A run-time import cycle: invert it (the internal module imports the public one type-only).",
      from: { path: "^src/" },
      to: { circular: true }
    },
    {
      name: "internal-stays-in-its-folder",
      severity: "error",
      comment: "A folder's internal/ is reached only through the folder's public modules.",
      from: { path: "^src/([^/]+)/" },
      to: { path: "^src/[^/]+/internal/", pathNot: "^src/$1/internal/" }
    },
    {
      name: "top-level-not-into-internal",
      severity: "error",
      comment: "src/index.ts and src/Telemetry.ts use the folders' public modules.",
      from: { path: "^src/[^/]+\\.ts$" },
      to: { path: "^src/[^/]+/internal/" }
    },
    ...folders.map((folder) => ({
      name: `data-path-${folder}`,
      severity: "error",
      comment: `src/${folder}/ imports only ${allowed[folder].join(", ") || "nothing"} of the other folders.`,
      from: { path: `^src/${folder}/` },
      to: { path: "^src/([^/]+)/", pathNot: [`^src/(${[folder, "internal", ...allowed[folder]].join("|")})/`] }
    })),
    {
      name: "root-is-browser-safe",
      severity: "error",
      comment: "The root entry is bundled for browsers: no Node built-in, no driver, no CLI, no telemetry SDK.",
      from: { path: "^src/index\\.ts$" },
      to: { reachable: true, path: `^(node:.+|${require("node:module").builtinModules.join("|")})$` }
    },
    {
      name: "root-loads-no-driver",
      severity: "error",
      comment: "Drivers, the CLI and the telemetry SDK have entry points of their own.",
      from: { path: "^src/index\\.ts$" },
      to: { reachable: true, path: `node_modules/(${drivers.join("|")})/` }
    },
    {
      name: "not-to-unresolvable",
      severity: "error",
      from: { path: "^src/" },
      to: { couldNotResolve: true }
    }
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: false,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "node", "default", "types"],
      extensions: [".ts", ".js", ".mjs"]
    }
  }
}
