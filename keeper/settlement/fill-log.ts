/**
 * The session fill log: what the keeper publishes after settlement so that anyone can recompute
 * every (account, token) delta it posted on-chain. Its keccak256 is committed on-chain in
 * `SettlementBegun.fillLogHash`, so the published bytes cannot change after the fact.
 *
 * Format: canonical JSON Lines (UTF-8, one record per line, every line ends in "\n").
 *   1. one `header`: format version, chain id, vault, session id, the treasury account (which
 *      receives trading fees) and the unit config of every pair traded;
 *   2. `balance` records: each participant's settled balance per token when trading began,
 *      sorted by (accountId, tokenIndex);
 *   3. the session's events in `seq` order (strictly increasing): `fill` records (one per match
 *      in the book, and one per block trade of a request for quote, which carries `"block":true`
 *      as its last key and counts exactly like any other fill) and `transfer` records (the closing cross at mid, liquidations, the insurance
 *      fund and any socialized loss: everything that moves value and is not a fill).
 * Keys appear in the order the encoder writes them; integers that are money, prices or sizes are
 * decimal strings (they exceed 2^53); ids, seq and ts are JSON numbers. A fill that is not a block
 * trade has no `block` key, so logs written before block trades existed read and hash unchanged. Exactly one byte form is
 * valid per log: `parseFillLog` rejects any text that `encodeFillLog` would not produce, so the
 * hash identifies the log.
 *
 * Units (per pair): a fill of `sizeLots` at `priceTicks` moves `sizeLots * lotSize` base-token
 * units and `priceTicks * sizeLots * tickSize` quote-token units (so `tickSize` is quote base
 * units per lot per tick and every amount is an exact integer). Fees are quote-token units paid
 * by maker and taker to the treasury; a negative fee is a rebate paid by the treasury.
 *
 * Pure module: no I/O, no clock.
 */
import { keccak256, toBytes, type Hex } from "viem";

export const FILL_LOG_VERSION = 1;

const UINT32_MAX = 0xffff_ffff;
const UINT8_MAX = 0xff;
const INT256_MAX = (1n << 255n) - 1n;
const INT256_MIN = -(1n << 255n);

export type FillLogPair = {
  pairId: number;
  symbol: string;
  /** token index of the base asset (the memecoin) */
  base: number;
  /** token index of the quote asset (USDC) */
  quote: number;
  /** base-token base units per lot */
  lotSize: bigint;
  /** quote-token base units per lot per tick */
  tickSize: bigint;
};

export type FillLogHeader = {
  type: "header";
  version: typeof FILL_LOG_VERSION;
  chainId: number;
  /** lowercase 0x address */
  vault: string;
  sessionId: number;
  /** account id that receives fees */
  treasury: number;
  pairs: FillLogPair[];
};

export type FillLogBalance = {
  type: "balance";
  accountId: number;
  tokenIndex: number;
  /** settled balance at the start of trading, base units */
  amount: bigint;
};

export type FillLogFill = {
  type: "fill";
  seq: number;
  /** keeper clock, ms since epoch: informational */
  ts: number;
  pairId: number;
  maker: number;
  taker: number;
  takerSide: "buy" | "sell";
  priceTicks: bigint;
  sizeLots: bigint;
  makerFee: bigint;
  takerFee: bigint;
  /** A block trade of a request for quote (core/rfq.ts): the taker is the requester. */
  block?: true;
};

export type FillLogTransfer = {
  type: "transfer";
  seq: number;
  ts: number;
  tokenIndex: number;
  from: number;
  to: number;
  /** base units, > 0 */
  amount: bigint;
  /** why value moved: "closing_cross", "liquidation", "insurance", "socialized_loss", ... */
  reason: string;
};

export type FillLogEvent = FillLogFill | FillLogTransfer;

export type FillLog = {
  header: FillLogHeader;
  balances: FillLogBalance[];
  events: FillLogEvent[];
};

