// Per-account state of the session, in flat typed arrays indexed by a dense account index
// (accounts get indices in order of first appearance; outputs are always sorted by AccountId
// so the dense order never shows).
//
// Per (account, asset):  inv  - core units (lots for a base asset), safe integer, may be < 0
//                        dust - bigint base units below one core unit, in [0, unit)
//                        net  - bigint base units deposited minus withdrawn this session
//   balance in base units = inv * unit + dust;   netting delta = balance - net.
// Per (account, pair):   open buy lots, open buy notional (sum of price * remaining lots),
//                        open sell lots, open sell notional: what resting orders could consume.

import { InvariantError } from "./errors.ts";
import { floorDiv } from "./int-math.ts";

export const BUY_LOTS = 0;
export const BUY_NOTIONAL = 1;
export const SELL_LOTS = 2;
export const SELL_NOTIONAL = 3;

export class Ledger {
  readonly assets: number;
  readonly pairs: number;
  readonly units: readonly bigint[];
  count = 0;
  private cap = 0;
  /** AccountId by dense index. */
  ids = new Float64Array(0);
  inv = new Float64Array(0);
  open = new Float64Array(0);
  openCount = new Int32Array(0);
  feesPaid = new Float64Array(0);
  volume = new Float64Array(0);
  fills = new Float64Array(0);
  dust: bigint[] = [];
  net: bigint[] = [];
  /** Net deposits per asset over all accounts: what the vault holds for the session. */
  readonly totalNet: bigint[];
  private readonly index = new Map<number, number>();

  constructor(units: readonly bigint[], pairs: number) {
    this.assets = units.length;
    this.pairs = pairs;
    this.units = units;
    this.totalNet = units.map(() => 0n);
    this.grow(64);
  }

  indexOf(id: number): number {
    const i = this.index.get(id);
    return i === undefined ? -1 : i;
  }

  ensure(id: number): number {
    const i = this.index.get(id);
    if (i !== undefined) return i;
    if (this.count === this.cap) this.grow(this.cap * 2);
    const n = this.count++;
    this.ids[n] = id;
    this.index.set(id, n);
    return n;
  }

  /** Dense indices sorted by AccountId. */
  sorted(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.count; i++) out.push(i);
    const ids = this.ids;
    return out.sort((a, b) => ids[a]! - ids[b]!);
  }

  balance(u: number, a: number): bigint {
    const k = u * this.assets + a;
    return BigInt(this.inv[k]!) * this.units[a]! + this.dust[k]!;
  }

  /** Sets the balance in base units, splitting it into core units and dust. */
  setBalance(u: number, a: number, baseUnits: bigint): void {
    const k = u * this.assets + a;
    const unit = this.units[a]!;
    const units = floorDiv(baseUnits, unit);
    if (units > BigInt(Number.MAX_SAFE_INTEGER) || units < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new InvariantError("balance leaves the safe-integer range", { account: this.ids[u], asset: a });
    }
    this.inv[k] = Number(units);
    this.dust[k] = baseUnits - units * unit;
  }

  /** Core units the balance would have after adding `amount` base units (may be unsafe). */
  unitsAfter(u: number, a: number, amount: bigint): bigint {
    return floorDiv(this.balance(u, a) + amount, this.units[a]!);
  }

  hasLiability(u: number): boolean {
    const base = u * this.assets;
    for (let a = 0; a < this.assets; a++) if (this.inv[base + a]! < 0) return true;
    return false;
  }

  private grow(cap: number): void {
    const f = (old: Float64Array, n: number): Float64Array<ArrayBuffer> => {
      const a = new Float64Array(n);
      a.set(old);
      return a;
    };
    this.ids = f(this.ids, cap);
    this.inv = f(this.inv, cap * this.assets);
    this.open = f(this.open, cap * this.pairs * 4);
    const oc = new Int32Array(cap);
    oc.set(this.openCount);
    this.openCount = oc;
    this.feesPaid = f(this.feesPaid, cap);
    this.volume = f(this.volume, cap);
    this.fills = f(this.fills, cap);
    for (let k = this.dust.length; k < cap * this.assets; k++) {
      this.dust.push(0n);
      this.net.push(0n);
    }
    this.cap = cap;
  }
}
