// Listens: the only place the keeper opens a port. Everything else is built in boot.ts. By
// default the HTTP/WS surface runs in its own thread (keeper/api/api-thread.ts) so that read load
// and stream fan-out never delay the pit's tick; CME_API_THREAD=0 serves it from this thread.
import type { Keeper } from "../keeper.ts";

export async function listen(keeper: Keeper): Promise<string> {
  const { host, port, apiThread } = keeper.config;
  return apiThread ? keeper.api.listen(host, port) : keeper.app.listen({ host, port });
}
