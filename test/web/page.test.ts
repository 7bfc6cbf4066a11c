// Browser tests of the pit page (keeper/web/) as the keeper serves it: the real app (keeper/api/app.ts,
// its routes, JSON schemas, static files and /ws) over a simulated keeper port that plays a
// scripted, seeded market (test/support/simulated-keeper.ts). The market only advances when a test
// calls step(), so every "it updates live" assertion compares states, never timings. The browser
// is the npm-shipped Chromium, driven with playwright-core (test/support/browser.ts).
import { expect } from "chai";
import { mkdir } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { decodeFunctionData, encodeFunctionData, getAddress, parseAbi, recoverTypedDataAddress, type Address, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { buildApp } from "../../keeper/api/app.ts";
import type { BrokerWire, LeaderboardRowWire, PairWire, StreamMessage } from "../../keeper/api/wire.ts";
import { ACTION_TYPES } from "../../keeper/auth/eip712.ts";
import { PROMPT_MAX_CHARS } from "../../keeper/brokers/prompt-rules.ts";
import { KEEP_NAMES_SHIM, launchBrowser } from "../support/browser.ts";
import { BROKERS, SimulatedKeeper, type SimulatedKeeperOptions } from "../support/simulated-keeper.ts";

const OUT_DIR = fileURLToPath(new URL("../../test-output/page/", import.meta.url));
// Hardhat's well-known development keys: test wallets only.
const USER = privateKeyToAccount("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
const STRANGER = privateKeyToAccount("0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a");
const USDC_IN_VAULT = 2_500_000_000n; // 2,500 USDC
const USDC_IN_WALLET = 5_000_000_000n; // 5,000 USDC
const ERC20 = parseAbi(["function approve(address,uint256)", "function allowance(address,address) view returns (uint256)", "function balanceOf(address) view returns (uint256)"]);
const VAULT_ABI = parseAbi([
  "function deposit(address,uint256) returns (uint256)",
  "function withdraw(address,uint256)",
  "function withdrawWithPermit(address,uint256,address,uint256,uint256,bytes)",
]);

/** Exact decimal of `value / 10^decimals` rounded half up to `frac` places, with grouping and sign: the page's PnL format. */
function fixed(value: bigint, decimals: number, frac: number, sign = false): string {
  const neg = value < 0n;
  let abs = neg ? -value : value;
  const div = 10n ** BigInt(decimals - frac);
  abs = (abs + div / 2n) / div;
  const s = abs.toString().padStart(frac + 1, "0");
  const int = s.slice(0, s.length - frac).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${neg && abs !== 0n ? "-" : sign && abs !== 0n ? "+" : ""}${int}${frac > 0 ? "." + s.slice(s.length - frac) : ""}`;
}

/**
 * The page's price text for `ticks`, restated from the unit definition: a tick is
 * quotePerTickLot quote base units per lot of lotSize base units, shown per whole base token with
 * the fewest decimals that print one tick exactly.
 */
function price(pair: PairWire, ticks: number): string {
  const num = BigInt(pair.quotePerTickLot) * 10n ** BigInt(pair.baseDecimals);
  const den = BigInt(pair.lotSize) * 10n ** BigInt(pair.quoteDecimals);
  let d = 0;
  while ((num * 10n ** BigInt(d)) % den !== 0n) d++;
  return fixed((BigInt(ticks) * num * 10n ** BigInt(d)) / den, d, d);
}

const shortAddr = (a: string) => `${a.slice(0, 6)}…${a.slice(-4)}`;
const brokerName = (id: string | null) => BROKERS.find((b) => b.id === id)?.name ?? String(id);

/** A signed action as the page posted it, with the status the keeper's app answered (schema refusals included). */
interface Post {
  route: string;
  status: number;
  body: unknown;
}

interface Served {
  keeper: SimulatedKeeper;
  app: FastifyInstance;
  url: string;
  posts: Post[];
}

/** The keeper's app over a simulated keeper, listening on a free port. */
async function serve(opts: SimulatedKeeperOptions): Promise<Served> {
  const keeper = new SimulatedKeeper(opts);
  const app = await buildApp({ keeper });
  const posts: Post[] = [];
  // Recorded before the reply leaves, so a test that has seen the page react also sees the post.
  app.addHook("onSend", async (req, reply, payload) => {
    if (req.method === "POST") posts.push({ route: req.url, status: reply.statusCode, body: req.body });
    return payload;
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  return { keeper, app, posts, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

interface PitView {
  bestBid: string;
  bestAsk: string;
  book: string;
  tapeTop: string;
  tapeRows: number;
  outcryTop: string;
  outcryRows: number;
  board: string[];
  boardTopPnl: string;
  tickers: string;
}

async function readPit(page: Page): Promise<PitView> {
  return page.evaluate(() => {
    const text = (sel: string) => document.querySelector(sel)?.textContent?.trim() ?? "";
    const bids = [...document.querySelectorAll("#bids .lvl")];
    const asks = [...document.querySelectorAll("#asks .lvl")];
    const boardRows = [...document.querySelectorAll("#leaderboard tr")];
    return {
      bestBid: bids[0]?.querySelector(".p")?.textContent ?? "",
      bestAsk: asks[asks.length - 1]?.querySelector(".p")?.textContent ?? "",
      book: [...asks, ...bids].map((r) => r.textContent).join("|"),
      tapeTop: (document.querySelector("#tape .trade") as HTMLElement | null)?.dataset.id ?? "",
      tapeRows: document.querySelectorAll("#tape .trade").length,
      outcryTop: text("#outcry li"),
      outcryRows: document.querySelectorAll("#outcry li q").length,
      board: boardRows.map((r) => r.textContent ?? ""),
      boardTopPnl: boardRows[0]?.querySelector(".pnl")?.textContent ?? "",
      tickers: text("#tickers"),
    };
  });
}

function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  // Chromium logs every 4xx; those are the keeper's refusals the page shows the user, not page errors.
  page.on("console", (m) => m.type() === "error" && !/status of 4\d\d/.test(m.text()) && errors.push(m.text()));
  return errors;
}

type SignedRequest = { account: string; typedData: { domain: Record<string, unknown>; primaryType: string; types: Record<string, { name: string; type: string }[]>; message: Record<string, unknown> } };

/**
 * An EIP-1193 provider for `address`, injected before the page loads: it records every request in
 * window.__walletLog, answers balance and allowance calls (USDC_IN_WALLET of `usdc`, no
 * allowance), returns fake transaction hashes with successful receipts, and signs typed data in
 * Node with a real key (`getSigner()`), recording each request in `signed`.
 */
async function installFakeWallet(context: BrowserContext, address: Address, getSigner: () => typeof USER, signed: SignedRequest[], usdc: Address): Promise<void> {
  // The fake wallet signs in Node with a real key, so the keeper's signature check is real.
  await context.exposeFunction("__signTypedData", async (account: string, json: string) => {
    const typedData = JSON.parse(json);
    signed.push({ account, typedData });
    const { EIP712Domain: _d, ...types } = typedData.types as Record<string, { name: string; type: string }[]>;
    const fields = types[typedData.primaryType] ?? [];
    // Wallets accept uint256 as decimal strings; viem wants bigint.
    const message = Object.fromEntries(
      Object.entries(typedData.message as Record<string, unknown>).map(([k, v]) => [k, fields.find((f) => f.name === k)?.type.startsWith("uint") ? BigInt(v as string) : v]),
    );
    return getSigner().signTypedData({ domain: typedData.domain, types, primaryType: typedData.primaryType, message } as Parameters<typeof USER.signTypedData>[0]);
  });
  await context.addInitScript(
    ({ address, usdc, usdcBalance }) => {
      const log: { method: string; params?: unknown[] }[] = [];
      const listeners: Record<string, ((x: unknown) => void)[]> = {};
      let authorised = false;
      let txCount = 0;
      const word = (v: bigint) => "0x" + v.toString(16).padStart(64, "0");
      const w = window as unknown as Record<string, unknown>;
      w.__walletLog = log;
      w.ethereum = {
        isFakeWallet: true,
        async request({ method, params }: { method: string; params?: unknown[] }) {
          log.push(params === undefined ? { method } : { method, params });
          switch (method) {
            case "eth_accounts":
              return authorised ? [address] : [];
            case "eth_requestAccounts":
              authorised = true;
              return [address];
            case "eth_chainId":
              return "0x7a69";
            case "eth_call": {
              const call = (params?.[0] ?? {}) as { to: string; data: string };
              if (call.data.startsWith("0x70a08231")) return word(call.to.toLowerCase() === usdc.toLowerCase() ? BigInt(usdcBalance) : 0n);
              return word(0n); // allowance: none yet, so the page must approve first
            }
            case "eth_sendTransaction":
              txCount++;
              return "0x" + txCount.toString(16).padStart(64, "a");
            case "eth_getTransactionReceipt":
              return { status: "0x1", transactionHash: params?.[0] };
            case "eth_signTypedData_v4":
              return (w.__signTypedData as (a: unknown, j: unknown) => Promise<string>)(params?.[0], params?.[1]);
            default:
              throw Object.assign(new Error(`fake wallet: ${method} unsupported`), { code: 4200 });
          }
        },
        on(event: string, fn: (x: unknown) => void) {
          (listeners[event] ??= []).push(fn);
        },
        removeListener() {},
      };
    },
    { address, usdc, usdcBalance: USDC_IN_WALLET.toString() },
  );
}

describe("pit page (keeper/web) in chromium, served by the keeper's app", function () {
  this.timeout(90_000);
  let server: Served;
  let keeper: SimulatedKeeper;
  let browser: Browser;

  before(async () => {
    await mkdir(OUT_DIR, { recursive: true });
    server = await serve({ seed: 7, warmupSteps: 120, wallets: [{ address: USER.address, balances: { USDC: USDC_IN_VAULT } }] });
    keeper = server.keeper;
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.app.close();
  });

  const pairAt = (i: number) => keeper.session().pairs[i] as PairWire;
  const bestBid = (pair: PairWire) => keeper.book(pair.symbol, 1)?.bids[0]?.price ?? 0;
  const newestTrade = (pair: PairWire) => String(keeper.trades(pair.symbol, 1)?.[0]?.seq);
  const topRow = () => keeper.leaderboard()[0] as LeaderboardRowWire;

  async function newPage(viewport = { width: 1280, height: 800 }): Promise<Page> {
    const page = await browser.newPage({ viewport });
    await page.addInitScript(KEEP_NAMES_SHIM);
    return page;
  }

  async function openPit(viewport = { width: 1280, height: 800 }, url = server.url): Promise<{ page: Page; errors: string[] }> {
    const page = await newPage(viewport);
    const errors = watchErrors(page);
    await page.goto(`${url}/`);
    await page.waitForSelector('#conn[data-status="live"]');
    await page.waitForSelector("#bids .lvl");
    await page.waitForSelector("#tape .trade");
    await page.waitForSelector("#outcry li q");
    await page.waitForSelector("#leaderboard tr");
    return { page, errors };
  }

  it("renders the book, trades, outcry and leaderboard, then updates them live from the stream", async () => {
    const { page, errors } = await openPit();
    const first = await readPit(page);

    // Exact values, formatted from integer ticks and base units: prices per whole token from
    // the pair's units, leaderboard PnL from USDC base units with two decimals.
    const pepe = pairAt(0);
    expect(pepe.symbol).to.equal("PEPE/USDC");
    const book = keeper.book(pepe.symbol, 1);
    expect(first.bestBid).to.equal(price(pepe, book?.bids[0]?.price ?? 0));
    expect(first.bestAsk).to.equal(price(pepe, book?.asks[0]?.price ?? 0));
    // The same price in floating point, from the definition: ticks * quotePerTickLot quote base units per lot.
    const perToken = ((book?.bids[0]?.price ?? 0) * pepe.quotePerTickLot * 10 ** pepe.baseDecimals) / (Number(pepe.lotSize) * 10 ** pepe.quoteDecimals);
    expect(Number(first.bestBid)).to.be.closeTo(perToken, 1e-15);
    const top = topRow();
    expect(first.boardTopPnl).to.equal(fixed(BigInt(top.pnl), 6, 2, true));
    expect(first.board[0]).to.contain(brokerName(top.broker));
    expect(first.board[0]).to.contain(shortAddr(top.account));
    expect(first.tapeRows).to.be.greaterThan(10);
    expect(first.outcryRows).to.be.greaterThan(5);
    expect(first.tickers).to.contain("PEPE/USDC").and.contain("WIF/USDC").and.contain("DOGE/USDC");
    expect(await page.textContent("#session-id")).to.equal("Session #7");
    expect(await page.textContent("#phase")).to.equal("Trading");
    expect(await page.textContent("#clock")).to.match(/^\d\d:\d\d$/);
    expect(await page.getAttribute("#conn", "data-status")).to.equal("live");
    expect(await page.locator("#prompts li").count()).to.equal(10);

    keeper.step(6);
    // What the page must converge to once it has read the stream.
    const want = {
      tapeTop: newestTrade(pepe),
      boardTopPnl: fixed(BigInt(topRow().pnl), 6, 2, true),
      outcryLine: keeper.outcry(1)[0]?.line ?? "<none>",
      bestBid: price(pepe, bestBid(pepe)),
    };
    expect(want.tapeTop).to.not.equal(first.tapeTop);
    expect(want.outcryLine).to.not.equal(first.outcryTop);
    await page.waitForFunction((w) => {
      const tape = (document.querySelector("#tape .trade") as HTMLElement | null)?.dataset.id;
      const pnl = document.querySelector("#leaderboard tr .pnl")?.textContent;
      const outcry = document.querySelector("#outcry li q")?.textContent;
      const bid = document.querySelector("#bids .lvl .p")?.textContent;
      return tape === w.tapeTop && pnl === w.boardTopPnl && outcry === w.outcryLine && bid === w.bestBid;
    }, want);
    const second = await readPit(page);
    expect(second.book).to.not.equal(first.book);
    expect(second.board).to.not.deep.equal(first.board);

    // Another pair: the tab switches the book, chart and tape.
    const dogePair = pairAt(2);
    await page.click(`#tickers button[data-pair="${dogePair.id}"]`);
    await page.waitForFunction(() => document.querySelector("#book-pair")?.textContent === "DOGE/USDC");
    const doge = await readPit(page);
    expect(doge.bestBid).to.equal(price(dogePair, bestBid(dogePair)));
    expect(doge.tapeTop).to.equal(newestTrade(dogePair));
    await page.click(`#tickers button[data-pair="${pepe.id}"]`);
    await page.waitForFunction(() => document.querySelector("#book-pair")?.textContent === "PEPE/USDC");

    // Let the last update's flash animations finish so the screenshot shows the settled book.
    await page.waitForTimeout(800);
    await page.screenshot({ path: `${OUT_DIR}pit-1280x800.png` });
    expect(errors).to.deep.equal([]);
    await page.close();
  });

  it("charts the whole session: the trades before the hello's 50 a pair come over HTTP", async () => {
    const { page, errors } = await openPit();
    const pepe = pairAt(0);
    const all = keeper.trades(pepe.symbol, Number.MAX_SAFE_INTEGER)?.length ?? 0;
    expect(all).to.be.greaterThan(50).and.at.most(500);
    await page.waitForFunction(
      ([id, n]) => (window as unknown as { __cme: { state: { pairs: Map<number, { trades: unknown[] }> } } }).__cme.state.pairs.get(id)?.trades.length === n,
      [pepe.id, all] as const,
    );
    expect(errors).to.deep.equal([]);
    await page.close();
  });

  it("lays out on a phone width without horizontal scrolling", async () => {
    const { page, errors } = await openPit({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow).to.equal(0);
    await page.screenshot({ path: `${OUT_DIR}pit-phone.png`, fullPage: true });
    expect(errors).to.deep.equal([]);
    await page.close();
  });

  it("reconnects after the stream drops and resumes live updates", async () => {
    const { page, errors } = await openPit();
    keeper.dropClients();
    await page.waitForSelector('#conn[data-status="reconnecting"]');
    await page.waitForSelector('#conn[data-status="live"]', { timeout: 15_000 });
    const before = await readPit(page);
    keeper.step(4);
    await page.waitForFunction((prev) => (document.querySelector("#tape .trade") as HTMLElement | null)?.dataset.id !== prev, before.tapeTop);
    expect(errors).to.deep.equal([]);
    await page.close();
  });

  it("draws the pit from the HTTP routes while the stream is unavailable", async () => {
    const page = await newPage();
    const errors = watchErrors(page);
    await page.routeWebSocket(/\/ws$/, (ws) => ws.close());
    await page.goto(`${server.url}/`);
    await page.waitForSelector("#bids .lvl");
    await page.waitForSelector("#tape .trade");
    await page.waitForSelector("#outcry li q");
    await page.waitForSelector("#leaderboard tr");
    expect(await page.getAttribute("#conn", "data-status")).to.be.oneOf(["connecting", "reconnecting"]);
    const view = await readPit(page);
    const pepe = pairAt(0);
    expect(view.bestBid).to.equal(price(pepe, bestBid(pepe)));
    expect(view.tapeTop).to.equal(newestTrade(pepe));
    expect(view.boardTopPnl).to.equal(fixed(BigInt(topRow().pnl), 6, 2, true));
    expect(await page.textContent("#phase")).to.equal("Trading");
    expect(errors).to.deep.equal([]);
    await page.close();
  });

  it("shows a broker's outcry as text, never as markup", async () => {
    const { page } = await openPit();
    const line = `<img src=x onerror="window.__pwned=1">BUY EVERYTHING`;
    keeper.shout({ account: USER.address, accountId: 4, broker: "momentum", line, ts: keeper.session().serverTime });
    await page.waitForFunction((l) => document.querySelector("#outcry li q")?.textContent === l, line);
    expect(await page.locator("#outcry img").count()).to.equal(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).to.equal(undefined);
    await page.close();
  });

  it("shows a liquidation in the feed as the keeper's line: what was covered, at what price, the fee", async () => {
    const { page, errors } = await openPit();
    const pepe = pairAt(0);
    const px = bestBid(pepe);
    // The wire message as api/stream-publisher.ts sends it, through the page's own reducer.
    const msg = {
      account: USER.address,
      accountId: 4,
      broker: "momentum",
      covered: [{ pair: pepe.symbol, asset: "PEPE", side: "sell", lots: 3, amount: String(3n * BigInt(pepe.lotSize)), quote: "0", price: px }],
      cancelledOrders: 2,
      fee: "1234567",
      equityBefore: "100",
      maintenanceBefore: "200",
      equityAfter: "90",
      fullyCovered: true,
      line: "the keeper liquidated below maintenance margin",
      ts: keeper.session().serverTime,
    };
    await page.evaluate(async (m) => {
      const url = "/state.js";
      const mod = await import(url);
      mod.applyLiquidation((window as unknown as { __cme: { state: unknown } }).__cme.state, m);
    }, msg);
    // The next stream message redraws the feed.
    keeper.shout({ account: USER.address, accountId: 4, broker: "momentum", line: "after the bell", ts: keeper.session().serverTime });
    await page.waitForSelector("#outcry li.liq");
    const text = (await page.textContent("#outcry li.liq")) ?? "";
    expect(text).to.contain("keeper");
    expect(text).to.contain(`Liquidated sold`);
    expect(text).to.contain(`at ${price(pepe, px)}`);
    expect(text).to.contain("fee 1.23 USDC to insurance");
    // The keeper's line, not the broker's: no broker name, no quoted shout.
    expect(await page.locator("#outcry li.liq q").count()).to.equal(0);
    expect(await page.locator("#outcry li.liq .broker").count()).to.equal(0);
    expect(errors).to.deep.equal([]);
    await page.close();
  });

  it("follows a session through closing, settlement and into the next one", async () => {
    const quick = await serve({ seed: 3, warmupSteps: 10, phaseSteps: { pre_session: 5, trading: 14, closing: 3, settled: 1 } });
    const page = await newPage();
    const errors = watchErrors(page);
    try {
      await page.goto(`${quick.url}/`);
      await page.waitForSelector('#conn[data-status="live"]');
      await page.waitForSelector("#bids .lvl");
      quick.keeper.step(4);
      await page.waitForFunction(() => document.querySelector("#phase")?.textContent === "Closing");
      await page.waitForFunction(() => document.querySelectorAll("#bids .lvl").length === 0);
      quick.keeper.step(3);
      await page.waitForFunction(() => document.querySelector("#phase")?.textContent === "Settling");
      // Settling has no scheduled end: it lasts until the vault finalizes.
      expect(await page.textContent("#clock")).to.equal("on-chain");
      // One settlement transaction a step: begin, then the batches.
      quick.keeper.step(3);
      await page.waitForFunction(() => /posting batches 2\/3/.test(document.querySelector("#phase-note")?.textContent ?? ""));
      quick.keeper.step(2);
      await page.waitForFunction(() => /session #7 finalized on-chain/.test(document.querySelector("#phase-note")?.textContent ?? ""));
      await page.waitForFunction(() => document.querySelector("#phase")?.textContent === "Settled");
      // Finalized: session 7's top prompts are published, and after settled session 8 opens.
      await page.waitForFunction(() => [...document.querySelectorAll("#prompts-session option")].some((o) => o.textContent === "Session #7"));
      quick.keeper.step(1);
      await page.waitForFunction(() => document.querySelector("#session-id")?.textContent === "Session #8");
      expect(await page.textContent("#phase")).to.equal("Pre-session");
      expect(await page.locator("#tape .trade").count()).to.equal(0);
      expect(await page.locator("#chart-overlay").textContent()).to.contain("Pre-session");
      quick.keeper.step(12);
      await page.waitForFunction(() => document.querySelector("#phase")?.textContent === "Trading");
      await page.waitForSelector("#tape .trade");
      expect(errors).to.deep.equal([]);
    } finally {
      await page.close();
      await quick.app.close();
    }
  });

  it("says clearly that there is no browser wallet", async () => {
    const { page } = await openPit();
    await page.click("#wallet-btn");
    await page.waitForSelector("#wallet-notice:not([hidden])");
    expect(await page.textContent("#wallet-notice")).to.contain("No browser wallet found");
    expect(await page.isHidden("#account")).to.equal(true);
    await page.close();
  });

  it("shows a wallet without a vault account as such, and the keeper's refusal of its signed action", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.addInitScript(KEEP_NAMES_SHIM);
    const signed: SignedRequest[] = [];
    await installFakeWallet(context, STRANGER.address, () => STRANGER, signed, keeper.session().tokens[0]?.address as Address);
    const page = await context.newPage();
    try {
      await page.goto(`${server.url}/`);
      await page.waitForSelector('#conn[data-status="live"]');
      await page.click("#wallet-btn");
      await page.waitForFunction((a) => document.querySelector("#acct-address")?.textContent === a, STRANGER.address);
      await page.waitForFunction(() => document.querySelector("#acct-id")?.textContent === "no deposit yet");
      await page.selectOption("#f-broker select", "momentum");
      await page.click('#f-broker button[type="submit"]');
      // Past the app's body schema (a shape error would be a 400 naming the field) to the keeper's 403.
      await page.waitForFunction(() => (document.querySelector("#f-broker .msg") as HTMLElement).dataset.kind === "error");
      expect(await page.textContent("#f-broker .msg")).to.equal(`${STRANGER.address} has no vault account yet: deposit first (403)`);
      expect(server.posts.at(-1)).to.include({ route: "/set-broker", status: 403 });
      const eip712 = (await (await fetch(`${server.url}/api/eip712`)).json()) as { domain: unknown };
      expect(signed.at(-1)?.typedData.domain).to.deep.equal(eip712.domain);
      expect(signed.at(-1)?.typedData.primaryType).to.equal("SetBroker");
    } finally {
      await context.close();
    }
  });

  // Requests for quote on their own pit, so their steps leave the shared market alone. A broker of
  // the catalogue has a hostile name: the page must print it as text wherever it names the broker.
  describe("requests for quote", () => {
    const EVIL = `<img src=x onerror="window.__pwned=1">Evil Desk`;
    const catalogue: BrokerWire[] = [...BROKERS, { id: "evil-desk", kind: "rule", name: EVIL, available: true, description: "a name that is markup" }];
    let rfq: Served;
    let k: SimulatedKeeper;

    before(async () => {
      rfq = await serve({ seed: 11, warmupSteps: 20, brokers: catalogue });
      k = rfq.keeper;
    });

    after(async () => {
      await rfq?.app.close();
    });

    const wif = () => k.session().pairs[1] as PairWire;
    const rowOf = (broker: string) => {
      const row = k.leaderboard().find((r) => r.broker === broker);
      if (row === undefined) throw new Error(`no account trades as ${broker}`);
      return row;
    };
    const accountOf = (broker: string) => rowOf(broker).accountId;
    /** How the page names an account: its broker's name and its short address. */
    const who = (broker: string) => `${catalogue.find((b) => b.id === broker)?.name} ${shortAddr(rowOf(broker).account)}`;
    /** WIF's lot is one whole WIF: the page prints a size under a thousand lots with two decimals. */
    const wifSize = (lots: number) => `${lots}.00 WIF`;

    async function openRfqPit(viewport?: { width: number; height: number }): Promise<{ page: Page; errors: string[] }> {
      const opened = await openPit(viewport, rfq.url);
      // The tape shows the selected pair; these tests trade blocks of WIF.
      await opened.page.click(`#tickers button[data-pair="${wif().id}"]`);
      await opened.page.waitForFunction(() => document.querySelector("#tape-pair")?.textContent === "WIF/USDC");
      return opened;
    }

    /** A request as the list shows it: who, then each part of its head and terms, then its quotes. */
    interface RequestView {
      id: string;
      who: string;
      head: string[];
      terms: string[];
      quotes: { id: string; who: string; price: string; size: string; best: boolean }[];
    }

    function readRequests(page: Page): Promise<RequestView[]> {
      return page.evaluate(() => {
        const who = (e: Element | null) => [...(e?.querySelectorAll(".broker, .acct") ?? [])].map((x) => x.textContent).join(" ");
        const parts = (e: Element | null) => [...(e?.children ?? [])].filter((x) => !x.classList.contains("who")).map((x) => x.textContent ?? "");
        return [...document.querySelectorAll<HTMLElement>("#rfq-list li.rq")].map((li) => ({
          id: li.dataset.request ?? "",
          who: who(li.querySelector(".rq-head .who")),
          head: parts(li.querySelector(".rq-head")),
          terms: parts(li.querySelector(".rq-terms")),
          quotes: [...li.querySelectorAll<HTMLElement>(".q")].map((q) => ({
            id: q.dataset.quote ?? "",
            who: who(q.querySelector(".who")),
            price: q.querySelector(".q-px")?.textContent ?? "",
            size: q.querySelector(".q-size")?.textContent ?? "",
            best: q.classList.contains("best"),
          })),
        }));
      });
    }

    /** Waits until request `id` is listed with `quotes` quote ids in that order (best first), then reads it. */
    async function requestView(page: Page, id: number, quotes: number[]): Promise<RequestView> {
      await page.waitForFunction(
        ([id, want]) => {
          const li = document.querySelector(`#rfq-list li.rq[data-request="${id}"]`);
          return li !== null && [...li.querySelectorAll<HTMLElement>(".q")].map((q) => q.dataset.quote).join() === want;
        },
        [id, quotes.join()] as const,
      );
      return (await readRequests(page)).find((r) => r.id === String(id))!;
    }

    const gone = (page: Page, id: number) => page.waitForFunction((id) => document.querySelector(`#rfq-list li.rq[data-request="${id}"]`) === null, id);

    /** The feed's request-for-quote lines, newest first: the tag, who, and the sentence. */
    const feedLines = (page: Page) =>
      page.evaluate(() =>
        [...document.querySelectorAll<HTMLElement>("#outcry li.rfq")].map((li) => ({
          event: li.dataset.event ?? "",
          tag: li.querySelector(".rfq-tag")?.textContent ?? "",
          who: [...li.querySelectorAll(".who .broker, .who .acct")].map((x) => x.textContent).join(" "),
          text: li.querySelector(".rfq-line")?.textContent ?? "",
        })),
      );

    it("shows a request and its quotes live, best first, then the accept as block trades on the tape and in the feed", async () => {
      const { page, errors } = await openRfqPit();
      const pair = wif();
      const ask = k.book(pair.symbol, 1)?.asks[0]?.price ?? 0;
      const id = k.requestQuote({ accountId: accountOf("momentum"), pair: pair.symbol, side: "buy", size: 40, limit: ask + 20, ttlSteps: 30 });
      const opened = await requestView(page, id, []);
      expect(opened.who).to.equal(who("momentum"));
      expect(opened.head.slice(0, 3)).to.deep.equal(["buys", wifSize(40), "WIF/USDC"]);
      expect(opened.terms).to.deep.equal([`limit ${price(pair, ask + 20)}`, `${wifSize(40)} left`, "no quotes yet"]);
      const [line] = await feedLines(page);
      expect(line).to.deep.equal({ event: "request", tag: "RFQ", who: who("momentum"), text: `who sells ${wifSize(40)}? limit ${price(pair, ask + 20)} · open 30s` });
      // Not a broker's shout: no quotation marks around it.
      expect(await page.locator("#outcry li.rfq q").count()).to.equal(0);

      const mm = k.quote({ requestId: id, quoter: accountOf("market-maker"), price: ask + 12, size: 25, ttlSteps: 20 });
      const scalper = k.quote({ requestId: id, quoter: accountOf("scalper"), price: ask + 8, size: 40, ttlSteps: 20 });
      // A buy request: the lowest offer is the best.
      const quoted = await requestView(page, id, [scalper, mm]);
      expect(quoted.quotes).to.deep.equal([
        { id: String(scalper), who: who("scalper"), price: price(pair, ask + 8), size: `× ${wifSize(40)}`, best: true },
        { id: String(mm), who: who("market-maker"), price: price(pair, ask + 12), size: `× ${wifSize(25)}`, best: false },
      ]);
      expect(quoted.terms[2]).to.equal(`best ${price(pair, ask + 8)} · 2 quotes`);

      // The market maker improves: its new quote replaces the old one.
      const better = k.quote({ requestId: id, quoter: accountOf("market-maker"), price: ask + 5, size: 25, ttlSteps: 20 });
      const improved = await requestView(page, id, [better, scalper]);
      expect(improved.terms[2]).to.equal(`best ${price(pair, ask + 5)} · 2 quotes`);

      // Accepting the best quotes: 25 from the market maker, then 15 of the scalper's 40.
      const lastBefore = (await page.textContent("#spread .last")) ?? "";
      expect(lastBefore).to.not.contain(price(pair, ask + 5)).and.not.contain(price(pair, ask + 8));
      k.accept({ requestId: id });
      const [second, first] = k.trades(pair.symbol, 2) ?? [];
      expect([first?.block, first?.size, first?.price, second?.block, second?.size, second?.price]).to.deep.equal([true, 25, ask + 5, true, 15, ask + 8]);
      await gone(page, id);
      await page.waitForFunction((seq) => (document.querySelector("#tape .trade") as HTMLElement | null)?.dataset.id === seq, String(second?.seq));
      const tape = await page.evaluate(() =>
        [...document.querySelectorAll<HTMLElement>("#tape .trade")].slice(0, 3).map((r) => ({ id: r.dataset.id, block: r.classList.contains("block"), tag: r.querySelector(".blk")?.textContent ?? "" })),
      );
      expect(tape).to.deep.equal([
        { id: String(second?.seq), block: true, tag: "BLK" },
        { id: String(first?.seq), block: true, tag: "BLK" },
        { id: tape[2]?.id, block: false, tag: "" },
      ]);
      // As in the keeper, a block trade is off the book and sets no last price.
      expect(await page.textContent("#spread .last")).to.equal(lastBefore);
      expect((await feedLines(page)).slice(0, 3)).to.deep.equal([
        { event: "block", tag: "BLK", who: who("momentum"), text: `bought ${wifSize(15)} at ${price(pair, ask + 8)} from ${who("scalper")}` },
        { event: "block", tag: "BLK", who: who("momentum"), text: `bought ${wifSize(25)} at ${price(pair, ask + 5)} from ${who("market-maker")}` },
        { event: "accepted", tag: "RFQ", who: who("momentum"), text: `took 2 quotes for ${wifSize(40)} · request filled` },
      ]);
      expect(await page.textContent("#rfq-count")).to.equal("none open");
      expect(errors).to.deep.equal([]);
      await page.close();
    });

    it("takes a quote off when it expires, and the request when it expires, saying so in the feed", async () => {
      const { page, errors } = await openRfqPit();
      const pair = wif();
      const bid = k.book(pair.symbol, 1)?.bids[0]?.price ?? 0;
      const id = k.requestQuote({ accountId: accountOf("mean-reversion"), pair: pair.symbol, side: "sell", size: 12, ttlSteps: 2 });
      const quote = k.quote({ requestId: id, quoter: accountOf("gpt-4.1-mini"), price: bid - 3, size: 12, ttlSteps: 1 });
      const quoted = await requestView(page, id, [quote]);
      expect(quoted.head.slice(0, 2)).to.deep.equal(["sells", wifSize(12)]);
      expect(quoted.terms).to.deep.equal(["no limit", `${wifSize(12)} left`, `best ${price(pair, bid - 3)} · 1 quote`]);

      // The sweep of the next step expires the quote; the request stays open a step longer.
      k.step(1);
      const unquoted = await requestView(page, id, []);
      expect(unquoted.terms[2]).to.equal("no quotes yet");
      k.step(1);
      await gone(page, id);
      const [ended] = await feedLines(page);
      expect(ended).to.deep.equal({ event: "ended", tag: "RFQ", who: who("mean-reversion"), text: `request to sell ${wifSize(12)} expired` });
      expect(errors).to.deep.equal([]);
      await page.close();
    });

    it("loads the open requests over HTTP on start, lock and all, and again after a reconnect", async () => {
      const pair = wif();
      const ask = k.book(pair.symbol, 1)?.asks[0]?.price ?? 0;
      const mm = accountOf("market-maker");
      // Made before the page opens: the hello carries no requests, so only GET /api/quotes can show them.
      const id = k.requestQuote({ accountId: accountOf("llama-3.1-8b"), pair: pair.symbol, side: "buy", size: 30, limit: ask + 10, ttlSteps: 60, whitelisted: true });
      const quote = k.quote({ requestId: id, quoter: mm, price: ask + 4, size: 30, ttlSteps: 60 });
      k.lock(id, mm);
      // And a block traded before: the hello's trades mark it, so the tape tags it too.
      const traded = k.requestQuote({ accountId: accountOf("scalper"), pair: pair.symbol, side: "sell", size: 3, ttlSteps: 60 });
      k.quote({ requestId: traded, quoter: accountOf("gpt-4.1-mini"), price: ask - 6, size: 3, ttlSteps: 60 });
      k.accept({ requestId: traded });
      const block = k.trades(pair.symbol, 1)?.[0];
      expect(block).to.deep.include({ block: true, size: 3, price: ask - 6 });
      const { page, errors } = await openRfqPit();
      expect(await page.$eval(`#tape .trade[data-id="${block?.seq}"]`, (r) => [r.classList.contains("block"), r.querySelector(".blk")?.textContent])).to.deep.equal([true, "BLK"]);
      const loaded = await requestView(page, id, [quote]);
      expect(loaded.who).to.equal(who("llama-3.1-8b"));
      expect(loaded.terms).to.deep.equal([
        `limit ${price(pair, ask + 10)}`,
        `${wifSize(30)} left`,
        `best ${price(pair, ask + 4)} · 1 quote`,
        `locked by ${who("market-maker")}`,
        "invited quoters only",
      ]);

      // While the stream is down one request ends and another opens; the page hears of neither
      // until it asks again after the reconnect.
      k.dropClients();
      k.cancelRequest(id);
      const next = k.requestQuote({ accountId: accountOf("momentum"), pair: pair.symbol, side: "sell", size: 7, ttlSteps: 60 });
      await page.waitForSelector('#conn[data-status="reconnecting"]');
      await page.waitForSelector('#conn[data-status="live"]', { timeout: 15_000 });
      await gone(page, id);
      const reloaded = await requestView(page, next, []);
      expect([reloaded.who, ...reloaded.head.slice(0, 2)]).to.deep.equal([who("momentum"), "sells", wifSize(7)]);
      expect((await readRequests(page)).map((r) => r.id)).to.deep.equal([String(next)]);

      // Live again: the cancel streams, and the feed says so.
      k.cancelRequest(next);
      await gone(page, next);
      const [cancelled] = await feedLines(page);
      expect(cancelled).to.deep.equal({ event: "ended", tag: "RFQ", who: who("momentum"), text: `request to sell ${wifSize(7)} cancelled` });
      expect(errors).to.deep.equal([]);
      await page.close();
    });

    it("prints a broker's name as text, never markup, in the requests, their quotes and the feed; fits a phone", async () => {
      const { page, errors } = await openRfqPit();
      const pair = wif();
      const ask = k.book(pair.symbol, 1)?.asks[0]?.price ?? 0;
      const evil = accountOf("evil-desk");
      const asked = k.requestQuote({ accountId: evil, pair: pair.symbol, side: "sell", size: 5, limit: ask - 30, ttlSteps: 30 });
      const other = k.requestQuote({ accountId: accountOf("momentum"), pair: pair.symbol, side: "buy", size: 9, limit: ask + 30, ttlSteps: 30, whitelisted: true });
      const quote = k.quote({ requestId: other, quoter: evil, price: ask + 2, size: 9, ttlSteps: 30 });
      const quoted = await requestView(page, other, [quote]);
      expect(quoted.quotes[0]?.who).to.equal(who("evil-desk"));
      const [, evilRequest] = await readRequests(page);
      expect(evilRequest?.who).to.equal(who("evil-desk"));
      expect((await feedLines(page)).slice(0, 2).map((l) => l.who)).to.deep.equal([who("momentum"), who("evil-desk")]);
      expect(await page.locator("#rfq-list img, #outcry img, #leaderboard img").count()).to.equal(0);
      expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).to.equal(undefined);
      await page.screenshot({ path: `${OUT_DIR}pit-rfq.png` });

      // On a phone the requests stack inside the outcry panel: still no sideways scrolling.
      await page.setViewportSize({ width: 390, height: 844 });
      await page.waitForFunction(() => document.documentElement.clientWidth === 390);
      expect(await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)).to.equal(0);
      await page.locator(".p-outcry").screenshot({ path: `${OUT_DIR}pit-rfq-phone.png` });

      k.cancelRequest(asked);
      k.cancelRequest(other);
      await gone(page, asked);
      await gone(page, other);
      expect(errors).to.deep.equal([]);
      await page.close();
    });
  });

  describe("with a browser wallet (injected EIP-1193 provider)", () => {
    let context: BrowserContext;
    let page: Page;
    let errors: string[];
    /** Which key the fake wallet signs with: a test switches it to prove the keeper's 401 reaches the user. */
    let signer = USER;
    const signed: SignedRequest[] = [];

    before(async () => {
      context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      await context.addInitScript(KEEP_NAMES_SHIM);
      await installFakeWallet(context, USER.address, () => signer, signed, keeper.session().tokens[0]?.address as Address);
      page = await context.newPage();
      errors = watchErrors(page);
      await page.goto(`${server.url}/`);
      await page.waitForSelector('#conn[data-status="live"]');
      await page.waitForSelector("#bids .lvl");
    });

    after(async () => {
      await context?.close();
    });

    const walletLog = () => page.evaluate(() => (window as unknown as { __walletLog: { method: string; params?: unknown[] }[] }).__walletLog);
    const lastPost = () => server.posts.at(-1);
    async function submit(form: string): Promise<{ kind: string; text: string }> {
      const before = server.posts.length;
      await page.click(`${form} button[type="submit"]`);
      await page.waitForFunction((f) => ["ok", "error"].includes((document.querySelector(`${f} .msg`) as HTMLElement | null)?.dataset.kind ?? ""), form);
      const msg = await page.$eval(`${form} .msg`, (m) => ({ kind: (m as HTMLElement).dataset.kind ?? "", text: m.textContent ?? "" }));
      // Local refusals post nothing; everything else reached the keeper exactly once.
      expect(server.posts.length - before).to.be.lessThanOrEqual(1);
      return msg;
    }

    it("connects and shows the account's wallet, vault and pit balances", async () => {
      await page.click("#wallet-btn");
      await page.waitForFunction((a) => document.querySelector("#acct-address")?.textContent === a, USER.address);
      // The account view and wallet balances arrive after the address: wait for the rendered account.
      await page.waitForFunction(() => /^account #\d+$/.test(document.querySelector("#acct-id")?.textContent ?? ""));
      const usdcRow = await page.$eval("#balances tr", (r) => [...r.children].map((c) => c.textContent));
      expect(usdcRow).to.deep.equal(["USDC", fixed(USDC_IN_WALLET, 6, 2), fixed(USDC_IN_VAULT, 6, 2), fixed(USDC_IN_VAULT, 6, 2)]);
      expect(await page.textContent("#acct-id")).to.match(/^account #\d+$/);
      expect(await page.textContent("#wallet-btn")).to.equal(`${USER.address.slice(0, 6)}…${USER.address.slice(-4)}`);
      const disabled = await page.$$eval("#f-broker option[disabled]", (os) => os.map((o) => o.textContent));
      expect(disabled).to.deep.equal(["DeepSeek V3 (OpenRouter) (unavailable: OPENROUTER_API_KEY is not set)"]);
    });

    it("signs set-broker with eth_signTypedData_v4 over the keeper's domain and posts it", async () => {
      await page.selectOption("#f-broker select", "market-maker");
      const msg = await submit("#f-broker");
      expect(msg).to.deep.equal({ kind: "ok", text: "Broker set: Market Maker." });

      const request = (await walletLog()).filter((e) => e.method === "eth_signTypedData_v4").at(-1);
      expect(request?.params?.[0]).to.equal(USER.address);
      const typed = JSON.parse(request?.params?.[1] as string);
      const eip712 = (await (await fetch(`${server.url}/api/eip712`)).json()) as { domain: Record<string, unknown>; types: Record<string, unknown> };
      expect(typed.domain).to.deep.equal(eip712.domain);
      expect(typed.primaryType).to.equal("SetBroker");
      expect(typed.types.SetBroker).to.deep.equal(eip712.types.SetBroker);
      expect(typed.types.EIP712Domain.map((f: { name: string }) => f.name)).to.deep.equal(["name", "version", "chainId", "verifyingContract"]);
      expect(Object.keys(typed.message)).to.deep.equal(["account", "brokerId", "nonce", "expiry"]);
      expect(typed.message.account).to.equal(USER.address);
      expect(typed.message.brokerId).to.equal("market-maker");
      expect(typed.message.nonce).to.match(/^\d+$/);
      expect(typed.message.expiry).to.be.a("number").greaterThan(Math.floor(keeper.session().serverTime / 1000));

      const post = lastPost();
      expect(post?.route).to.equal("/set-broker");
      expect(post?.status).to.equal(200);
      const body = post?.body as Record<string, string>;
      expect(body).to.deep.equal({ ...typed.message, signature: body.signature });
      const recovered = await recoverTypedDataAddress({
        domain: typed.domain,
        types: { SetBroker: typed.types.SetBroker },
        primaryType: "SetBroker",
        message: { ...typed.message, nonce: BigInt(typed.message.nonce), expiry: BigInt(typed.message.expiry) },
        signature: body.signature as Hex,
      });
      expect(recovered).to.equal(USER.address);
      await page.waitForFunction(() => document.querySelector('#f-broker [data-current="broker"]')?.textContent === "· now Market Maker");
    });

    it("signs the strategy prompt and the one re-prompt; a second re-prompt is refused by the keeper", async () => {
      await page.fill("#f-prompt textarea", "Timid market maker: quote two ticks around mid.");
      expect(await submit("#f-prompt")).to.deep.equal({ kind: "ok", text: "Prompt saved. It stays private unless it makes the top 10." });
      expect(lastPost()).to.include({ route: "/set-prompt", status: 200 });
      expect((lastPost()?.body as { prompt: string }).prompt).to.equal("Timid market maker: quote two ticks around mid.");

      await page.fill("#f-reprompt textarea", "Turn aggressive: lift offers on PEPE.");
      expect((await submit("#f-reprompt")).kind).to.equal("ok");
      expect(lastPost()).to.include({ route: "/reprompt", status: 200 });
      expect(signed.at(-1)?.typedData.primaryType).to.equal("Reprompt");
      await page.waitForFunction(() => (document.querySelector("#f-reprompt button") as HTMLButtonElement).disabled);
      expect(await page.textContent('#f-reprompt [data-hint="reprompt"]')).to.equal("used this session");

      // Submitted anyway (a second tab, a stale page): the keeper's 409 reaches the user.
      const before = server.posts.length;
      await page.$eval("#f-reprompt", (f) => (f as HTMLFormElement).requestSubmit());
      await page.waitForFunction(() => (document.querySelector("#f-reprompt .msg") as HTMLElement).dataset.kind === "error");
      expect(await page.textContent("#f-reprompt .msg")).to.equal("the one re-prompt of session 7 was already used (409)");
      expect(server.posts.length).to.equal(before + 1);
    });

    it("shows the keeper's refusals with their message and marks the named field", async () => {
      // 409: pairs change only before the session opens.
      await page.uncheck('#f-pairs input[value="WIF/USDC"]');
      const pairs = await submit("#f-pairs");
      expect(pairs.kind).to.equal("error");
      expect(pairs.text).to.equal("pairs can only be set in pre-session (now trading) (409)");
      expect(await page.getAttribute("#f-pairs .checks", "aria-invalid")).to.equal("true");
      expect(lastPost()?.body).to.include({ account: USER.address });
      expect((lastPost()?.body as { pairs: string[] }).pairs).to.deep.equal(["PEPE/USDC", "DOGE/USDC"]);

      // 400 naming a field: the app's schema limit on prompt length.
      // The textarea's maxlength stops typing; a pasted-in value set by script gets past it.
      await page.$eval("#f-prompt textarea", (t, n) => ((t as HTMLTextAreaElement).value = "x".repeat(n)), PROMPT_MAX_CHARS + 1);
      const tooLong = await submit("#f-prompt");
      expect(tooLong).to.deep.equal({ kind: "error", text: `prompt: body/prompt must NOT have more than ${PROMPT_MAX_CHARS} characters (400)` });
      expect(lastPost()).to.include({ route: "/set-prompt", status: 400 });
      expect(await page.getAttribute("#f-prompt textarea", "aria-invalid")).to.equal("true");

      // 401: the wallet signed with another key (an account switched behind the page's back).
      signer = STRANGER;
      await page.fill("#f-prompt textarea", "A prompt signed by the wrong key.");
      const wrong = await submit("#f-prompt");
      signer = USER;
      expect(wrong.kind).to.equal("error");
      expect(wrong.text).to.equal(`signature is by ${STRANGER.address}, not ${USER.address} (check chain id 31337 and verifying contract ${keeper.session().vault}) (401)`);

      // 401: a replayed request (an earlier signed body sent again in place of the new one).
      const earlier = server.posts.find((p) => p.route === "/set-prompt" && p.status === 200)?.body as { nonce: string };
      await page.route("**/set-prompt", (route) => route.continue({ postData: JSON.stringify(earlier) }), { times: 1 });
      await page.fill("#f-prompt textarea", "Anything: the request is swapped for an old one.");
      const replayed = await submit("#f-prompt");
      expect(replayed).to.deep.equal({ kind: "error", text: `nonce ${earlier.nonce} was already used by ${USER.address} (401)` });
      expect(lastPost()).to.include({ route: "/set-prompt", status: 401 });
    });

    it("deposits with approve then vault.deposit, hand-encoded", async () => {
      const session = keeper.session();
      const usdc = session.tokens[0]?.address as Address;
      const vault = session.vault as Address;
      await page.selectOption("#f-deposit select", "0");
      await page.fill("#f-deposit input[name=amount]", "1.1234567");
      expect(await submit("#f-deposit")).to.deep.equal({ kind: "error", text: "Amount: at most 6 decimals." });
      expect(await page.getAttribute("#f-deposit input[name=amount]", "aria-invalid")).to.equal("true");

      const logBefore = (await walletLog()).length;
      await page.fill("#f-deposit input[name=amount]", "12.5");
      const msg = await submit("#f-deposit");
      expect(msg).to.deep.equal({ kind: "ok", text: "Deposited 12.5 USDC. The keeper credits it once the block is confirmed." });
      const log = (await walletLog()).slice(logBefore);
      const allowance = log.find((e) => e.method === "eth_call" && (e.params?.[0] as { data: string }).data.startsWith("0xdd62ed3e"));
      expect(allowance?.params?.[0]).to.deep.equal({ to: usdc, data: encodeFunctionData({ abi: ERC20, functionName: "allowance", args: [USER.address, vault] }) });
      const txs = log.filter((e) => e.method === "eth_sendTransaction").map((e) => e.params?.[0]);
      expect(txs).to.deep.equal([
        { from: USER.address, to: usdc, data: encodeFunctionData({ abi: ERC20, functionName: "approve", args: [vault, 12_500_000n] }) },
        { from: USER.address, to: vault, data: encodeFunctionData({ abi: VAULT_ABI, functionName: "deposit", args: [usdc, 12_500_000n] }) },
      ]);
      expect(getAddress((txs[0] as { to: string }).to)).to.equal(usdc);
      await page.$eval("#drawer-body", (d) => d.scrollTo(0, 0));
      await page.screenshot({ path: `${OUT_DIR}pit-wallet.png` });
      expect(errors).to.deep.equal([]);
    });
  });
});

