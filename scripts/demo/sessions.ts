// Follows the keeper's sessions for `npm start`: subscribes to its stream like any WebSocket
// client would (phase, fill, outcry and settlement messages), prints one line per phase, a live
// status line while trading (terminals), and after each session the final leaderboard with the
// published top prompts, the finalize transaction and what the indexer serves.
import type { Keeper } from "../../keeper/keeper.ts";
import type { StreamClient } from "../../keeper/stream/fanout.ts";
import type { SettlementProgress } from "../../keeper/settlement/submit.ts";
import { c, excerpt, formatUnits, say, seconds, shortAddress, status, table } from "./ui.ts";

interface SessionView {
  id: number;
  phase: string;
  phaseEndsAt: number | null;
  serverTime: number;
  pairs: { symbol: string }[];
  durations: { preSessionSec: number; tradingSec: number; closingSec: number };
}

interface BoardRow {
  rank: number;
  accountId: number;
  account: string;
  broker: string;
  pnl: string;
}

export interface SessionSummary {
  sessionId: number;
  trades: number;
  shouts: number;
  board: BoardRow[];
  settlement: SettlementProgress | undefined;
  topPrompts: { rank: number; account: string; prompt: string; pnl: string }[];
}

export interface TrackerOptions {
  keeper: Keeper;
  /** Address (lowercase) -> short label ("wallet #4"). */
  labels: Map<string, string>;
  quoteDecimals: number;
  /**
   * Runs after a session's report is printed and before anything later is (the indexer check):
   * returns the lines to print under the report.
   */
  afterReport: (summary: SessionSummary) => Promise<string[]>;
  /** Phase lines and reports wait for this (the setup's own output) before printing. */
  gate?: Promise<void>;
  /** Called once a session's report and check are printed. */
  onSettled: (summary: SessionSummary) => void;
}

export interface BrokerListing {
  id: string;
  kind: "ai" | "rule";
  name: string;
  available: boolean;
  reason?: string;
}

/** The catalogue as GET /api/brokers serves it. */
export function brokerList(k: Keeper): BrokerListing[] {
  return k.service.brokers() as unknown as BrokerListing[];
}

/** A table-sized broker name that keeps the kind visible: "Market maker · rule", "Local model · AI". */
export function brokerLabel(b: BrokerListing): string {
  const name = b.name.replace(/\s*\([^)]*\)/g, "").trim();
  return `${name} · ${b.kind === "ai" ? "AI" : "rule"}`;
}

/** Cents once PnL reaches a dollar; below that (short demo sessions) cents would hide the ranking. */
function pnlPlaces(pnls: readonly bigint[], decimals: number): number {
  const one = 10n ** BigInt(decimals);
  return pnls.some((p) => p >= one || p <= -one) ? 2 : Math.min(4, decimals);
}

const clock = (ms: number) => {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
};

export class SessionTracker {
  readonly #o: TrackerOptions;
  #unsubscribe: (() => void) | undefined;
  #ticker: NodeJS.Timeout | undefined;
  #session: SessionView | undefined;
  /** The session the latest message belongs to (#session lags while reports print). */
  #liveId = 0;
  /** Phase lines and reports print in order, each after the previous one's async work. */
  #printing: Promise<void> = Promise.resolve();
  #skew = 0;
  #trades = new Map<number, number>();
  #shouts = new Map<number, number>();
  #boards = new Map<number, BoardRow[]>();
  #reported = new Set<number>();
  #stopped = false;
  /** Whether the status line on screen is this tracker's (a setup step's spinner may own it). */
  #ownsStatus = false;
  #brokers = new Map<number, number>();
  #brokerNames: Map<string, string>;

  constructor(o: TrackerOptions) {
    this.#o = o;
    if (o.gate !== undefined) this.#printing = o.gate;
    this.#brokerNames = new Map(brokerList(o.keeper).map((b) => [b.id, brokerLabel(b)]));
  }

  start(): void {
    const client: StreamClient = {
      send: (data) => this.#onMessage(JSON.parse(data) as { type: string } & Record<string, unknown>),
      bufferedAmount: 0,
      close: () => {},
      terminate: () => {},
    };
    this.#unsubscribe = this.#o.keeper.service.subscribe(client);
    this.#ticker = setInterval(() => this.#drawStatus(), 1_000);
    this.#ticker.unref();
  }

  stop(): void {
    this.#stopped = true;
    this.#unsubscribe?.();
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    this.#status(null);
  }

  #status(line: string | null): void {
    if (line === null && !this.#ownsStatus) return;
    this.#ownsStatus = line !== null;
    status(line);
  }

  #onMessage(m: { type: string } & Record<string, unknown>): void {
    const id = this.#liveId;
    const items = (m.items as unknown[] | undefined)?.length ?? 1;
    switch (m.type) {
      case "hello":
      case "phase": {
        const s = m.session as SessionView | undefined;
        if (s === undefined) return;
        this.#liveId = s.id;
        this.#skew = s.serverTime - Date.now();
        if (s.phase === "trading") this.#brokers.set(s.id, this.#o.keeper.runner.participants.length);
        // The closing cross is done once a session settles: the pit's leaderboard is then the
        // final one, at the closing mark. Read it now, before the next session replaces the pit.
        if (s.phase === "settling" && !this.#boards.has(s.id)) this.#boards.set(s.id, this.#o.keeper.service.leaderboard() as BoardRow[]);
        this.#printing = this.#printing.then(() => this.#onPhase(s)).catch((err: unknown) => say(c.red(`report failed: ${(err as Error).message}`)));
        return;
      }
      case "fill":
        this.#trades.set(id, (this.#trades.get(id) ?? 0) + items);
        return;
      case "outcry":
        this.#shouts.set(id, (this.#shouts.get(id) ?? 0) + items);
        return;
      case "settlement": {
        const p = m as unknown as SettlementProgress;
        if (p.status === "begun" && p.batchesConfirmed > 0 && p.batchesConfirmed < p.batchCount) {
          this.#status(`${c.dim(`session ${p.sessionId} ·`)} settling · batch ${p.batchesConfirmed}/${p.batchCount} confirmed`);
        }
        return;
      }
      default:
        return;
    }
  }

