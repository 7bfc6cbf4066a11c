// A model-call worker thread: runs the openai SDK for requests posted by WorkerTransport and
// posts back plain results. Messages: {type:"call", id, request} | {type:"abort", id}.
import { parentPort } from "node:worker_threads";
import { InProcessTransport, type ChatRequest } from "./model-transport.ts";

type Incoming = { type: "call"; id: number; request: ChatRequest } | { type: "abort"; id: number };

const transport = new InProcessTransport();
const aborts = new Map<number, AbortController>();

// Loading the SDK takes a moment; the pool waits for this before it reports ready.
parentPort?.postMessage({ type: "ready" });

parentPort?.on("message", (msg: Incoming) => {
  if (msg.type === "abort") {
    aborts.get(msg.id)?.abort();
    return;
  }
  const ac = new AbortController();
  aborts.set(msg.id, ac);
  transport
    .complete(msg.request, ac.signal)
    .then((response) => parentPort?.postMessage({ id: msg.id, response }))
    .catch((err: unknown) =>
      parentPort?.postMessage({ id: msg.id, response: { ok: false, failure: { code: "broker_error", message: `worker: ${String(err).slice(0, 120)}` } } }),
    )
    .finally(() => aborts.delete(msg.id));
});
