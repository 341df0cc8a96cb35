import * as Cluster from "./Cluster.ts"

Cluster.main(process.argv.slice(2))
