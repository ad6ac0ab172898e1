/**
 * An `HttpApp` served on loopback by @effect/platform-node's HttpServer, for the
 * serving tests: the real server a deployment runs, on a free port.
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Effect, type Scope } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

export interface Served {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string
  readonly port: number
}

/** Serves `app` until the scope closes; `port` 0 picks a free one. */
export const serve = <E, R>(
  app: HttpApp.Default<E, R>,
  port = 0
): Effect.Effect<Served, unknown, Exclude<R, HttpServerRequest.HttpServerRequest | Scope.Scope> | Scope.Scope> =>
  Effect.gen(function*() {
    const node = Http.createServer()
    // A deep accept queue: a thousand readers reconnecting at once would overflow Node's
    // default 511, and a dropped SYN is retried only after 1, 3, 7, 15, 31 s.
    const server = yield* NodeHttpServer.make(() => node, { port, host: "127.0.0.1", backlog: 4096 })
    yield* server.serve(app)
    const bound = (node.address() as AddressInfo).port
    return { origin: `http://127.0.0.1:${bound}`, port: bound }
  }) as Effect.Effect<Served, unknown, Exclude<R, HttpServerRequest.HttpServerRequest | Scope.Scope> | Scope.Scope>
