// Listens: the only place the keeper opens a port. Everything else is built in keeper/keeper.ts.
// By default the HTTP/WS surface runs in its own thread (api/api-thread.ts) so that read load and
// stream fan-out never delay the pit's tick; CME_API_THREAD=0 serves it from this thread.
import type { FastifyInstance } from "fastify";
import type { ApiThread } from "./api-thread.ts";

export interface Listenable {
  config: { host: string; port: number; apiThread: boolean };
  app: FastifyInstance;
  api: ApiThread;
}

export async function listen(keeper: Listenable): Promise<string> {
  const { host, port, apiThread } = keeper.config;
  return apiThread ? keeper.api.listen(host, port) : keeper.app.listen({ host, port });
}
