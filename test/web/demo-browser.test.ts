// The pit page against the real demo: `npm start` on an accelerated clock (local chain, keeper,
// built-in brokers trading), in the npm-shipped Chromium (test/support/browser.ts). The page must show the
// book, the tape, the outcry and the leaderboard, and they must change while it is open (live,
// from the WebSocket); after the session settles, the published top prompts appear. Screenshots
// go to test-output/demo/. Every check compares states, never timings.
import { expect } from "chai";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { KEEP_NAMES_SHIM, launchBrowser } from "../support/browser.ts";
import { repoRoot, startDemo, type Demo } from "../support/demo-process.ts";

const OUT_DIR = join(repoRoot, "test-output", "demo");

interface PitView {
  phase: string;
  /** Trades of the session on every pair, as the page counts them (the ticker bar). */
  trades: number;
  bids: number;
  asks: number;
  book: string;
  tapeRows: number;
  tapeTop: string;
  outcryRows: number;
  outcryTop: string;
  /** The newest shouted lines, newest first. */
  outcryLines: string[];
  board: string[];
  prompts: string[];
}

async function readPit(page: Page): Promise<PitView> {
  return page.evaluate(() => {
    const all = (sel: string) => [...document.querySelectorAll(sel)];
    const bids = all("#bids .lvl");
    const asks = all("#asks .lvl");
    const stats = document.querySelector("#tickers .tick-stats")?.textContent ?? "";
    return {
      phase: document.querySelector("#phase")?.textContent?.trim() ?? "",
      trades: Number(/([\d,]+) trades/.exec(stats)?.[1]?.replaceAll(",", "") ?? "0"),
      bids: bids.length,
      asks: asks.length,
      book: [...asks, ...bids].map((r) => r.textContent).join("|"),
      tapeRows: all("#tape .trade").length,
      tapeTop: (document.querySelector("#tape .trade") as HTMLElement | null)?.dataset.key ?? "",
      outcryRows: all("#outcry li q").length,
      outcryTop: document.querySelector("#outcry li")?.textContent?.trim() ?? "",
      outcryLines: all("#outcry li q").slice(0, 5).map((q) => q.textContent ?? ""),
      board: all("#leaderboard tr").map((r) => r.textContent?.trim() ?? ""),
      prompts: all("#prompts li").map((r) => r.textContent?.trim() ?? ""),
    };
  });
}

/** Re-reads the page until `ok` holds; the failure shows the last state seen. */
async function until(page: Page, what: string, ok: (v: PitView) => boolean, timeoutMs: number): Promise<PitView> {
  const deadline = performance.now() + timeoutMs;
  let v = await readPit(page);
  while (!ok(v)) {
    if (performance.now() > deadline) throw new Error(`the page never showed ${what}; last seen:\n${JSON.stringify(v, null, 2)}`);
    await page.waitForTimeout(250);
    v = await readPit(page);
  }
  return v;
}