/** One recomputed settlement entry: what the vault should have received for (account, token). */
export type FillLogDelta = { accountId: number; tokenIndex: number; delta: bigint };

export type FillLogRejectCode = "malformed_json" | "bad_record" | "bad_order" | "inconsistent" | "not_canonical";

export type ParseFillLogResult =
  | { ok: true; log: FillLog }
  | { ok: false; code: FillLogRejectCode; line: number; field: string; message: string };

/** Thrown by the encoder when handed an invalid log (a keeper bug, not an input to reject). */
export class FillLogError extends Error {
  override readonly name = "FillLogError";
  constructor(
    message: string,
    readonly details: { line: number; field: string; code: FillLogRejectCode },
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------- encode

/** Canonical JSON Lines text of `log`. Throws FillLogError when the log breaks a rule above. */
export function encodeFillLog(log: FillLog): string {
  const problem = validateFillLog(log);
  if (problem !== undefined) throw new FillLogError(problem.message, problem);
  return render(log);
}

function render(log: FillLog): string {
  const h = log.header;
  const lines: string[] = [
    JSON.stringify({
      type: "header",
      version: h.version,
      chainId: h.chainId,
      vault: h.vault,
      sessionId: h.sessionId,
      treasury: h.treasury,
      pairs: h.pairs.map((p) => ({
        pairId: p.pairId,
        symbol: p.symbol,
        base: p.base,
        quote: p.quote,
        lotSize: p.lotSize.toString(),
        tickSize: p.tickSize.toString(),
      })),
    }),
  ];
  for (const b of log.balances) {
    lines.push(
      JSON.stringify({ type: "balance", accountId: b.accountId, tokenIndex: b.tokenIndex, amount: b.amount.toString() }),
    );
  }
  for (const e of log.events) {
    lines.push(
      e.type === "fill"
        ? JSON.stringify({
            type: "fill",
            seq: e.seq,
            ts: e.ts,
            pairId: e.pairId,
            maker: e.maker,
            taker: e.taker,
            takerSide: e.takerSide,
            priceTicks: e.priceTicks.toString(),
            sizeLots: e.sizeLots.toString(),
            makerFee: e.makerFee.toString(),
            takerFee: e.takerFee.toString(),
            ...(e.block === true ? { block: true } : {}),
          })
        : JSON.stringify({
            type: "transfer",
            seq: e.seq,
            ts: e.ts,
            tokenIndex: e.tokenIndex,
            from: e.from,
            to: e.to,
            amount: e.amount.toString(),
            reason: e.reason,
          }),
    );
  }
  return lines.join("\n") + "\n";
}

/** keccak256 of the published bytes, as committed on-chain in `fillLogHash`. */
export function hashFillLog(bytes: Uint8Array | string): Hex {
  return keccak256(typeof bytes === "string" ? toBytes(bytes) : bytes);
}

// ---------------------------------------------------------------------------------- parse

type Problem = { code: FillLogRejectCode; line: number; field: string; message: string };

class Reject {
  constructor(readonly problem: Problem) {}
}

function reject(code: FillLogRejectCode, line: number, field: string, message: string): never {
  throw new Reject({ code, line, field, message: `line ${line}: ${field}: ${message}` });
}

/**
 * Parses published fill-log text. Any departure from the format (including non-canonical
 * spacing, key order or number forms) is a returned rejection naming the line and field.
 */
export function parseFillLog(text: string): ParseFillLogResult {
  try {
    const log = parseRecords(text);
    const problem = validateFillLog(log);
    if (problem !== undefined) return { ok: false, ...problem };
    if (render(log) !== text) {
      const expected = render(log).split("\n");
      const actual = text.split("\n");
      let line = 0;
      while (line < actual.length && actual[line] === expected[line]) line++;
      return {
        ok: false,
        code: "not_canonical",
        line: line + 1,
        field: "(record)",
        message: `line ${line + 1}: not in canonical form (key order, spacing, number form or trailing newline)`,
      };
    }
    return { ok: true, log };
  } catch (error) {
    if (error instanceof Reject) return { ok: false, ...error.problem };
    throw error;
  }
}

function parseRecords(text: string): FillLog {
  if (!text.endsWith("\n")) reject("not_canonical", 1, "(file)", "must end with a newline");
  const rawLines = text.slice(0, -1).split("\n");
  let header: FillLogHeader | undefined;
  const balances: FillLogBalance[] = [];
  const events: FillLogEvent[] = [];
  rawLines.forEach((raw, i) => {
    const line = i + 1;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      reject("malformed_json", line, "(record)", "not valid JSON");
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      reject("bad_record", line, "(record)", "must be a JSON object");
    }
    const r = new RecordReader(value as Record<string, unknown>, line);
    const type = r.string("type");
    if (line === 1) {
      if (type !== "header") reject("bad_order", line, "type", `first record must be "header", got "${type}"`);
      header = readHeader(r);
      return;
    }
    if (type === "balance") {
      if (events.length > 0) reject("bad_order", line, "type", "balance records must precede fills and transfers");
      balances.push({ type, accountId: r.uint("accountId", UINT32_MAX), tokenIndex: r.uint("tokenIndex", UINT8_MAX), amount: r.bigint("amount") });
    } else if (type === "fill") {
      const side = r.string("takerSide");
      if (side !== "buy" && side !== "sell") reject("bad_record", line, "takerSide", `must be "buy" or "sell", got "${side}"`);
      const block = r.flag("block");
      events.push({
        type,
        seq: r.uint("seq"),
        ts: r.uint("ts"),
        pairId: r.uint("pairId"),
        maker: r.uint("maker", UINT32_MAX),
        taker: r.uint("taker", UINT32_MAX),
        takerSide: side,
        priceTicks: r.bigint("priceTicks"),
        sizeLots: r.bigint("sizeLots"),
        makerFee: r.bigint("makerFee"),
        takerFee: r.bigint("takerFee"),
        ...(block ? { block: true as const } : {}),
      });
    } else if (type === "transfer") {
      events.push({
        type,
        seq: r.uint("seq"),
        ts: r.uint("ts"),
        tokenIndex: r.uint("tokenIndex", UINT8_MAX),
        from: r.uint("from", UINT32_MAX),
        to: r.uint("to", UINT32_MAX),
        amount: r.bigint("amount"),
        reason: r.string("reason"),
      });
    } else {
      reject("bad_record", line, "type", `unknown record type "${type}"`);
    }
  });
  if (header === undefined) reject("bad_order", 1, "type", "missing header");
  return { header, balances, events };
}

function readHeader(r: RecordReader): FillLogHeader {
  const version = r.uint("version");
  if (version !== FILL_LOG_VERSION) reject("bad_record", r.line, "version", `unsupported version ${version}`);
  const pairsRaw = r.array("pairs");
  const pairs = pairsRaw.map((p, i): FillLogPair => {
    if (typeof p !== "object" || p === null || Array.isArray(p)) reject("bad_record", r.line, `pairs[${i}]`, "must be an object");
    const pr = new RecordReader(p as Record<string, unknown>, r.line, `pairs[${i}].`);
    return {
      pairId: pr.uint("pairId"),
      symbol: pr.string("symbol"),
      base: pr.uint("base", UINT8_MAX),
      quote: pr.uint("quote", UINT8_MAX),
      lotSize: pr.bigint("lotSize"),
      tickSize: pr.bigint("tickSize"),
    };
  });
  return {
    type: "header",
    version: FILL_LOG_VERSION,
    chainId: r.uint("chainId"),
    vault: r.string("vault"),
    sessionId: r.uint("sessionId", UINT32_MAX),
    treasury: r.uint("treasury", UINT32_MAX),
    pairs,
  };
}

class RecordReader {
  constructor(
    private readonly record: Record<string, unknown>,
    readonly line: number,
    private readonly prefix = "",
  ) {}

