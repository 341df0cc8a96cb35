/**
 * A TCP gate in front of a real service (PostgreSQL, Redis): while closed it accepts and
 * drops every connection (the service looks down to the client) and counts the attempts;
 * open, it pipes bytes to the service. Lets a test take a shared service "down" for one
 * gateway without ever stopping the shared server.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net"
import type { AddressInfo } from "node:net"

export interface Gate {
  readonly port: number
  open: boolean
  /** Connections attempted while closed, with their times (performance.now). */
  readonly refused: Array<number>
  /** Drops every connection currently piped through. */
  readonly cut: () => void
  readonly close: () => Promise<void>
}

export const start = async (target: { readonly host: string; readonly port: number }, open = false): Promise<Gate> => {
  const piped = new Set<Socket>()
  const refused: Array<number> = []
  const gate: Gate = {
    port: 0,
    open,
    refused,
    cut: () => {
      for (const s of piped) s.destroy()
      piped.clear()
    },
    close: () => {
      gate.cut()
      return new Promise((r) => server.close(() => r()))
    }
  }
  const server: Server = createServer((client) => {
    if (!gate.open) {
      refused.push(performance.now())
      client.destroy()
      return
    }
    const upstream = createConnection(target)
    piped.add(client)
    piped.add(upstream)
    const drop = () => {
      client.destroy()
      upstream.destroy()
      piped.delete(client)
      piped.delete(upstream)
    }
    client.on("error", drop).on("close", drop)
    upstream.on("error", drop).on("close", drop)
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()))
  ;(gate as { port: number }).port = (server.address() as AddressInfo).port
  return gate
}