describe("the pit page on the running demo (chromium)", function () {
  this.timeout(600_000);
  let demo: Demo | undefined;
  let browser: Browser | undefined;

  after(async function () {
    await browser?.close();
    if (demo !== undefined && demo.child.exitCode === null && demo.child.signalCode === null) {
      demo.interrupt();
      if ((await demo.exitedWithin(60_000)) === "hung") demo.kill();
    }
  });

  it("shows the book, trades, outcry and leaderboard updating live, then the published prompts", async function () {
    await mkdir(OUT_DIR, { recursive: true });
    // No indexer: the page reads only the keeper, and the npm start test covers the indexer.
    demo = await startDemo({ CME_INDEXER: "0", CME_PRE_SESSION_SEC: "3", CME_TRADING_SEC: "30", CME_CLOSING_SEC: "6" });
    await demo.waitForOutput(/The pit is open[^]*Ctrl-C stops everything/, 420_000);

    browser = await launchBrowser();
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    await page.addInitScript(KEEP_NAMES_SHIM);
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => m.type() === "error" && !/status of 4\d\d/.test(m.text()) && errors.push(m.text()));
    await page.goto(`${demo.keeperUrl}/`);

    // The first session trades: a two-sided book, trades, shouts and every broker on the board.
    const first = await until(page, "a live pit", (v) => v.bids > 0 && v.asks > 0 && v.trades > 0 && v.outcryRows > 0 && v.board.length >= 8, 120_000);
    expect(first.phase.toLowerCase()).to.match(/trading/);

    // The tape of the busiest pair (switching pairs with the ticker tabs).
    const tabs = page.locator("#tickers button.tick");
    let busiest = { tab: 0, rows: -1 };
    for (let i = 0; i < (await tabs.count()); i++) {
      await tabs.nth(i).click();
      const rows = (await readPit(page)).tapeRows;
      if (rows > busiest.rows) busiest = { tab: i, rows };
    }
    await tabs.nth(busiest.tab).click();
    const shown = await until(page, "trades on the tape", (v) => v.tapeRows > 0 && v.bids + v.asks > 0, 60_000);

    // Live: without reloading, more trades, new shouts and a changed leaderboard or book arrive.
    const later = await until(
      page,
      "new trades and shouts after the first look",
      (v) => v.trades > shown.trades && v.outcryTop !== shown.outcryTop && (v.board.join() !== shown.board.join() || v.book !== shown.book),
      60_000,
    );
    expect(later.tapeRows).to.be.greaterThan(0);
    // The screenshot is the README's picture: give the pit a few dozen trades first (or until the
    // bell), which is a picture choice, not a check.
    await until(page, "a busier pit", (v) => v.trades >= 40 || !/trading/i.test(v.phase), 60_000);
    await page.screenshot({ path: join(OUT_DIR, "pit-trading.png") });

    // The keeper's own record agrees that the pit the page shows has traded.
    const session = (await (await fetch(`${demo.keeperUrl}/api/session`)).json()) as { id: number; pairs: { symbol: string }[] };
    const trades = await Promise.all(
      session.pairs.map(async (p) => ((await (await fetch(`${demo!.keeperUrl}/api/trades/${p.symbol.replace("/", "-")}?limit=5`)).json()) as unknown[]).length),
    );
    expect(trades.reduce((a, b) => a + b, 0)).to.be.greaterThan(0);

    // Once the bell rings nothing trades or shouts: the page has every trade and the latest shouts
    // the keeper has (the stream conflates bursts into one message with `items`; none may be lost).
    const closed = await until(page, "the closing phase", (v) => /closing|settl/i.test(v.phase), 120_000);
    const keeperTrades = await Promise.all(
      session.pairs.map(async (p) => ((await (await fetch(`${demo!.keeperUrl}/api/trades/${p.symbol.replace("/", "-")}?limit=500`)).json()) as unknown[]).length),
    );
    const keeperOutcry = (await (await fetch(`${demo.keeperUrl}/api/outcry?limit=5`)).json()) as { line: string }[];
    expect(closed.trades, "trades on the page vs the keeper's").to.equal(keeperTrades.reduce((a, b) => a + b, 0));
    // Requests for quote: the momentum brokers ask for a block whenever the book's top is too thin
    // for their clip, which the demo's session does several times. The block trades among the
    // trades are exactly the keeper's (their number is up to the market).
    const keeperBlocks = await Promise.all(
      session.pairs.map(async (p) => ((await (await fetch(`${demo!.keeperUrl}/api/trades/${p.symbol.replace("/", "-")}?limit=500`)).json()) as { block?: boolean }[]).filter((t) => t.block === true).length),
    );
    const pageRfq = await page.evaluate(() => {
      const s = (window as unknown as { __cme: { state: { pairs: Map<number, { trades: { block: boolean }[] }>; outcry: { kind?: string; event?: string }[] } } }).__cme.state;
      return {
        blocks: [...s.pairs.values()].reduce((n, ps) => n + ps.trades.filter((t) => t.block).length, 0),
        feed: s.outcry.filter((o) => o.kind === "rfq").map((o) => o.event),
      };
    });
    expect(pageRfq.blocks, "block trades on the page vs the keeper's").to.equal(keeperBlocks.reduce((a, b) => a + b, 0));
    expect(pageRfq.feed, "requests for quote in the page's feed").to.include("request");
    expect(closed.outcryLines, "newest shouts on the page vs the keeper's").to.deep.equal(keeperOutcry.map((o) => o.line));

    // The session settles: the page lists its published top prompts (the example prompts).
    const settled = await until(page, "the published top prompts", (v) => v.prompts.length > 0, 180_000);
    expect(settled.prompts.join("\n")).to.match(/liquidity|YOLO|Scalp|overshoot|Follow the tape|Make markets/);
    await page.screenshot({ path: join(OUT_DIR, "pit-after-session.png") });

    expect(errors, errors.join("\n")).to.deep.equal([]);

    demo.interrupt();
    expect(await demo.exitedWithin(90_000)).to.deep.equal({ code: 0, signal: null });
    expect(demo.leftovers()).to.deep.equal([]);
  });
});
