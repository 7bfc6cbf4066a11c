// The API thread: the same fastify app (routes, schemas, /docs) over a MirrorPort, listening on
// the keeper's port. HTTP parsing, response writes and the WebSocket fan-out (the socket
// syscalls that dominate under load) all happen here, never on the pit's thread.
import { parentPort, workerData } from "node:worker_threads";
import pino from "pino";
import { buildApp } from "./app.ts";
import { MirrorPort } from "./mirror-port.ts";
import { PitRpc, type CallMessage, type ReplyMessage } from "./pit-rpc.ts";
import type { ApiWorkerData, ToApiThread, FromApiThread } from "./api-thread.ts";

const data = workerData as ApiWorkerData;

const port = parentPort!;
const post = (m: FromApiThread) => port.postMessage(m);

// Log lines go to the pit's thread, which writes them with its own logger (file or stdout).
const logger = pino({ level: data.logLevel, base: null, timestamp: false }, { write: (line: string) => post({ t: "log", line }) });

const rpc = new PitRpc({ post: (m: CallMessage) => post(m) });
const mirror = new MirrorPort({
  domain: data.domain,
  settler: data.settler,
  maxSignedExpirySec: data.maxSignedExpirySec,
  tradesKept: data.tradesKept,
  wsMaxBufferedBytes: data.wsMaxBufferedBytes,
  rpc,
  initial: data.initial,
});

const app = await buildApp({
  keeper: mirror,
  logger,
  ...(data.stream === undefined ? {} : { stream: data.stream }),
  ...(data.webDir === undefined ? {} : { webDir: data.webDir }),
});

const statsTimer = setInterval(() => {
  const s = mirror.takeStats();
  if (s !== null) post({ t: "stats", ...s });
}, 100);

let stopping = false;
port.on("message", (m: ToApiThread | ReplyMessage) => {
  switch (m.t) {
    case "feed":
      mirror.apply(m.delta, m.messages);
      return;
    case "reply":
      rpc.settle(m);
      return;
    case "stop":
      if (stopping) return;
      stopping = true;
      clearInterval(statsTimer);
      mirror.fanout.closeAll(1001, "keeper stopping");
      rpc.failAll("the keeper is stopping");
      void app.close().finally(() => {
        post({ t: "stopped" });
        port.close();
      });
      return;
  }
});

try {
  const url = await app.listen({ host: data.host, port: data.port });
  post({ t: "ready", url, port: (app.server.address() as { port: number }).port });
} catch (err) {
  post({ t: "failed", message: (err as Error).message });
  clearInterval(statsTimer);
  port.close();
}