  async #onPhase(s: SessionView): Promise<void> {
    if (this.#stopped) return;
    const prev = this.#session;
    this.#session = s;
    if (prev !== undefined && prev.id === s.id && prev.phase === s.phase) return;
    this.#status(null);
    const tag = c.dim(`session ${s.id} ·`);
    // Printed now, which may be a moment after the change (lines wait for the one before).
    const left = s.phaseEndsAt === null ? "" : ` (${seconds(Math.max(0, s.phaseEndsAt - (Date.now() + this.#skew)))})`;
    const k = this.#o.keeper;
    switch (s.phase) {
      case "pre_session":
        say(`${tag} ${c.bold("pre-session")}${left}: deposits, brokers, prompts and pairs for this session`);
        break;
      case "trading": {
        const n = this.#brokers.get(s.id) ?? k.runner.participants.length;
        say(`${tag} ${c.bold(c.green("trading"))}${left}: ${n} broker${n === 1 ? "" : "s"} on ${s.pairs.map((p) => p.symbol).join(", ")}`);
        break;
      }
      case "closing":
        say(`${tag} ${c.bold("closing")}${left}: orders cancelled, positions crossed at mid`);
        break;
      case "settling": {
        say(`${tag} ${c.bold("settling")} on-chain: ${this.#trades.get(s.id) ?? 0} trades netted into per-account deltas`);
        break;
      }
      case "settled":
        this.#status(null);
        await this.#report(s.id);
        break;
    }
    this.#drawStatus();
  }

  #drawStatus(): void {
    const s = this.#session;
    if (s === undefined || s.phase !== "trading" || s.phaseEndsAt === null) {
      if (s?.phase !== "settling") this.#status(null);
      return;
    }
    const left = s.phaseEndsAt - (Date.now() + this.#skew);
    const board = this.#o.keeper.service.leaderboard() as BoardRow[];
    const top = board[0];
    const leader =
      top === undefined ? "" : ` · leader ${this.#label(top.account)} ${formatUnits(BigInt(top.pnl), this.#o.quoteDecimals, pnlPlaces([BigInt(top.pnl)], this.#o.quoteDecimals), true)} USDC`;
    this.#status(`${c.dim(`session ${s.id} ·`)} ${c.green("trading")} · ${clock(left)} left · ${this.#trades.get(s.id) ?? 0} trades · ${this.#shouts.get(s.id) ?? 0} shouts${leader}`);
  }

  #label(address: string): string {
    return this.#o.labels.get(address.toLowerCase()) ?? shortAddress(address);
  }

  async #report(sessionId: number): Promise<void> {
    if (this.#reported.has(sessionId)) return;
    this.#reported.add(sessionId);
    const k = this.#o.keeper;
    const settlement = await k.service.settlement(sessionId).catch(() => undefined);
    const topPrompts = k.service
      .topPrompts()
      .filter((t) => t.sessionId === sessionId)
      .map((t) => ({ rank: t.rank, account: t.account, prompt: t.prompt, pnl: t.pnl }));
    const summary: SessionSummary = {
      sessionId,
      trades: this.#trades.get(sessionId) ?? 0,
      shouts: this.#shouts.get(sessionId) ?? 0,
      board: this.#boards.get(sessionId) ?? [],
      settlement,
      topPrompts,
    };
    this.#print(summary);
    for (const line of await this.#o.afterReport(summary)) say(line);
    say();
    this.#o.onSettled(summary);
  }

  #print(s: SessionSummary): void {
    const finalize = s.settlement?.transactions.find((t) => t.step.endsWith(":finalize"));
    const prompts = new Map(s.topPrompts.map((t) => [t.account.toLowerCase(), t.prompt]));
    const width = Math.max(30, Math.min(70, (process.stdout.columns ?? 120) - 75));
    say();
    say(c.bold(`Session ${s.sessionId} settled`) + c.dim(` · ${s.trades} trades · ${s.shouts} shouts · ${s.settlement?.deltaCount ?? 0} deltas in ${s.settlement?.batchCount ?? 0} batch${s.settlement?.batchCount === 1 ? "" : "es"}`));
    if (finalize !== undefined) say(`  finalized on-chain in ${c.cyan(finalize.hash)}${finalize.block === null ? "" : c.dim(` (block ${finalize.block})`)}`);
    const places = pnlPlaces(s.board.map((r) => BigInt(r.pnl)), this.#o.quoteDecimals);
    const rows = s.board.map((r) => {
      const pnl = BigInt(r.pnl);
      const text = formatUnits(pnl, this.#o.quoteDecimals, places, true);
      const prompt = prompts.get(r.account.toLowerCase());
      return [
        String(r.rank),
        this.#label(r.account),
        shortAddress(r.account),
        this.#brokerNames.get(r.broker) ?? r.broker,
        pnl > 0n ? c.green(text) : pnl < 0n ? c.red(text) : text,
        prompt === undefined ? c.dim("—") : c.dim(`“${excerpt(prompt, width)}”`),
      ];
    });
    if (rows.length === 0) {
      say(c.dim("  no broker traded this session"));
    } else {
      for (const line of table(["#", "wallet", "account", "broker", "PnL (USDC)", "published prompt (top 10)"], rows, ["right", "left", "left", "left", "right", "left"])) say(`  ${line}`);
    }
  }
}
