// Browser tests of the pit page (keeper/web/) against scripts/dev-page-server.ts, driven through
// the npm-shipped Chromium with playwright-core (test/support/browser.ts). The fake feed only advances when a test calls step(),
// so every "it updates live" assertion compares states, never timings.
import { expect } from "chai";
import { mkdir } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { KEEP_NAMES_SHIM, launchBrowser } from "../support/browser.ts";
import { encodeFunctionData, getAddress, parseAbi, recoverTypedDataAddress, type Address, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { BROKERS, startDevPageServer, type DevPageServer, type WireLeaderRow, type WirePair } from "../../scripts/dev-page-server.ts";
import { buildApp } from "../../keeper/api/app.ts";
import type { KeeperPort, StreamClient } from "../../keeper/api/port.ts";
import { keeperDomain } from "../../keeper/auth/eip712.ts";

const OUT_DIR = fileURLToPath(new URL("../../test-output/page/", import.meta.url));
// Hardhat's well-known development keys: test wallets only.
const USER = privateKeyToAccount("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
const STRANGER = privateKeyToAccount("0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a");
const USDC_IN_VAULT = 2_500_000_000n; // 2,500 USDC
const USDC_IN_WALLET = 5_000_000_000n; // 5,000 USDC
const ERC20 = parseAbi(["function approve(address,uint256)", "function allowance(address,address) view returns (uint256)", "function balanceOf(address) view returns (uint256)"]);
const VAULT_ABI = parseAbi(["function deposit(address,uint256) returns (uint256)"]);

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
function price(pair: WirePair, ticks: number): string {
  const num = BigInt(pair.quotePerTickLot) * 10n ** BigInt(pair.baseDecimals);
  const den = BigInt(pair.lotSize) * 10n ** BigInt(pair.quoteDecimals);
  let d = 0;
  while ((num * 10n ** BigInt(d)) % den !== 0n) d++;
  return fixed((BigInt(ticks) * num * 10n ** BigInt(d)) / den, d, d);
}

const shortAddr = (a: string) => `${a.slice(0, 6)}…${a.slice(-4)}`;
const brokerName = (id: string | null) => BROKERS.find((b) => b.id === id)?.displayName ?? String(id);

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
 * An EIP-1193 provider injected before the page loads: it records every request in
 * window.__walletLog, answers balance and allowance calls (USDC_IN_WALLET of `usdc`, no
 * allowance), returns fake transaction hashes with successful receipts, and signs typed data in
 * Node with a real key (`getSigner()`), recording each request in `signed`.
 */
async function installFakeWallet(context: BrowserContext, getSigner: () => typeof USER, signed: SignedRequest[], usdc: Address): Promise<void> {
  // The fake wallet signs in Node with a real key, so the dev server's signature check is real.
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
    { address: USER.address, usdc, usdcBalance: USDC_IN_WALLET.toString() },
  );
}

describe("pit page (keeper/web) in chromium", function () {
  this.timeout(90_000);
  let server: DevPageServer;
  let browser: Browser;

  before(async () => {
    await mkdir(OUT_DIR, { recursive: true });
    server = await startDevPageServer({
      autoplay: false,
      seed: 7,
      warmupSteps: 120,
      wallets: [{ address: USER.address, balances: { USDC: USDC_IN_VAULT.toString() } }],
    });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  async function newPage(viewport = { width: 1280, height: 800 }): Promise<Page> {
    const page = await browser.newPage({ viewport });
    await page.addInitScript(KEEP_NAMES_SHIM);
    return page;
  }

  async function openPit(viewport = { width: 1280, height: 800 }): Promise<{ page: Page; errors: string[] }> {
    const page = await newPage(viewport);
    const errors = watchErrors(page);
    await page.goto(`${server.url}/`);
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
    const pepe = server.sim.session().pairs[0] as WirePair;
    expect(pepe.symbol).to.equal("PEPE/USDC");
    const book = server.sim.book(pepe.id, 1);
    expect(first.bestBid).to.equal(price(pepe, book.bids[0]?.price ?? 0));
    expect(first.bestAsk).to.equal(price(pepe, book.asks[0]?.price ?? 0));
    expect(Number(first.bestBid)).to.be.closeTo(Number(book.bids[0]?.priceDisplay), 1e-15);
    const top = server.sim.leaderboard()[0] as WireLeaderRow;
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

    server.step(6);
    // What the page must converge to once it has read the stream.
    const want = {
      tapeTop: String(server.sim.recentTrades(pepe.id, 1)[0]?.seq),
      boardTopPnl: fixed(BigInt((server.sim.leaderboard()[0] as WireLeaderRow).pnl), 6, 2, true),
      outcryLine: server.sim.outcry.at(-1)?.line ?? "<none>",
      bestBid: price(pepe, server.sim.book(pepe.id, 1).bids[0]?.price ?? 0),
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
    const dogePair = server.sim.session().pairs[2] as WirePair;
    await page.click(`#tickers button[data-pair="${dogePair.id}"]`);
    await page.waitForFunction(() => document.querySelector("#book-pair")?.textContent === "DOGE/USDC");
    const doge = await readPit(page);
    expect(doge.bestBid).to.equal(price(dogePair, server.sim.book(dogePair.id, 1).bids[0]?.price ?? 0));
    expect(doge.tapeTop).to.equal(String(server.sim.recentTrades(dogePair.id, 1)[0]?.seq));
    await page.click(`#tickers button[data-pair="${pepe.id}"]`);
    await page.waitForFunction(() => document.querySelector("#book-pair")?.textContent === "PEPE/USDC");

    // Let the last update's flash animations finish so the screenshot shows the settled book.
    await page.waitForTimeout(800);
    await page.screenshot({ path: `${OUT_DIR}pit-1280x800.png` });
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
    server.dropClients();
    await page.waitForSelector('#conn[data-status="reconnecting"]');
    await page.waitForSelector('#conn[data-status="live"]', { timeout: 15_000 });
    const before = await readPit(page);
    server.step(4);
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
    const pepe = server.sim.session().pairs[0] as WirePair;
    expect(view.bestBid).to.equal(price(pepe, server.sim.book(pepe.id, 1).bids[0]?.price ?? 0));
    expect(view.tapeTop).to.equal(String(server.sim.recentTrades(pepe.id, 1)[0]?.seq));
    expect(view.boardTopPnl).to.equal(fixed(BigInt((server.sim.leaderboard()[0] as WireLeaderRow).pnl), 6, 2, true));
    expect(await page.textContent("#phase")).to.equal("Trading");
    expect(errors).to.deep.equal([]);
    await page.close();
  });

  it("shows a broker's outcry as text, never as markup", async () => {
    const { page } = await openPit();
    const line = `<img src=x onerror="window.__pwned=1">BUY EVERYTHING`;
    server.broadcast({ type: "outcry", account: USER.address, accountId: 4, broker: "momentum", line, ts: server.sim.now });
    await page.waitForFunction((l) => document.querySelector("#outcry li q")?.textContent === l, line);
    expect(await page.locator("#outcry img").count()).to.equal(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).to.equal(undefined);
    await page.close();
  });

  it("follows a session through closing, settlement and into the next one", async () => {
    const quick = await startDevPageServer({ autoplay: false, seed: 3, warmupSteps: 10, phaseSteps: { pre_session: 5, trading: 14, closing: 3, settling: 6 } });
    const page = await newPage();
    const errors = watchErrors(page);
    try {
      await page.goto(`${quick.url}/`);
      await page.waitForSelector('#conn[data-status="live"]');
      await page.waitForSelector("#bids .lvl");
      quick.step(4);
      await page.waitForFunction(() => document.querySelector("#phase")?.textContent === "Closing");
      await page.waitForFunction(() => document.querySelectorAll("#bids .lvl").length === 0);
      quick.step(3);
      await page.waitForFunction(() => document.querySelector("#phase")?.textContent === "Settling");
      quick.step(3);
      await page.waitForFunction(() => /posting batches 2\/3/.test(document.querySelector("#phase-note")?.textContent ?? ""));
      quick.step(2);
      await page.waitForFunction(() => /session #7 finalized on-chain/.test(document.querySelector("#phase-note")?.textContent ?? ""));
      // Finalized: session 7's top prompts are published and session 8 opens.
      quick.step(1);
      await page.waitForFunction(() => [...document.querySelectorAll("#prompts-session option")].some((o) => o.textContent === "Session #7"));
      await page.waitForFunction(() => document.querySelector("#session-id")?.textContent === "Session #8");
      expect(await page.textContent("#phase")).to.equal("Pre-session");
      expect(await page.locator("#tape .trade").count()).to.equal(0);
      expect(await page.locator("#chart-overlay").textContent()).to.contain("Pre-session");
      quick.step(12);
      await page.waitForFunction(() => document.querySelector("#phase")?.textContent === "Trading");
      await page.waitForSelector("#tape .trade");
      expect(errors).to.deep.equal([]);
    } finally {
      await page.close();
      await quick.close();
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
      await installFakeWallet(context, () => signer, signed, server.sim.session().tokens[0]?.address as Address);
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
    const lastAction = () => server.actions.at(-1);
    async function submit(form: string): Promise<{ kind: string; text: string }> {
      const before = server.actions.length;
      await page.click(`${form} button[type="submit"]`);
      await page.waitForFunction((f) => ["ok", "error"].includes((document.querySelector(`${f} .msg`) as HTMLElement | null)?.dataset.kind ?? ""), form);
      const msg = await page.$eval(`${form} .msg`, (m) => ({ kind: (m as HTMLElement).dataset.kind ?? "", text: m.textContent ?? "" }));
      // Local refusals post nothing; everything else reached the keeper exactly once.
      expect(server.actions.length - before).to.be.lessThanOrEqual(1);
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
      expect(typed.message.expiry).to.be.a("number").greaterThan(Math.floor(server.sim.now / 1000));

      const action = lastAction();
      expect(action?.route).to.equal("/set-broker");
      expect(action?.status).to.equal(200);
      const body = action?.body as Record<string, string>;
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
      expect(lastAction()).to.include({ route: "/set-prompt", status: 200 });
      expect((lastAction()?.body as { prompt: string }).prompt).to.equal("Timid market maker: quote two ticks around mid.");

      await page.fill("#f-reprompt textarea", "Turn aggressive: lift offers on PEPE.");
      expect((await submit("#f-reprompt")).kind).to.equal("ok");
      expect(lastAction()).to.include({ route: "/reprompt", status: 200 });
      expect(signed.at(-1)?.typedData.primaryType).to.equal("Reprompt");
      await page.waitForFunction(() => (document.querySelector("#f-reprompt button") as HTMLButtonElement).disabled);
      expect(await page.textContent('#f-reprompt [data-hint="reprompt"]')).to.equal("used this session");

      // Submitted anyway (a second tab, a stale page): the keeper's 409 reaches the user.
      const before = server.actions.length;
      await page.$eval("#f-reprompt", (f) => (f as HTMLFormElement).requestSubmit());
      await page.waitForFunction(() => (document.querySelector("#f-reprompt .msg") as HTMLElement).dataset.kind === "error");
      expect(await page.textContent("#f-reprompt .msg")).to.equal("the one re-prompt of session 7 was already used (409)");
      expect(server.actions.length).to.equal(before + 1);
    });

    it("shows the keeper's refusals with their message and marks the named field", async () => {
      // 409: pairs change only before the session opens.
      await page.uncheck('#f-pairs input[value="WIF/USDC"]');
      const pairs = await submit("#f-pairs");
      expect(pairs.kind).to.equal("error");
      expect(pairs.text).to.equal("pairs can only be set in pre-session (now trading) (409)");
      expect(await page.getAttribute("#f-pairs .checks", "aria-invalid")).to.equal("true");
      expect(lastAction()?.body).to.include({ account: USER.address });
      expect((lastAction()?.body as { pairs: string[] }).pairs).to.deep.equal(["PEPE/USDC", "DOGE/USDC"]);

      // 400 naming a field: the keeper's limit on prompt length.
      // The textarea's maxlength stops typing; a pasted-in value set by script gets past it.
      await page.$eval("#f-prompt textarea", (t) => ((t as HTMLTextAreaElement).value = "x".repeat(4001)));
      const tooLong = await submit("#f-prompt");
      expect(tooLong).to.deep.equal({ kind: "error", text: "prompt: must NOT have more than 4000 characters (400)" });
      expect(await page.getAttribute("#f-prompt textarea", "aria-invalid")).to.equal("true");

      // 401: the wallet signed with another key (an account switched behind the page's back).
      signer = STRANGER;
      await page.fill("#f-prompt textarea", "A prompt signed by the wrong key.");
      const wrong = await submit("#f-prompt");
      signer = USER;
      expect(wrong.kind).to.equal("error");
      expect(wrong.text).to.equal(`signature is by ${STRANGER.address}, not ${USER.address} (check chain id 31337 and verifying contract ${server.sim.session().vault}) (401)`);
    });

    it("deposits with approve then vault.deposit, hand-encoded", async () => {
      const session = server.sim.session();
      const usdc = session.tokens[0]?.address as Address;
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
      expect(allowance?.params?.[0]).to.deep.equal({ to: usdc, data: encodeFunctionData({ abi: ERC20, functionName: "allowance", args: [USER.address, session.vault] }) });
      const txs = log.filter((e) => e.method === "eth_sendTransaction").map((e) => e.params?.[0]);
      expect(txs).to.deep.equal([
        { from: USER.address, to: usdc, data: encodeFunctionData({ abi: ERC20, functionName: "approve", args: [session.vault, 12_500_000n] }) },
        { from: USER.address, to: session.vault, data: encodeFunctionData({ abi: VAULT_ABI, functionName: "deposit", args: [usdc, 12_500_000n] }) },
      ]);
      expect(getAddress((txs[0] as { to: string }).to)).to.equal(usdc);
      await page.$eval("#drawer-body", (d) => d.scrollTo(0, 0));
      await page.screenshot({ path: `${OUT_DIR}pit-wallet.png` });
      expect(errors).to.deep.equal([]);
    });
  });

  // The same page behind the keeper's real HTTP layer: its routes, JSON schemas (which drop any
  // field they do not declare), pair parameters and WebSocket plugin, over a read-only port that
  // serves the scripted market.
  describe("served by the keeper's fastify app (keeper/app.ts)", () => {
    let dev: DevPageServer;
    let app: Awaited<ReturnType<typeof buildApp>>;
    let url: string;
    const clients = new Set<StreamClient>();

    before(async () => {
      dev = await startDevPageServer({ autoplay: false, seed: 11, warmupSteps: 90 });
      const sim = dev.sim;
      const pairOf = (symbol: string) => sim.session().pairs.find((p) => p.symbol === symbol);
      const readOnly = async () => ({ ok: false as const, refusal: { status: 503 as const, error: "read_only", message: "read-only test keeper" } });
      const port: KeeperPort = {
        session: () => sim.session(),
        readVersion: () => `${sim.sessionId}:${sim.now}:${sim.outcry.length}`,
        book: (pair, levels) => {
          const p = pairOf(pair);
          return p && sim.book(p.id, levels);
        },
        trades: (pair, limit) => {
          const p = pairOf(pair);
          return p && sim.recentTrades(p.id, limit);
        },
        outcry: (limit) => sim.outcry.slice(-limit).reverse(),
        leaderboard: () => sim.leaderboard(),
        topPrompts: () => sim.topPrompts,
        brokers: () => BROKERS,
        account: (address) => sim.accountView(getAddress(address)),
        fillLog: () => undefined,
        settlement: async () => undefined,
        domain: () => keeperDomain(31337, sim.session().vault),
        health: () => ({ ok: true }),
        metrics: () => "",
        setBroker: readOnly,
        setPrompt: readOnly,
        setPairs: readOnly,
        reprompt: readOnly,
        withdrawalPermit: readOnly,
        adminSettle: readOnly,
        subscribe: (client) => {
          client.send(JSON.stringify(sim.hello()));
          clients.add(client);
          return () => clients.delete(client);
        },
      };
      app = await buildApp({ keeper: port });
      await app.listen({ port: 0, host: "127.0.0.1" });
      url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    });

    after(async () => {
      await app?.close();
      await dev?.close();
    });

    const step = (n: number) => {
      for (let i = 0; i < n; i++) for (const msg of dev.sim.step()) for (const c of clients) c.send(JSON.stringify(msg));
    };

    it("renders the pit and follows the stream", async () => {
      const page = await newPage();
      const errors = watchErrors(page);
      await page.goto(`${url}/`);
      await page.waitForSelector('#conn[data-status="live"]');
      await page.waitForSelector("#bids .lvl");
      await page.waitForSelector("#tape .trade");
      await page.waitForSelector("#outcry li q");
      await page.waitForSelector("#leaderboard tr");
      const pepe = dev.sim.session().pairs[0] as WirePair;
      const first = await readPit(page);
      expect(first.bestBid).to.equal(price(pepe, dev.sim.book(pepe.id, 1).bids[0]?.price ?? 0));
      expect(first.boardTopPnl).to.equal(fixed(BigInt((dev.sim.leaderboard()[0] as WireLeaderRow).pnl), 6, 2, true));
      // The hello carries 50 trades a pair; the page fetched the session's history over HTTP.
      const all = dev.sim.trades.filter((t) => t.pair === pepe.symbol).length;
      expect(all).to.be.greaterThan(50);
      await page.waitForFunction(
        ([id, n]) => (window as unknown as { __cme: { state: { pairs: Map<number, { trades: unknown[] }> } } }).__cme.state.pairs.get(id)?.trades.length === n,
        [pepe.id, all] as const,
      );
      expect(await page.locator("#prompts li").count()).to.equal(10);

      step(6);
      const want = { tapeTop: String(dev.sim.recentTrades(pepe.id, 1)[0]?.seq), outcry: dev.sim.outcry.at(-1)?.line ?? "<none>" };
      expect(want.tapeTop).to.not.equal(first.tapeTop);
      await page.waitForFunction(
        (w) => (document.querySelector("#tape .trade") as HTMLElement | null)?.dataset.id === w.tapeTop && document.querySelector("#outcry li q")?.textContent === w.outcry,
        want,
      );
      expect(errors).to.deep.equal([]);
      await page.close();
    });

    it("posts signed actions the keeper's body schema accepts", async () => {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      await context.addInitScript(KEEP_NAMES_SHIM);
      const signed: SignedRequest[] = [];
      await installFakeWallet(context, () => USER, signed, dev.sim.session().tokens[0]?.address as Address);
      const page = await context.newPage();
      try {
        await page.goto(`${url}/`);
        await page.waitForSelector('#conn[data-status="live"]');
        await page.click("#wallet-btn");
        await page.waitForFunction((a) => document.querySelector("#acct-address")?.textContent === a, USER.address);
        await page.waitForFunction(() => document.querySelector("#acct-id")?.textContent === "no deposit yet");
        await page.selectOption("#f-broker select", "momentum");
        await page.click('#f-broker button[type="submit"]');
        // Past the JSON schema (a shape error would be a 400 naming the field) to the port's refusal.
        await page.waitForFunction(() => (document.querySelector("#f-broker .msg") as HTMLElement).dataset.kind === "error");
        expect(await page.textContent("#f-broker .msg")).to.equal("read-only test keeper (503)");
        const eip712 = (await (await fetch(`${url}/api/eip712`)).json()) as { domain: unknown };
        expect(signed.at(-1)?.typedData.domain).to.deep.equal(eip712.domain);
        expect(signed.at(-1)?.typedData.primaryType).to.equal("SetBroker");
      } finally {
        await context.close();
      }
    });
  });
});
