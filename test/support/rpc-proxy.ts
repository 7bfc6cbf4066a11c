// A JSON-RPC proxy in front of a Hardhat node for fault injection: it can refuse connections for a
// while (an outage), delay calls, answer a fraction of calls with HTTP 500 (before forwarding them,
// or after: the node did the work and the answer is lost), corrupt the JSON of an answer, and
// answer eth_getLogs range queries with an empty list (a lagging backend). Randomness comes from a
// seeded generator; the seed is printed so a failing run can be repeated (CME_FAULT_SEED).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";

export interface ProxyFaults {
  /** Fraction of calls answered HTTP 500 without reaching the node. */
  fail500Before: number;
  /** Fraction of calls forwarded, then answered HTTP 500 (the node acted; the caller does not know). */
  fail500After: number;
  /** Fraction of answers whose JSON is cut short. */
  corruptJson: number;
  /** Delay before forwarding each call, ms. */
  delayMs: number;
  /** A fraction of calls delayed by `slowMs` more (past the client's timeout: a timeout). */
  slowFraction: number;
  slowMs: number;
  /** eth_getLogs queries by block range are answered [] (queries by block hash are not). */
  emptyRangeLogs: boolean;
  /** Methods the random faults apply to (undefined: all). */
  methods?: string[];
}

export interface RpcProxy {
  url: string;
  seed: number;
  /** Change at will while the proxy runs. */
  faults: ProxyFaults;
  stats: { calls: number; byMethod: Record<string, number>; injected: Record<string, number> };
  /** Refuses connections for `ms` (closes the listener and every open socket), then listens again. */
  outage(ms: number): Promise<void>;
  close(): Promise<void>;
}

/** mulberry32: small, seeded, good enough to pick faults. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NO_FAULTS: ProxyFaults = { fail500Before: 0, fail500After: 0, corruptJson: 0, delayMs: 0, slowFraction: 0, slowMs: 0, emptyRangeLogs: false };

export async function startRpcProxy(target: string, opts: { seed?: number; label?: string } = {}): Promise<RpcProxy> {
  const seed = opts.seed ?? Number(process.env.CME_FAULT_SEED ?? Date.now() % 1_000_000);
  console.log(`      rpc proxy${opts.label === undefined ? "" : ` (${opts.label})`}: fault seed ${seed} (CME_FAULT_SEED=${seed} repeats it)`);
  const random = prng(seed);
  const sockets = new Set<Socket>();
  const stats: RpcProxy["stats"] = { calls: 0, byMethod: {}, injected: {} };
  const inject = (kind: string) => (stats.injected[kind] = (stats.injected[kind] ?? 0) + 1);
  const proxy = { faults: { ...NO_FAULTS } } as { faults: ProxyFaults };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    let parsed: { method?: string; params?: unknown[]; id?: unknown } | { method?: string }[] = {};
    try {
      parsed = JSON.parse(body) as typeof parsed;
    } catch {
      /* forwarded as is */
    }
    const first = Array.isArray(parsed) ? parsed[0] : parsed;
    const method = first?.method ?? "?";
    stats.calls++;
    stats.byMethod[method] = (stats.byMethod[method] ?? 0) + 1;
    const f = proxy.faults;
    const subject = f.methods === undefined || f.methods.includes(method);
    if (f.delayMs > 0) await new Promise((r) => setTimeout(r, f.delayMs));
    if (subject && f.slowFraction > 0 && random() < f.slowFraction) {
      inject("slow");
      await new Promise((r) => setTimeout(r, f.slowMs));
    }
    if (subject && random() < f.fail500Before) {
      inject("500_before");
      res.writeHead(500, { "content-type": "text/plain" }).end("injected: internal server error");
      return;
    }
    const params = (first as { params?: unknown[] } | undefined)?.params;
    if (f.emptyRangeLogs && method === "eth_getLogs" && !Array.isArray(parsed)) {
      const filter = (params?.[0] ?? {}) as { blockHash?: string };
      if (filter.blockHash === undefined) {
        inject("empty_logs");
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id: (parsed as { id?: unknown }).id ?? 1, result: [] }));
        return;
      }
    }
    let status: number;
    let answer: string;
    try {
      const r = await fetch(target, { method: "POST", headers: { "content-type": "application/json" }, body });
      status = r.status;
      answer = await r.text();
    } catch (err) {
      res.writeHead(502, { "content-type": "text/plain" }).end(`proxy: node unreachable: ${(err as Error).message}`);
      return;
    }
    if (subject && random() < f.fail500After) {
      inject("500_after");
      res.writeHead(500, { "content-type": "text/plain" }).end("injected: internal server error (after forwarding)");
      return;
    }
    if (subject && random() < f.corruptJson) {
      inject("corrupt_json");
      answer = answer.slice(0, Math.max(1, Math.floor(answer.length / 2)));
    }
    res.writeHead(status, { "content-type": "application/json" }).end(answer);
  };

  const listen = (server: Server, port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve((server.address() as { port: number }).port);
      });
    });
  const make = () => {
    const s = createServer((req, res) => {
      handle(req, res).catch((err) => {
        if (!res.headersSent) res.writeHead(502).end(String(err));
      });
    });
    s.on("connection", (sock) => {
      sockets.add(sock);
      sock.on("close", () => sockets.delete(sock));
    });
    return s;
  };
  let server = make();
  const port = await listen(server, 0);
  const closeServer = (s: Server) =>
    new Promise<void>((resolve) => {
      for (const sock of sockets) sock.destroy();
      s.close(() => resolve());
    });

  return Object.assign(proxy, {
    url: `http://127.0.0.1:${port}`,
    seed,
    stats,
    async outage(ms: number) {
      inject("outage");
      await closeServer(server);
      await new Promise((r) => setTimeout(r, ms));
      server = make();
      await listen(server, port);
    },
    async close() {
      await closeServer(server);
    },
  });
}