  private get(field: string): unknown {
    if (!Object.hasOwn(this.record, field)) reject("bad_record", this.line, this.prefix + field, "missing");
    return this.record[field];
  }

  string(field: string): string {
    const v = this.get(field);
    if (typeof v !== "string") reject("bad_record", this.line, this.prefix + field, "must be a string");
    return v;
  }

  uint(field: string, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.get(field);
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v > max) {
      reject("bad_record", this.line, this.prefix + field, `must be an integer in [0, ${max}]`);
    }
    return v;
  }

  bigint(field: string): bigint {
    const v = this.get(field);
    if (typeof v !== "string" || !/^-?(0|[1-9][0-9]*)$/.test(v) || v === "-0") {
      reject("bad_record", this.line, this.prefix + field, "must be a decimal integer string");
    }
    const n = BigInt(v);
    if (n > INT256_MAX || n < INT256_MIN) reject("bad_record", this.line, this.prefix + field, "out of int256 range");
    return n;
  }

  /** An optional key that, when present, must be `true` (absence is the only false form). */
  flag(field: string): boolean {
    if (!Object.hasOwn(this.record, field)) return false;
    if (this.record[field] !== true) reject("bad_record", this.line, this.prefix + field, "must be true when present");
    return true;
  }

  array(field: string): unknown[] {
    const v = this.get(field);
    if (!Array.isArray(v)) reject("bad_record", this.line, this.prefix + field, "must be an array");
    return v;
  }
}

