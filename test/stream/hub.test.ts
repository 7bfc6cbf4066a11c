// The WebSocket stream over a real port with real ws clients: hello snapshot, fan-out, a slow
// client that stops reading is dropped while the others keep receiving, and the gate's limits
// (connections per address, heartbeat) with short intervals.
import { expect } from "chai";
import WebSocket from "ws";
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import type { Keeper } from "../../keeper/keeper.ts";
import { buildApp } from "../../keeper/api/app.ts";
import type { StreamGateOptions } from "../../keeper/stream/gate.ts";
import { offlineKeeper } from "../support/keeper.ts";

function open(url: string, opts: WebSocket.ClientOptions = {}): Promise<{ ws: WebSocket; messages: { type: string; [k: string]: unknown }[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts);
    const messages: { type: string }[] = [];
    ws.on("message", (data) => messages.push(JSON.parse(String(data))));
    ws.once("open", () => resolve({ ws, messages: messages as never }));
    ws.once("error", reject);
  });
}

const until = async (cond: () => boolean, ms = 5_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe("keeper WebSocket stream", function () {
  let k: Keeper;
  let url: string;

  beforeEach(async () => {
    k = await offlineKeeper({ wsMaxBufferedBytes: 256 * 1024 });
    await k.start();
    await k.app.listen({ host: "127.0.0.1", port: 0 });
    url = `ws://127.0.0.1:${(k.app.server.address() as AddressInfo).port}/ws`;
  });
  afterEach(async () => k.stop());

  it("greets a subscriber with a snapshot of the session", async () => {
    const c = await open(url);
    await until(() => c.messages.length > 0);
    const hello = c.messages[0]!;
    expect(hello.type).to.equal("hello");
    expect((hello.session as { phase: string }).phase).to.equal("pre_session");
    expect(Object.keys(hello.books as object)).to.deep.equal(["PEPE/USDC", "WIF/USDC"]);
    c.ws.close();
  });

  it("fans published messages out to every subscriber in order", async () => {
    const clients = await Promise.all(Array.from({ length: 20 }, () => open(url)));
    await until(() => k.hub.size === 20);
    for (let i = 0; i < 50; i++) {
      k.hub.publish("outcry", { line: `shout ${i}` });
      if (i % 10 === 9) k.hub.flush();
    }
    k.hub.publish("phase", { n: 1 });
    k.hub.flush();
    const lines = (c: { messages: { type: string; items?: unknown }[] }) =>
      c.messages.filter((m) => m.type === "outcry").flatMap((m) => (m.items as { line: string }[]).map((x) => x.line));
    await until(() => clients.every((c) => lines(c).length === 50 && c.messages.some((m) => m.type === "phase")));
    for (const c of clients) {
      expect(lines(c)).to.deep.equal(Array.from({ length: 50 }, (_, i) => `shout ${i}`));
      // Conflated: five flushes, each repeating its newest line at top level.
      const outcries = c.messages.filter((m) => m.type === "outcry");
      expect(outcries.map((m) => m.line)).to.deep.equal(["shout 9", "shout 19", "shout 29", "shout 39", "shout 49"]);
      c.ws.close();
    }
  });

  it("drops a client that stops reading; the others keep up", async () => {
    const fast = await open(url);
    const slow = await open(url);
    await until(() => k.hub.size === 2);
    // Stop reading on the slow client's socket: the server's send buffer fills up.
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    let slowClosed = false;
    slow.ws.on("close", () => (slowClosed = true));
    const big = "x".repeat(16 * 1024);
    let sent = 0;
    for (let round = 0; round < 2000 && k.hub.stats.dropped === 0; round++) {
      for (let i = 0; i < 20; i++) k.hub.publish("settlement", { line: big, n: sent++ });
      k.hub.flush();
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(k.hub.stats.dropped).to.equal(1);
    expect(k.hub.size).to.equal(1);
    await until(() => fast.messages.filter((m) => m.type === "settlement").length === sent, 20_000);
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    await until(() => slowClosed);
    const m = await k.app.inject("/metrics");
    expect(m.body).to.match(/cme_ws_dropped_total 1/);
    fast.ws.close();
  });

  describe("the gate", () => {
    let app: FastifyInstance;
    let gated: string;
    const serve = async (stream: Partial<StreamGateOptions>) => {
      app = await buildApp({ keeper: k.service, stream });
      await app.listen({ host: "127.0.0.1", port: 0 });
      gated = `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}/ws`;
    };
    afterEach(async () => app?.close());
    const closeOf = (ws: WebSocket) => new Promise<{ code: number; reason: string }>((r) => ws.once("close", (code, reason) => r({ code, reason: String(reason) })));

    it("refuses the connection beyond the per-address cap with 1008 and a reason; the others keep receiving", async () => {
      await serve({ maxClientsPerAddress: 3 });
      const admitted = await Promise.all([open(gated), open(gated), open(gated)]);
      await until(() => k.hub.size === 3);
      const extra = await open(gated);
      const refused = await closeOf(extra.ws);
      expect(refused).to.deep.equal({ code: 1008, reason: "too many stream connections from this address (limit 3)" });
      expect(extra.messages).to.deep.equal([]);
      k.hub.publish("phase", { n: 1 });
      k.hub.flush();
      await until(() => admitted.every((c) => c.messages.some((m) => m.type === "phase")));
      expect(admitted.every((c) => c.ws.readyState === WebSocket.OPEN)).to.equal(true);
      // One leaves, another gets in.
      admitted[0]!.ws.close();
      await until(() => k.hub.size === 2);
      const next = await open(gated);
      await until(() => next.messages.length > 0);
      expect(next.messages[0]!.type).to.equal("hello");
      for (const c of [...admitted.slice(1), next]) c.ws.close();
    });

    it("refuses any connection beyond the total cap with 1013", async () => {
      await serve({ maxClients: 2 });
      const admitted = await Promise.all([open(gated), open(gated)]);
      await until(() => k.hub.size === 2);
      const extra = await open(gated);
      expect((await closeOf(extra.ws)).code).to.equal(1013);
      for (const c of admitted) c.ws.close();
    });

    it("terminates a client that does not answer pings; one that does keeps receiving", async () => {
      await serve({ pingIntervalMs: 50 });
      const normal = await open(gated);
      const mute = await open(gated, { autoPong: false });
      await until(() => k.hub.size === 2);
      let pinged = 0;
      mute.ws.on("ping", () => pinged++);
      const muteClosed = closeOf(mute.ws);
      const closed = await muteClosed;
      // Terminated, not closed: no close frame (1006 on the client's side).
      expect(closed.code).to.equal(1006);
      expect(pinged).to.be.greaterThan(0);
      await until(() => k.hub.size === 1);
      // The answering client outlives several heartbeats and still gets the stream.
      await new Promise((r) => setTimeout(r, 300));
      expect(normal.ws.readyState).to.equal(WebSocket.OPEN);
      k.hub.publish("phase", { n: 2 });
      k.hub.flush();
      await until(() => normal.messages.some((m) => m.type === "phase"));
      normal.ws.close();
    });
  });
});
