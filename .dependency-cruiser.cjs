/**
 * Dependency rules of Sluice (ARCHITECTURE.md §7), checked by dependency-cruiser in `npm test`
 * (test/architecture/dependencies.test.ts) and by hand with `npm run deps`.
 *
 * Folders are layers, lowest first; a folder may import its own files and lower layers only,
 * so no folder cycle can form. On top of the layering:
 * - domain/ imports nothing of the gateway;
 * - dialects never import http/, admission/, routing/ (nor anything above backends/);
 * - routing/ never imports http/ or dispatch/ and does no I/O (no sockets, files, HTTP clients);
 * - the simulator imports only the shared profiles, the pure domain and the wire schemas, and
 *   production code never imports the simulator (the embedded-engine launcher at the root,
 *   SimulatedFleet.ts, loads it lazily; the command line runs it; the offline planner, src/planner/, drives
 *   its pure engine core in virtual time);
 * - the planner does no I/O (the command line reads its files) and nothing in the gateway imports it;
 * - examples/ import only the public API (src/index.ts) and libraries.
 */
const LAYERS = [
  "domain",
  "profiles",
  "api",
  "config",
  "observability",
  "stores",
  "resilience",
  "backends",
  "admission",
  "routing",
  "dispatch",
  "accounting",
  "extensions",
  "auth",
  "request",
  "http"
]

const layerRules = LAYERS.map((folder, i) => ({
  name: `layer-${folder}`,
  comment: `src/${folder}/ may import only ${["itself", ...LAYERS.slice(0, i)].join(", ")} (layers below it)`,
  severity: "error",
  from: { path: `^src/${folder}/` },
  to: {
    path: `^src/(${[...LAYERS.slice(i + 1), "simulator", "cli"].join("|")})/|^src/[^/]+\\.ts$`
  }
}))

const IO_MODULES = [
  "^(node:)?(http|https|http2|net|tls|dgram|dns|fs|fs/promises|child_process|worker_threads|cluster)$",
  "^undici(/|$)",
  "^ioredis$",
  "^@effect/sql-pg",
  "^@effect/platform-node",
  "^effect/http$",
  "^effect/sql$"
]

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: "domain-is-pure",
      comment: "domain/ holds values and pure functions: it imports nothing of the gateway",
      severity: "error",
      from: { path: "^src/domain/" },
      to: { path: "^src/", pathNot: "^src/domain/" }
    },
    {
      name: "dialects-stay-dialects",
      comment: "a dialect adapter speaks a wire protocol: never http/, admission/, routing/ or anything above backends/",
      severity: "error",
      from: { path: "^src/backends/dialects/" },
      to: { path: "^src/(http|admission|routing|dispatch|accounting|extensions|auth|request)/" }
    },
    {
      name: "routing-does-no-io",
      comment: "routing reads snapshots and decides; I/O belongs to dispatch and the backend actors",
      severity: "error",
      from: { path: "^src/routing/" },
      to: { path: IO_MODULES }
    },
    {
      name: "simulator-stands-alone",
      comment: "the simulator imports only the shared profiles, the pure domain and the wire schemas",
      severity: "error",
      from: { path: "^src/simulator/" },
      to: { path: "^src/", pathNot: "^src/(simulator|profiles|domain|api)/" }
    },
    {
      name: "production-never-imports-the-simulator",
      comment: "only the embedded-engine launcher (loaded lazily) and the command line start simulated engines",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/(simulator/|SimulatedFleet\\.ts$|cli/|planner/)" },
      to: { path: "^src/simulator/" }
    },
    {
      name: "planner-does-no-io",
      comment: "src/planner/ runs in virtual time: no sockets, files or clients (the command line reads its files)",
      severity: "error",
      from: { path: "^src/planner/" },
      to: { path: IO_MODULES }
    },
    {
      name: "nothing-serving-imports-the-planner",
      comment: "the planner is an offline tool: only the command line runs it",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/(planner|cli)/" },
      to: { path: "^src/planner/" }
    },
    {
      name: "examples-use-the-public-api",
      comment: "examples are written the way an embedder writes an extension: the public API only",
      severity: "error",
      from: { path: "^examples/" },
      to: { path: "^src/", pathNot: "^src/index\\.ts$" }
    },
    {
      name: "no-circular",
      comment: "no module cycles either (folder cycles are excluded by the layering)",
      severity: "error",
      from: {},
      to: { circular: true }
    }
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(node_modules|dist)/" },
    tsPreCompilationDeps: true,
    // Type-only imports count: a type import is a dependency of the design too.
    parser: "swc",
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["source", "import", "require", "node", "default"],
      extensions: [".ts", ".mjs", ".js", ".json"]
    }
  }
}
