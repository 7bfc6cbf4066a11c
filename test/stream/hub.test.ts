// The WebSocket stream over a real port with real ws clients: hello snapshot, fan-out, and a slow
// client that stops reading is dropped while the others keep receiving.
import { expect } from "chai";
import WebSocket from "ws";
import type { AddressInfo } from "node:net";
import type { Keeper } from "../../keeper/keeper.ts";
import { offlineKeeper } from "../support/keeper.ts";

function open(url: string): Promise<{ ws: WebSocket; messages: { type: string; [k: string]: unknown }[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
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
});
