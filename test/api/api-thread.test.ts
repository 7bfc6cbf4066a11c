// The HTTP/WS surface served from its own thread (server.ts listen, as in production), over a
// real port: the mirrored reads answer exactly what the pit's own app answers, signed actions
// reach the pit (bad signatures are refused without it), the stream and its backpressure work
// from that thread, and a crashed API thread comes back on the same port.
import { expect } from "chai";
import WebSocket from "ws";
import type { Keeper } from "../../keeper/keeper.ts";
import { listen } from "../../keeper/api/server.ts";
import { getUser } from "../../keeper/store/users.ts";
import { isNonceUsed } from "../../keeper/store/nonces.ts";
import { SECP256K1_N } from "../../keeper/auth/verify.ts";
import type { LoopFactory } from "../../keeper/session/runner.ts";
import { FAKE_DEPLOYMENT, offlineKeeper, signed, signedTrade, wallet } from "../support/keeper.ts";

const until = async (cond: () => boolean | Promise<boolean>, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
};

type Msg = { type: string; [k: string]: unknown };
function open(url: string): Promise<{ ws: WebSocket; messages: Msg[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const messages: Msg[] = [];
    ws.on("message", (data) => messages.push(JSON.parse(String(data)) as Msg));
    ws.once("open", () => resolve({ ws, messages }));
    ws.once("error", reject);
  });
}

/** No brokers: the pit moves only when the test says so. */
const idleLoop: LoopFactory = () => ({ start() {}, stop: async () => {}, reprompt() {} });