// ---------------------------------------------------------------------------------- rules

/** The first broken rule, with the line it would be on in the canonical text; undefined if valid. */
export function validateFillLog(log: FillLog): Problem | undefined {
  try {
    checkRules(log);
    return undefined;
  } catch (error) {
    if (error instanceof Reject) return error.problem;
    throw error;
  }
}

function checkRules(log: FillLog): void {
  const h = log.header;
  const uint = (v: number, max: number, line: number, field: string) => {
    if (!Number.isSafeInteger(v) || v < 0 || v > max) reject("bad_record", line, field, `must be an integer in [0, ${max}]`);
  };
  if (h.version !== FILL_LOG_VERSION) reject("bad_record", 1, "version", `unsupported version ${String(h.version)}`);
  uint(h.chainId, Number.MAX_SAFE_INTEGER, 1, "chainId");
  if (!/^0x[0-9a-f]{40}$/.test(h.vault)) reject("bad_record", 1, "vault", "must be a lowercase 0x address");
  uint(h.sessionId, UINT32_MAX, 1, "sessionId");
  uint(h.treasury, UINT32_MAX, 1, "treasury");
  const pairs = new Map<number, FillLogPair>();
  h.pairs.forEach((p, i) => {
    const f = `pairs[${i}].`;
    uint(p.pairId, Number.MAX_SAFE_INTEGER, 1, f + "pairId");
    if (i > 0 && p.pairId <= h.pairs[i - 1]!.pairId) reject("bad_order", 1, f + "pairId", "pairs must be sorted by pairId, no repeats");
    if (p.symbol.length === 0) reject("bad_record", 1, f + "symbol", "must not be empty");
    uint(p.base, UINT8_MAX, 1, f + "base");
    uint(p.quote, UINT8_MAX, 1, f + "quote");
    if (p.base === p.quote) reject("inconsistent", 1, f + "quote", "base and quote must differ");
    if (p.lotSize <= 0n) reject("bad_record", 1, f + "lotSize", "must be positive");
    if (p.tickSize <= 0n) reject("bad_record", 1, f + "tickSize", "must be positive");
    pairs.set(p.pairId, p);
  });

  let line = 1;
  let previousKey = -1;
  for (const b of log.balances) {
    line++;
    uint(b.accountId, UINT32_MAX, line, "accountId");
    uint(b.tokenIndex, UINT8_MAX, line, "tokenIndex");
    const key = b.accountId * 256 + b.tokenIndex;
    if (key <= previousKey) reject("bad_order", line, "accountId", "balances must be sorted by (accountId, tokenIndex), no repeats");
    previousKey = key;
    if (b.amount < 0n) reject("bad_record", line, "amount", "must not be negative");
  }

  let previousSeq = -1;
  for (const e of log.events) {
    line++;
    uint(e.seq, Number.MAX_SAFE_INTEGER, line, "seq");
    if (e.seq <= previousSeq) reject("bad_order", line, "seq", "must be strictly increasing");
    previousSeq = e.seq;
    uint(e.ts, Number.MAX_SAFE_INTEGER, line, "ts");
    if (e.type === "fill") {
      if (!pairs.has(e.pairId)) reject("inconsistent", line, "pairId", `pair ${e.pairId} is not in the header`);
      uint(e.maker, UINT32_MAX, line, "maker");
      uint(e.taker, UINT32_MAX, line, "taker");
      if (e.maker === e.taker) reject("inconsistent", line, "taker", "self-trade: maker and taker are the same account");
      if (e.takerSide !== "buy" && e.takerSide !== "sell") reject("bad_record", line, "takerSide", `must be "buy" or "sell"`);
      if (e.priceTicks <= 0n) reject("bad_record", line, "priceTicks", "must be positive");
      if (e.sizeLots <= 0n) reject("bad_record", line, "sizeLots", "must be positive");
      if (e.block !== undefined && e.block !== true) reject("bad_record", line, "block", "must be true when present");
    } else {
      uint(e.tokenIndex, UINT8_MAX, line, "tokenIndex");
      uint(e.from, UINT32_MAX, line, "from");
      uint(e.to, UINT32_MAX, line, "to");
      if (e.from === e.to) reject("inconsistent", line, "to", "transfer to the same account");
      if (e.amount <= 0n) reject("bad_record", line, "amount", "must be positive");
      if (!/^[a-z][a-z0-9_]*$/.test(e.reason)) reject("bad_record", line, "reason", "must match [a-z][a-z0-9_]*");
    }
  }
}

