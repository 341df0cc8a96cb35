/**
 * `npm run simulate -- …`: the standalone simulator from source (Command.ts holds the
 * command; `sluice simulate …` runs the same from the bundle). Must never: hold logic.
 */
import * as Command from "./Command.ts"

Command.run(process.argv.slice(2))
