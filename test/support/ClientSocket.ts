/**
 * A stand-in for the node:http request a gateway request came on, as `Upstream` reads it: its
 * HTTP version, its socket (an emitter the test makes `end`, `error` or `close`) and whether its
 * response has finished.
 */
import type { HttpServerRequest } from "effect/http"
import { EventEmitter } from "node:events"

export const fakeClient = () => {
  const socket = Object.assign(new EventEmitter(), { readableEnded: false, destroyed: false })
  const response = { writableFinished: false }
  const request = { source: { httpVersionMajor: 1, socket }, response } as unknown as HttpServerRequest.HttpServerRequest
  return { socket, response, request }
}