describe("keeper API thread", function () {
  this.timeout(60_000);
  let k: Keeper;
  let base: string;
  const alice = wallet();
  const bob = wallet();
  const get = async (path: string) => {
    const r = await fetch(base + path);
    return { status: r.status, body: await r.text(), headers: r.headers };
  };
  const post = async (path: string, body: unknown) => {
    const r = await fetch(base + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    return { status: r.status, json: (await r.json()) as Record<string, unknown> };
  };
  /** The same read from the pit's own app (app.inject on the pit's thread). */
  const local = async (path: string) => (await k.app.inject(path)).json() as unknown;
  const withoutTs = (v: unknown) => ({ ...(v as object), ts: 0 });

  before(async () => {
    k = await offlineKeeper({ preSessionSec: 1, tradingSec: 3600, wsMaxBufferedBytes: 256 * 1024 }, { createLoop: idleLoop });
    const [usdc, pepe] = FAKE_DEPLOYMENT.tokens;
    k.runner.applyVaultEvents(
      [alice, bob].flatMap((u, i) => [
        { kind: "account" as const, block: 2, accountId: 10 + i, address: u.address },
        { kind: "deposit" as const, block: 2, id: `u${i}`, address: u.address, token: usdc!.address, amount: 10_000_000_000n, balance: 10_000_000_000n },
        { kind: "deposit" as const, block: 2, id: `p${i}`, address: u.address, token: pepe!.address, amount: 10n ** 24n, balance: 10n ** 24n },
      ]),
      2n,
    );
    await k.start();
    expect(k.config.apiThread).to.equal(true);
    base = await listen(k);
    await until(async () => JSON.parse((await get("/api/session")).body).phase === "trading");
  });
  after(async () => k?.stop());

  it("answers the public reads as the pit's own app does, as the pit changes", async () => {
    const pit = k.runner.port!;
    const px = 10_000; // PEPE/USDC's reference price in ticks
    pit.submit(10, { cancels: [], orders: [{ pair: 1, side: "buy", price: px - 5, size: 4, type: "limit" }, { pair: 1, side: "buy", price: px - 6, size: 2, type: "limit" }] });
    pit.submit(11, { cancels: [], orders: [{ pair: 1, side: "sell", price: px + 5, size: 3, type: "limit" }, { pair: 1, side: "sell", price: px - 5, size: 1, type: "limit" }] });
    k.runner.recordOutcry(10, "rule-market-maker", "bids up!");
    for (const path of ["/api/books/PEPE-USDC?levels=5", "/api/books/PEPE-USDC?levels=1", "/api/books/WIF-USDC"]) {
      await until(async () => JSON.stringify(withoutTs(JSON.parse((await get(path)).body))) === JSON.stringify(withoutTs(await local(path))));
    }
    const book = JSON.parse((await get("/api/books/PEPE-USDC?levels=5")).body) as { bids: { price: number; size: number }[] };
    expect(book.bids.map((l) => [l.price, l.size])).to.deep.equal([
      [px - 5, 3],
      [px - 6, 2],
    ]);
    for (const path of ["/api/trades/PEPE-USDC?limit=10", "/api/outcry?limit=5", "/api/leaderboard", "/api/top-prompts", "/api/brokers", `/api/accounts/${alice.address}`]) {
      await until(async () => (await get(path)).body === JSON.stringify(await local(path)));
    }
    expect(JSON.parse((await get("/api/trades/PEPE-USDC?limit=10")).body)).to.have.length(1);
    expect(JSON.parse((await get("/api/outcry?limit=5")).body)[0]).to.include({ line: "bids up!", accountId: 10 });

    // More trades later arrive as a delta on top of what the thread holds.
    pit.submit(11, { cancels: [], orders: [{ pair: 1, side: "sell", price: px - 6, size: 5, type: "ioc" }] });
    await until(async () => (await get("/api/trades/PEPE-USDC?limit=50")).body === JSON.stringify(await local("/api/trades/PEPE-USDC?limit=50")));
    expect(JSON.parse((await get("/api/trades/PEPE-USDC?limit=50")).body)).to.have.length(3);

    const session = JSON.parse((await get("/api/session")).body) as { phase: string; serverTime: number };
    expect(session.phase).to.equal("trading");
    expect(Math.abs(session.serverTime - Date.now())).to.be.lessThan(2_000);
  });

  it("validates input and serves ops routes from its thread", async () => {
    expect((await get("/api/books/DOGE-USDC")).status).to.equal(404);
    const bad = await get("/api/books/PEPE-USDC?levels=1000");
    expect(bad.status).to.equal(400);
    expect(JSON.parse(bad.body).field).to.equal("levels");
    const h = await get("/healthz");
    expect(h.status).to.equal(200);
    expect(JSON.parse(h.body)).to.include({ ok: true, phase: "trading" });
    const m = await get("/metrics");
    expect(m.headers.get("content-type")).to.match(/text\/plain/);
    expect(m.body).to.match(/# TYPE cme_tick_lag_ms histogram/);
    expect(m.body).to.match(/cme_pit_timer_lag_p99_ms\{window="1m"\} \d/);
    const docs = JSON.parse((await get("/docs/json")).body) as { paths: object };
    expect(Object.keys(docs.paths)).to.include.members(["/set-broker", "/api/books/{pair}"]);
    expect((await get("/")).status).to.equal(200);
  });

  it("forwards signed actions to the pit and refuses bad signatures itself", async () => {
    const body = await signed(alice, "SetPrompt", { prompt: "fade the spikes" });
    const ok = await post("/set-prompt", body);
    expect(ok.status, JSON.stringify(ok.json)).to.equal(200);
    expect(getUser(k.db, alice.address)?.prompt).to.equal("fade the spikes");
    // Replay: the signature is fine, the pit knows the nonce.
    const again = await post("/set-prompt", body);
    expect(again.status).to.equal(401);
    expect(again.json).to.include({ error: "replayed_nonce", field: "nonce" });
    // Signed by someone else: refused before it reaches the pit, the nonce stays unused.
    const forged = await signed(bob, "SetPrompt", { prompt: "mine now" }, { account: alice.address });
    const r = await post("/set-prompt", forged);
    expect(r.status).to.equal(401);
    expect(r.json).to.include({ error: "wrong_signer", field: "signature" });
    expect(isNonceUsed(k.db, alice.address, forged.nonce)).to.equal(false);
    expect(getUser(k.db, alice.address)?.prompt).to.equal("fade the spikes");
    const expired = await post("/set-prompt", await signed(alice, "SetPrompt", { prompt: "late" }, { expiry: Math.floor(Date.now() / 1000) - 5 }));
    expect(expired.json).to.include({ error: "expired", field: "expiry" });
    // Refusals made on the API thread still count in the pit's metrics.
    await until(async () => /cme_actions_total\{action="SetPrompt",status="401"\} 3/.test((await get("/metrics")).body));
    const wrongPhase = await post("/set-pairs", await signed(alice, "SetPairs", { pairs: ["PEPE/USDC"] }));
    expect(wrongPhase.status).to.equal(409);
  });

  it("refuses re-encoded replays and high-s signatures from its thread", async () => {
    const body = await signed(alice, "SetPrompt", { prompt: "one spelling" }, { nonce: 4242n });
    expect((await post("/set-prompt", body)).status).to.equal(200);
    for (const nonce of ["04242", "0x1092"]) {
      const r = await post("/set-prompt", { ...body, nonce });
      expect(r.status, nonce).to.equal(400);
      expect(r.json, nonce).to.include({ field: "nonce" });
    }
    const lower = await post("/set-prompt", { ...body, account: body.account.toLowerCase() });
    expect(lower.json).to.include({ error: "replayed_nonce", field: "nonce" });
    const fresh = await signed(alice, "SetPrompt", { prompt: "twin" });
    const s = BigInt(`0x${fresh.signature.slice(66, 130)}`);
    const v = Number.parseInt(fresh.signature.slice(130), 16);
    const twin = `0x${fresh.signature.slice(2, 66)}${(SECP256K1_N - s).toString(16).padStart(64, "0")}${(v === 27 ? 28 : 27).toString(16)}`;
    const high = await post("/set-prompt", { ...fresh, signature: twin });
    expect(high.status).to.equal(401);
    expect(high.json).to.include({ error: "high_s_signature", field: "signature" });
    expect(isNonceUsed(k.db, alice.address, fresh.nonce)).to.equal(false);
    expect(getUser(k.db, alice.address)?.prompt).to.equal("one spelling");
    const bad = await get("/api/trades/PEPE-USDC?limit=0x10");
    expect(bad.status).to.equal(400);
    expect(JSON.parse(bad.body).field).to.equal("limit");
  });

  it("checks a trade action's signature in its thread and hands it to the pit, which answers", async () => {
    const body = await signedTrade(alice, "cancel", { requestId: 7 });
    const r = await post("/trade/cancel", body);
    // The signature passed in the API thread; the pit refuses: there is no request 7.
    expect(r.status, JSON.stringify(r.json)).to.equal(409);
    expect(r.json).to.include({ error: "unknown_request" });
    const forged = await post("/trade/cancel", { ...(await signedTrade(alice, "cancel", { requestId: 7 })), requestId: 8 });
    expect(forged.status).to.equal(401);
    // A whitelist (address[]) is checked there too, in whatever case the wallet sends it.
    const ask = await signedTrade(alice, "request", { pair: "PEPE/USDC", side: "buy", size: 1, price: 0, ttlSec: 60, whitelist: [bob.address.toLowerCase()], minFill: 1, remainder: "drop" });
    const asked = await post("/trade/request", { ...ask, whitelist: [bob.address] });
    expect(asked.status, JSON.stringify(asked.json)).to.equal(200);
    const requestId = asked.json.seq as number;
    const hidden = JSON.parse((await get(`/api/quotes?account=${FAKE_DEPLOYMENT.treasury}`)).body) as { requests: { requestId: number }[] };
    expect(hidden.requests.map((r) => r.requestId)).to.not.include(requestId);
    const shown = JSON.parse((await get(`/api/quotes?account=${bob.address}`)).body) as { requests: { requestId: number; whitelisted: boolean }[] };
    expect(shown.requests.find((r) => r.requestId === requestId)).to.include({ whitelisted: true });
    const tampered = await post("/trade/request", { ...ask, minFill: 0 });
    expect(tampered.status).to.equal(401);
    const quoted = await post("/trade/quote", await signedTrade(bob, "quote", { requestId, price: 10_000, size: 1, ttlSec: 60 }));
    expect(quoted.status, JSON.stringify(quoted.json)).to.equal(200);
    const lock = await signedTrade(bob, "lock", { requestId });
    expect((await post("/trade/lock", lock)).status).to.equal(200);
    expect((await post("/trade/lock", lock)).json).to.include({ error: "replayed_nonce" });
    expect((await post("/trade/unlock", await signedTrade(bob, "unlock", { requestId }))).status).to.equal(200);
    expect((await post("/trade/cancel", await signedTrade(alice, "cancel", { requestId }))).status).to.equal(200);
  });

  it("streams from its thread: hello, published messages, and a slow subscriber dropped", async () => {
    const url = base.replace("http", "ws") + "/ws";
    const fast = await open(url);
    await until(() => fast.messages.length > 0);
    const hello = fast.messages[0]!;
    expect(hello.type).to.equal("hello");
    expect((hello.session as { phase: string }).phase).to.equal("trading");
    expect(Object.keys(hello.books as object)).to.deep.equal(["PEPE/USDC", "WIF/USDC"]);
    expect((hello.trades as Record<string, unknown[]>)["PEPE/USDC"]).to.have.length(3);
    expect(hello.outcry).to.deep.equal(JSON.parse((await get("/api/outcry?limit=50")).body));
    const slow = await open(url);
    await until(() => k.hub.size === 2);

    for (let i = 0; i < 30; i++) k.hub.publish("outcry", { line: `shout ${i}` });
    k.hub.publish("phase", { n: 1 });
    k.hub.flush();
    const lines = () => fast.messages.filter((m) => m.type === "outcry").flatMap((m) => (m.items as { line: string }[]).map((x) => x.line));
    await until(() => fast.messages.some((m) => m.type === "phase"));
    expect(lines().slice(-30)).to.deep.equal(Array.from({ length: 30 }, (_, i) => `shout ${i}`));

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
    await until(() => k.hub.size === 1);
    await until(() => fast.messages.filter((m) => m.type === "settlement").length === sent, 20_000);
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    await until(() => slowClosed);
    expect((await get("/metrics")).body).to.match(/cme_ws_dropped_total 1/);
    fast.ws.close();
  });

  it("comes back on the same port when its thread dies", async () => {
    const before = base;
    await k.api.kill();
    await until(async () => {
      try {
        return (await get("/healthz")).status === 200;
      } catch {
        return false;
      }
    }, 20_000);
    expect(k.api.url).to.equal(before);
    // Counters carry over from the thread that died (the slow subscriber dropped above).
    await until(async () => /cme_ws_clients 0/.test((await get("/metrics")).body));
    expect((await get("/metrics")).body).to.match(/cme_ws_dropped_total 1\n/);
    expect((await get("/metrics")).body).to.match(/cme_errors_total\{where="api_thread"\} 1/);
    const b = JSON.parse((await get("/api/books/PEPE-USDC?levels=5")).body);
    expect(withoutTs(b)).to.deep.equal(withoutTs(await local("/api/books/PEPE-USDC?levels=5")));
  });
});
