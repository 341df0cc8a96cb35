/**
 * `npm run keys -- <command>`: runs the tenant and key commands of cli/keys.ts until the
 * `sluice` command line mounts them as `sluice keys ...` and `sluice tenants ...`.
 */
import { main } from "./keys.ts"

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
})