// The Withdraw action through a whole session: the keeper's answer (GET
// /api/accounts/:address/withdrawal) is shown as the amount available now and why, and the page
// sends the call that phase takes: the keeper's permit then vault.withdrawWithPermit while trading
// and closing, nothing while the vault cannot yet pay, vault.withdraw once it can and between sessions.
describe("pit page: Withdraw in every phase (simulated keeper)", function () {
  this.timeout(120_000);
  let served: Served;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let errors: string[];
  const signed: SignedRequest[] = [];

  before(async () => {
    served = await serve({ seed: 11, warmupSteps: 3, phaseSteps: { pre_session: 3, trading: 8, closing: 3, settled: 1 }, wallets: [{ address: USER.address, balances: { USDC: USDC_IN_VAULT } }] });
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.addInitScript(KEEP_NAMES_SHIM);
    await installFakeWallet(context, USER.address, () => USER, signed, served.keeper.session().tokens[0]?.address as Address);
    page = await context.newPage();
    errors = watchErrors(page);
    await page.goto(`${served.url}/`);
    await page.waitForSelector('#conn[data-status="live"]');
    await page.click("#wallet-btn");
    await page.waitForFunction(() => /^account #\d+$/.test(document.querySelector("#acct-id")?.textContent ?? ""));
  });

  after(async () => {
    await context?.close();
    await browser?.close();
    await served?.app.close();
  });

  const usdc = () => served.keeper.session().tokens[0]?.address as Address;
  const vault = () => served.keeper.session().vault as Address;
  const walletLog = () => page.evaluate(() => (window as unknown as { __walletLog: { method: string; params?: unknown[] }[] }).__walletLog);
  const sentTxs = async () => (await walletLog()).filter((e) => e.method === "eth_sendTransaction").map((e) => e.params?.[0] as { from: string; to: string; data: Hex });
  const hint = () => page.textContent('#f-withdraw [data-hint="withdraw"]');
  const waitHint = (text: string) => page.waitForFunction((t) => document.querySelector('#f-withdraw [data-hint="withdraw"]')?.textContent === t, text);

  async function withdraw(amount: string): Promise<{ kind: string; text: string }> {
    await page.fill("#f-withdraw input[name=amount]", amount);
    await page.click('#f-withdraw button[type="submit"]');
    await page.waitForFunction(() => ["ok", "error"].includes((document.querySelector("#f-withdraw .msg") as HTMLElement | null)?.dataset.kind ?? ""));
    return page.$eval("#f-withdraw .msg", (m) => ({ kind: (m as HTMLElement).dataset.kind ?? "", text: m.textContent ?? "" }));
  }

  it("trading: shows what a permit can take and withdraws with the keeper's permit, then vault.withdrawWithPermit", async () => {
    await waitHint("Up to 2500 USDC now: during trading, with the keeper's permit.");
    expect(await page.textContent('#f-withdraw [data-route="withdraw"]')).to.equal("· with the keeper's permit");
    const txsBefore = (await sentTxs()).length;
    expect(await withdraw("100")).to.deep.equal({ kind: "ok", text: "Withdrew 100 USDC with the keeper's permit (session 7)." });

    const request = signed.at(-1)!.typedData;
    expect(request.primaryType).to.equal("WithdrawalRequest");
    expect(Object.keys(request.message)).to.deep.equal(["account", "token", "amount", "nonce", "expiry"]);
    expect(request.message).to.include({ account: USER.address, token: usdc(), amount: "100000000" });
    const post = served.posts.at(-1)!;
    expect(post).to.include({ route: "/withdrawal-permit", status: 200 });
    expect(post.body).to.deep.equal({ ...request.message, signature: (post.body as { signature: string }).signature });

    const txs = (await sentTxs()).slice(txsBefore);
    expect(txs).to.have.length(1);
    expect(txs[0]).to.include({ from: USER.address, to: vault() });
    const call = decodeFunctionData({ abi: VAULT_ABI, data: txs[0]!.data });
    expect(call.functionName).to.equal("withdrawWithPermit");
    const [token, amount, to, nonce, deadline, signature] = call.args as [Address, bigint, Address, bigint, bigint, Hex];
    expect([getAddress(token), amount, getAddress(to), nonce]).to.deep.equal([usdc(), 100_000_000n, USER.address, (7n << 64n) | 1n]);
    expect(Number(deadline)).to.be.greaterThan(served.keeper.session().serverTime / 1000);
    expect(signature).to.match(/^0x[0-9a-f]{130}$/);
    // Exactly the ABI's encoding, dynamic `bytes` and all.
    expect(txs[0]!.data).to.equal(encodeFunctionData({ abi: VAULT_ABI, functionName: "withdrawWithPermit", args: [token, amount, to, nonce, deadline, signature] }));

    // The pit reserved it: the keeper's answer is 100 less, and "All" fills it in exactly.
    await waitHint("Up to 2400 USDC now: during trading, with the keeper's permit.");
    await page.click('#f-withdraw [data-fill="all"]');
    await page.waitForFunction(() => (document.querySelector("#f-withdraw input[name=amount]") as HTMLInputElement).value !== "");
    expect(await page.inputValue("#f-withdraw input[name=amount]")).to.equal("2400");
    const over = await withdraw("2400.000001");
    expect(over).to.deep.equal({ kind: "error", text: "Amount: up to 2400 USDC now (during trading, with the keeper's permit)." });
    expect(await page.getAttribute("#f-withdraw input[name=amount]", "aria-invalid")).to.equal("true");
    expect((await sentTxs()).length).to.equal(txsBefore + 1);
  });

  it("closing: still a permit (the vault is still Trading), until settlement begins", async () => {
    served.keeper.step(5);
    await page.waitForFunction(() => document.querySelector("#phase")?.textContent === "Closing");
    await waitHint("Up to 2400 USDC now: closing, with the keeper's permit until settlement begins.");
    const txsBefore = (await sentTxs()).length;
    expect(await withdraw("50")).to.deep.equal({ kind: "ok", text: "Withdrew 50 USDC with the keeper's permit (session 7)." });
    const txs = (await sentTxs()).slice(txsBefore);
    expect(txs.map((t) => decodeFunctionData({ abi: VAULT_ABI, data: t.data }).functionName)).to.deep.equal(["withdrawWithPermit"]);
    expect(decodeFunctionData({ abi: VAULT_ABI, data: txs[0]!.data }).args.slice(0, 4)).to.deep.equal([usdc(), 50_000_000n, USER.address, (7n << 64n) | 2n]);
  });

  it("settling: nothing while the account's delta may still be posted, then vault.withdraw", async () => {
    served.keeper.step(3);
    await page.waitForFunction(() => document.querySelector("#phase")?.textContent === "Settling");
    await waitHint("Nothing now: session 7 is closed out and its settlement is beginning; withdraw directly once your USDC delta is posted.");
    expect(await page.textContent('#f-withdraw [data-route="withdraw"]')).to.equal("· not now");
    served.keeper.step(1);
    await waitHint("Nothing now: settling, your USDC delta is not posted yet (0 of 3 batches) and the vault refuses until it is (DeltaNotPosted).");
    const posts = served.posts.length;
    const txsBefore = (await sentTxs()).length;
    const refused = await withdraw("10");
    expect(refused).to.deep.equal({
      kind: "error",
      text: "Nothing can be withdrawn now: settling, your USDC delta is not posted yet (0 of 3 batches) and the vault refuses until it is (DeltaNotPosted).",
    });
    expect([served.posts.length, (await sentTxs()).length]).to.deep.equal([posts, txsBefore]);

    // Every batch posted and none holds a delta of this account: all of it, without the keeper.
    served.keeper.step(3);
    await waitHint("Up to 2350 USDC now: settling, every batch is posted and none holds a delta of yours, so all of it.");
    expect(await withdraw("25")).to.deep.equal({ kind: "ok", text: "Withdrew 25 USDC from the vault." });
    const txs = (await sentTxs()).slice(txsBefore);
    expect(txs).to.deep.equal([{ from: USER.address, to: vault(), data: encodeFunctionData({ abi: VAULT_ABI, functionName: "withdraw", args: [usdc(), 25_000_000n] }) }]);
    expect(served.posts.length).to.equal(posts);
  });

  it("between sessions: all of it with vault.withdraw, no keeper involved", async () => {
    served.keeper.step(2);
    await page.waitForFunction(() => document.querySelector("#session-id")?.textContent === "Session #8");
    await waitHint("Up to 2350 USDC now: no session is running, so all of it, directly from the vault.");
    expect(await page.textContent('#f-withdraw [data-route="withdraw"]')).to.equal("· directly from the vault");
    const posts = served.posts.length;
    const txsBefore = (await sentTxs()).length;
    await page.click('#f-withdraw [data-fill="all"]');
    await page.waitForFunction(() => (document.querySelector("#f-withdraw input[name=amount]") as HTMLInputElement).value === "2350");
    await page.click('#f-withdraw button[type="submit"]');
    await page.waitForFunction(() => (document.querySelector("#f-withdraw .msg") as HTMLElement).dataset.kind === "ok");
    expect(await page.textContent("#f-withdraw .msg")).to.equal("Withdrew 2350 USDC from the vault.");
    expect((await sentTxs()).slice(txsBefore)).to.deep.equal([
      { from: USER.address, to: vault(), data: encodeFunctionData({ abi: VAULT_ABI, functionName: "withdraw", args: [usdc(), 2_350_000_000n] }) },
    ]);
    expect(served.posts.length).to.equal(posts);
    await page.$eval("#drawer-body", (d) => d.scrollTo(0, d.scrollHeight));
    await page.screenshot({ path: `${OUT_DIR}pit-withdraw.png` });
    expect(await hint()).to.match(/^Up to 2350 USDC now/);
    expect(errors).to.deep.equal([]);
  });
});

// The simulated keeper itself: a function of its seed, streaming as the hub does, and refusing
// signed actions as the keeper does, in the same order (schema 400, envelope 401 or 400,
// registration 403, then the action's rules), naming the field; the page shows what it refuses.
describe("simulated keeper (test/support/simulated-keeper.ts) behind the keeper's app", () => {
  let keeper: SimulatedKeeper;
  let app: FastifyInstance;
  let nonce = 0;

  before(async () => {
    keeper = new SimulatedKeeper({ seed: 5, warmupSteps: 3, wallets: [{ address: USER.address }] });
    app = await buildApp({ keeper });
  });

  after(async () => {
    await app?.close();
  });

  /** A set-prompt body signed by `signer` for USER, with `patch` applied after signing. */
  async function setPrompt(opts: { signer?: typeof USER; prompt?: string; expiry?: number; nonce?: string } = {}, patch: Record<string, unknown> = {}) {
    const expiry = opts.expiry ?? Math.floor(keeper.session().serverTime / 1000) + 600;
    const n = opts.nonce ?? String(++nonce);
    const prompt = opts.prompt ?? "Quote both sides, small.";
    const signature = await (opts.signer ?? USER).signTypedData({
      domain: keeper.domain(),
      types: { SetPrompt: ACTION_TYPES.SetPrompt },
      primaryType: "SetPrompt",
      message: { account: USER.address, prompt, nonce: BigInt(n), expiry: BigInt(expiry) },
    });
    return { account: USER.address, prompt, nonce: n, expiry, signature, ...patch };
  }

  async function post(url: string, payload: unknown): Promise<{ status: number; body: { error?: string; field?: string; message?: string } }> {
    const res = await app.inject({ method: "POST", url, payload: payload as Record<string, unknown> });
    return { status: res.statusCode, body: res.json() };
  }

  it("plays the same market for the same seed, moving only when stepped", () => {
    const picture = (k: SimulatedKeeper) => JSON.stringify([k.session(), k.book("WIF/USDC", 20), k.trades("WIF/USDC", 500), k.outcry(500), k.leaderboard(), k.topPrompts()]);
    const a = new SimulatedKeeper({ seed: 9, warmupSteps: 20 });
    const b = new SimulatedKeeper({ seed: 9, warmupSteps: 20 });
    const first = picture(a);
    expect(picture(b)).to.equal(first);
    expect(picture(a)).to.equal(first);
    a.step(5);
    b.step(5);
    expect(picture(a)).to.equal(picture(b)).and.not.equal(first);
    expect(picture(new SimulatedKeeper({ seed: 10, warmupSteps: 20 }))).to.not.equal(first);
  });

  it("streams a hello first, then each step with orders, fills and outcry conflated as the hub does", () => {
    const k = new SimulatedKeeper({ seed: 9, warmupSteps: 20 });
    const got: StreamMessage[] = [];
    k.subscribe({ send: (data) => got.push(JSON.parse(data) as StreamMessage), bufferedAmount: 0, close() {}, terminate() {} });
    expect(got.map((m) => m.type)).to.deep.equal(["hello"]);
    k.step(4);
    const fills = got.filter((m): m is Extract<StreamMessage, { type: "fill" }> => m.type === "fill");
    expect(fills).to.have.length.greaterThan(0);
    for (const f of fills) {
      const { type: _t, items, ...top } = f;
      expect(top).to.deep.equal(items.at(-1));
    }
    // Every trade of those steps was streamed once, in order, up to the newest.
    const seqs = fills.flatMap((f) => f.items.map((t) => t.seq));
    const newest = Math.max(...k.session().pairs.map((p) => k.trades(p.symbol, 1)?.[0]?.seq ?? 0));
    expect(seqs).to.deep.equal(Array.from({ length: seqs.length }, (_, i) => newest - seqs.length + 1 + i));
  });

  it("streams requests for quote in the engine's order, and lists the open ones at GET /api/quotes", async () => {
    const k = new SimulatedKeeper({ seed: 9, warmupSteps: 5 });
    const quotesApp = await buildApp({ keeper: k });
    try {
      const got: StreamMessage[] = [];
      k.subscribe({ send: (data) => got.push(JSON.parse(data) as StreamMessage), bufferedAmount: 0, close() {}, terminate() {} });
      const [asker, locker, other] = k.leaderboard().map((r) => r.accountId) as [number, number, number];
      const rfqTypes = () => got.map((m) => m.type).filter((t) => !["hello", "order", "fill", "outcry", "book", "pnl"].includes(t));
      const listed = async () => {
        const res = await quotesApp.inject({ method: "GET", url: "/api/quotes" });
        expect(res.statusCode).to.equal(200);
        // Through the route's response schema unchanged: every field the keeper's schema declares, no other.
        expect(res.json()).to.deep.equal(k.quotes());
        return k.quotes().requests;
      };

      const id = k.requestQuote({ accountId: asker, pair: "WIF/USDC", side: "buy", size: 10, ttlSteps: 5 });
      const first = k.quote({ requestId: id, quoter: locker, price: 20_010, size: 4, ttlSteps: 5 });
      const replacing = k.quote({ requestId: id, quoter: locker, price: 20_008, size: 4, ttlSteps: 5 });
      const otherQuote = k.quote({ requestId: id, quoter: other, price: 20_009, size: 10, ttlSteps: 5 });
      k.lock(id, locker);
      expect(rfqTypes()).to.deep.equal(["trade_request", "quote", "request_cancelled", "quote", "quote"]);
      expect(got.find((m) => m.type === "request_cancelled")).to.deep.include({ requestId: id, quoteId: first, accountId: locker, side: "sell", reason: "replaced" });
      const [open] = await listed();
      expect(open).to.deep.include({ requestId: id, remaining: 10, limit: null, lockedBy: locker });
      expect(open?.quotes.map((q) => q.quoteId)).to.deep.equal([replacing, otherQuote]);

      // Locked: only the locker's quote trades; its end ends the lock, the rest stays open.
      k.accept({ requestId: id, size: 6 });
      expect(rfqTypes().slice(5)).to.deep.equal(["quote_accepted", "block_trade"]);
      expect(got.at(-2)).to.deep.include({ type: "quote_accepted", requestId: id, filled: 4, quoteIds: [replacing], remaining: 6, status: "open" });
      expect(got.at(-1)).to.deep.include({ type: "block_trade", pair: "WIF/USDC", price: 20_008, size: 4, takerSide: "buy", maker: locker, taker: asker, block: true });
      const [after] = await listed();
      expect(after).to.deep.include({ remaining: 6, lockedBy: null });
      expect(after?.quotes.map((q) => q.quoteId)).to.deep.equal([otherQuote]);

      // The sweep: the quote, then the request with what is left, when their time comes.
      k.step(5);
      expect(rfqTypes().slice(7)).to.deep.equal(["request_expired", "request_expired"]);
      expect(got.filter((m) => m.type === "request_expired").map((m) => [m.quoteId, m.remaining])).to.deep.equal([
        [otherQuote, 10],
        [null, 6],
      ]);
      expect(await listed()).to.deep.equal([]);
    } finally {
      await quotesApp.close();
    }
  });

  it("accepts a well-signed action and answers with the settings", async () => {
    const res = await post("/set-prompt", await setPrompt());
    expect(res.status).to.equal(200);
    expect(res.body).to.deep.include({ ok: true });
  });

  it("refuses malformed bodies with 400 naming the field", async () => {
    for (const [patch, field] of [
      [{ signature: "0x1234" }, "signature"],
      [{ nonce: "12a" }, "nonce"],
      [{ account: "0x1234" }, "account"],
      [{ extra: 1 }, "extra"],
    ] as const) {
      const res = await post("/set-prompt", await setPrompt({}, patch));
      expect(res.status, field).to.equal(400);
      expect(res.body).to.include({ error: "bad_request", field });
    }
  });

  it("refuses a signature that does not decode, or is by another key, with 401 on the signature", async () => {
    const junk = await post("/set-prompt", await setPrompt({}, { signature: `0x${"00".repeat(65)}` }));
    expect(junk.status).to.equal(401);
    expect(junk.body).to.include({ error: "bad_signature", field: "signature" });
    const wrong = await post("/set-prompt", await setPrompt({ signer: STRANGER }));
    expect(wrong.status).to.equal(401);
    expect(wrong.body).to.include({ error: "wrong_signer", field: "signature" });
    expect(wrong.body.message).to.contain(`signature is by ${STRANGER.address}, not ${USER.address}`);
    // Signed over another prompt than the one sent: the recovered signer is someone else.
    const swapped = await post("/set-prompt", await setPrompt({}, { prompt: "Something else entirely." }));
    expect(swapped.status).to.equal(401);
    expect(swapped.body).to.include({ error: "wrong_signer", field: "signature" });
  });

  it("refuses expired, too distant and wrong-chain envelopes naming the field", async () => {
    const now = Math.floor(keeper.session().serverTime / 1000);
    const expired = await post("/set-prompt", await setPrompt({ expiry: now - 1 }));
    expect([expired.status, expired.body.error, expired.body.field]).to.deep.equal([401, "expired", "expiry"]);
    const far = await post("/set-prompt", await setPrompt({ expiry: now + 7200 }));
    expect([far.status, far.body.error, far.body.field]).to.deep.equal([400, "expiry_too_far", "expiry"]);
    const chain = await post("/set-prompt", await setPrompt({}, { chainId: 1 }));
    expect([chain.status, chain.body.error, chain.body.field]).to.deep.equal([401, "wrong_chain", "chainId"]);
  });

  it("refuses a replayed nonce, and spends a nonce only when the action applies", async () => {
    const body = await setPrompt();
    expect((await post("/set-prompt", body)).status).to.equal(200);
    const again = await post("/set-prompt", body);
    expect([again.status, again.body.error, again.body.field]).to.deep.equal([401, "replayed_nonce", "nonce"]);
    expect(again.body.message).to.equal(`nonce ${body.nonce} was already used by ${USER.address}`);

    // A refused action (set-pairs while trading: 409) leaves its nonce usable.
    const n = String(++nonce);
    const expiry = Math.floor(keeper.session().serverTime / 1000) + 600;
    const pairs = ["PEPE/USDC"];
    const signature = await USER.signTypedData({
      domain: keeper.domain(),
      types: { SetPairs: ACTION_TYPES.SetPairs },
      primaryType: "SetPairs",
      message: { account: USER.address, pairs, nonce: BigInt(n), expiry: BigInt(expiry) },
    });
    const refusedPairs = await post("/set-pairs", { account: USER.address, pairs, nonce: n, expiry, signature });
    expect([refusedPairs.status, refusedPairs.body.error, refusedPairs.body.field]).to.deep.equal([409, "wrong_phase", "pairs"]);
    expect((await post("/set-prompt", await setPrompt({ nonce: n }))).status).to.equal(200);
  });

  it("refuses a wallet without a vault account with 403", async () => {
    const expiry = Math.floor(keeper.session().serverTime / 1000) + 600;
    const signature = await STRANGER.signTypedData({
      domain: keeper.domain(),
      types: { SetBroker: ACTION_TYPES.SetBroker },
      primaryType: "SetBroker",
      message: { account: STRANGER.address, brokerId: "momentum", nonce: 1n, expiry: BigInt(expiry) },
    });
    const res = await post("/set-broker", { account: STRANGER.address, brokerId: "momentum", nonce: "1", expiry, signature });
    expect([res.status, res.body.error, res.body.field]).to.deep.equal([403, "not_registered", "account"]);
  });
});
