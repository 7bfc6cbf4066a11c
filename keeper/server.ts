// Listens: the only place the keeper opens a port. Everything else is built in boot.ts.
import type { Keeper } from "./boot.ts";

export async function listen(keeper: Keeper): Promise<string> {
  return keeper.app.listen({ host: keeper.config.host, port: keeper.config.port });
}
