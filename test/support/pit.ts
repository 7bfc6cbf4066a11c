// The executor's tests run over the real pit: keeper/core's Engine behind the session's pit and
// its executor port (session/open-pit.ts, as the keeper opens them), with one PEPE/USDC pair. A thin recording wrapper
// notes everything that reached the book and lets a test force a margin status or the phase.
import type { Deployment } from "../../keeper/chain/deployment.ts";
import type { Clock } from "../../keeper/executor/clock.ts";
import type {
  AccountView,
  FillView,
  LiquidationOutcome,
  MarginStatus,
  MarketView,
  OrderRequest,
  PairView,
  PhaseView,
  PitPort,
  RfqAcceptOrder,
  RfqOutcome,
  RfqQuoteOrder,
  RfqRequestOrder,
  RfqView,
  SubmitOutcome,
} from "../../keeper/executor/pit-port.ts";
import type { SessionPhase } from "../../keeper/core/phases.ts";
import type { SessionPit } from "../../keeper/session/pit.ts";
import type { ExecutorPort } from "../../keeper/session/executor-port.ts";
import { openPit } from "../../keeper/session/open-pit.ts";
import { buildMarket } from "../../keeper/session/pairs.ts";

const DEPLOYMENT = {
  chainId: 31337,
  vault: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
  startBlock: 1,
  settler: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
  treasury: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
  insurance: "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
  tokens: [
    { symbol: "USDC", address: "0x0000000000000000000000000000000000000a01", decimals: 6, index: 0 },
    { symbol: "PEPE", address: "0x0000000000000000000000000000000000000a02", decimals: 18, index: 1 },
  ],
} as unknown as Deployment;

/** One PEPE/USDC market at $0.00001 over a fake deployment: the executor tests' pit and bench:brokers'. */
export function pepeMarket(sessionId: number): ReturnType<typeof buildMarket> {
  return buildMarket(DEPLOYMENT, { PEPE: "0.00001" }, { treasury: 1, insurance: 2 }, sessionId);
}

export const PEPE = 1;
export const USDC = 0;
/** PEPE at $0.00001: the reference price is 10,000 ticks; one lot is 100,000 PEPE. */
export const REF = 10_000;

export class TestPit implements PitPort {
  readonly pit: SessionPit;
  readonly port: ExecutorPort;
  phaseName: SessionPhase = "trading";
  endsAtMs = 3_600_000;
  readonly marginOverride = new Map<number, MarginStatus>();
  /** Every order that reached the book, per user, with the book's answer. */
  readonly reached: { user: number; order: OrderRequest; accepted: boolean; reason?: string }[] = [];
  readonly cancelsReached: { user: number; orderId: string }[] = [];
  readonly liquidations: number[] = [];
  submits = 0;

  constructor(clock: Clock, sessionId = 1) {
    const opened = openPit({
      market: pepeMarket(sessionId),
      sessionId,
      journal: null,
      clock,
      phase: () => ({ sessionId, phase: this.phaseName, endsAtMs: this.endsAtMs }),
    });
    this.pit = opened.pit;
    this.port = opened.port;
  }

  /** Credits USDC (whole dollars) and PEPE (lots) to each user, then opens trading. */
  fundAndOpen(users: readonly number[], usdc = 10_000, pepeLots = 0): this {
    const lot = this.port.pair(PEPE)!.lotSize;
    for (const u of users) {
      this.pit.apply({ type: "deposit", user: u, asset: USDC, amount: BigInt(usdc) * 1_000_000n });
      if (pepeLots > 0) this.pit.apply({ type: "deposit", user: u, asset: PEPE, amount: BigInt(pepeLots) * lot });
    }
    this.pit.apply({ type: "start_trading" });
    return this;
  }

  /** A counterparty's resting order placed outside the executor. */
  rest(user: number, side: "buy" | "sell", price: number, size: number): string {
    const r = this.port.submit(user, { cancels: [], orders: [{ pair: PEPE, side, price, size, type: "limit" }] });
    const o = r.orders[0]!;
    if (!o.accepted) throw new Error(`rest refused: ${o.reason}`);
    return o.orderId!;
  }

  reachedBy(user: number) {
    return this.reached.filter((r) => r.user === user);
  }

  phase(): PhaseView {
    return this.port.phase();
  }
  pair(pair: number): PairView | undefined {
    return this.port.pair(pair);
  }
  pairBySymbol(symbol: string): PairView | undefined {
    return this.port.pairBySymbol(symbol);
  }
  market(pair: number, levels: number, trades: number): MarketView {
    return this.port.market(pair, levels, trades);
  }
  account(user: number): AccountView {
    const a = this.port.account(user);
    const forced = this.marginOverride.get(user);
    return forced === undefined ? a : { ...a, marginStatus: forced };
  }
  fills(user: number, cursor: number): { fills: FillView[]; cursor: number } {
    return this.port.fills(user, cursor);
  }
  /** Every rfq command that reached the pit, per user, with the core's answer. */
  readonly rfqReached: { user: number; type: "request" | "quote" | "accept" | "cancel" | "lock" | "unlock"; outcome: RfqOutcome }[] = [];
  rfqs(user: number): RfqView[] {
    return this.port.rfqs(user);
  }
  rfqRequest(user: number, r: RfqRequestOrder): RfqOutcome {
    const outcome = this.port.rfqRequest(user, r);
    this.rfqReached.push({ user, type: "request", outcome });
    return outcome;
  }
  rfqQuote(user: number, q: RfqQuoteOrder): RfqOutcome {
    const outcome = this.port.rfqQuote(user, q);
    this.rfqReached.push({ user, type: "quote", outcome });
    return outcome;
  }
  rfqAccept(user: number, a: RfqAcceptOrder): RfqOutcome {
    const outcome = this.port.rfqAccept(user, a);
    this.rfqReached.push({ user, type: "accept", outcome });
    return outcome;
  }
  rfqCancel(user: number, requestId: number): RfqOutcome {
    const outcome = this.port.rfqCancel(user, requestId);
    this.rfqReached.push({ user, type: "cancel", outcome });
    return outcome;
  }
  rfqLock(user: number, requestId: number): RfqOutcome {
    const outcome = this.port.rfqLock(user, requestId);
    this.rfqReached.push({ user, type: "lock", outcome });
    return outcome;
  }
  rfqUnlock(user: number, requestId: number): RfqOutcome {
    const outcome = this.port.rfqUnlock(user, requestId);
    this.rfqReached.push({ user, type: "unlock", outcome });
    return outcome;
  }
  expireRfqs(nowMs: number): number {
    return this.port.expireRfqs(nowMs);
  }
  /** The core's list, with the margin a test forced on an account taking precedence. */
  liquidationsDue(): number[] {
    const due = new Set(this.port.liquidationsDue());
    for (const [user, status] of this.marginOverride) {
      if (status === "below_mm") due.add(user);
      else due.delete(user);
    }
    return [...due].sort((a, b) => a - b);
  }
  submit(user: number, request: { cancels: string[]; orders: OrderRequest[] }): SubmitOutcome {
    this.submits += 1;
    const out = this.port.submit(user, request);
    for (const c of request.cancels) this.cancelsReached.push({ user, orderId: c });
    out.orders.forEach((o, i) => {
      const order = request.orders[i]!;
      this.reached.push({ user, order, accepted: o.accepted, ...(o.reason !== undefined ? { reason: o.reason } : {}) });
    });
    return out;
  }
  liquidate(user: number): LiquidationOutcome {
    this.liquidations.push(user);
    this.marginOverride.delete(user);
    return this.port.liquidate(user);
  }
}