// ---------------------------------------------------------------------------------- deltas

/**
 * Every (account, token) balance change the log implies, in base units: the entries the keeper
 * must have posted. Block trades move value exactly as book fills do and are summed the same way. Zero results are left out (the keeper posts no zero entries). Sorted by
 * (accountId, tokenIndex).
 */
export function deltasFromFillLog(log: FillLog): FillLogDelta[] {
  const pairs = new Map(log.header.pairs.map((p) => [p.pairId, p]));
  const sums = new Map<number, bigint>();
  const add = (accountId: number, tokenIndex: number, amount: bigint) => {
    const key = accountId * 256 + tokenIndex;
    sums.set(key, (sums.get(key) ?? 0n) + amount);
  };
  for (const e of log.events) {
    if (e.type === "transfer") {
      add(e.from, e.tokenIndex, -e.amount);
      add(e.to, e.tokenIndex, e.amount);
      continue;
    }
    const pair = pairs.get(e.pairId);
    if (pair === undefined) throw new FillLogError(`fill ${e.seq}: unknown pair ${e.pairId}`, { line: 0, field: "pairId", code: "inconsistent" });
    const base = e.sizeLots * pair.lotSize;
    const quote = e.priceTicks * e.sizeLots * pair.tickSize;
    const [buyer, seller] = e.takerSide === "buy" ? [e.taker, e.maker] : [e.maker, e.taker];
    add(buyer, pair.base, base);
    add(seller, pair.base, -base);
    add(buyer, pair.quote, -quote);
    add(seller, pair.quote, quote);
    add(e.maker, pair.quote, -e.makerFee);
    add(e.taker, pair.quote, -e.takerFee);
    add(log.header.treasury, pair.quote, e.makerFee + e.takerFee);
  }
  return [...sums.entries()]
    .filter(([, delta]) => delta !== 0n)
    .sort(([a], [b]) => a - b)
    .map(([key, delta]) => ({ accountId: Math.floor(key / 256), tokenIndex: key % 256, delta }));
}
