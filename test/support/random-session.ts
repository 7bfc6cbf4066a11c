// Random but reproducible sessions for property tests: deposits, then orders of every type,
// cancels, replaces, withdrawals, the liquidations the core asks for, and the close. The
// stream is driven by one engine (so cancels name live orders); `mirror` engines receive the
// very same commands.
import type { Command, CommandBody } from "../../keeper/core/commands.ts";
import type { Engine } from "../../keeper/core/engine.ts";
import type { CommandResult, EngineConfig } from "../../keeper/core/types.ts";
import { DOGE, DOGE_LOT, PEPE, PEPE_LOT, USDC } from "./engine.ts";
import { Prng } from "../../keeper/core/prng.ts";

export interface RandomSessionOptions {
  readonly seed: number;
  readonly steps: number;
  readonly users?: number;
  /** Stop before end_trading / close_out. */
  readonly keepTrading?: boolean;
  /** Called after every command with the driving engine. */
  readonly check?: (engine: Engine, cmd: Command, result: CommandResult) => void;
}

export function runRandomSession(driver: Engine, config: EngineConfig, mirrors: readonly Engine[], opts: RandomSessionOptions): Command[] {
  const rng = new Prng(opts.seed);
  const users = opts.users ?? 10;
  const journal: Command[] = [];
  let ts = 1_000_000;
  const send = (body: CommandBody): CommandResult => {
    const cmd = { ...body, seq: driver.nextSeq, ts: (ts += rng.int(0, 40)) } as Command;
    journal.push(cmd);
    const r = driver.apply(cmd);
    for (const m of mirrors) {
      const mr = m.apply(cmd);
      if (JSON.stringify(mr, big) !== JSON.stringify(r, big)) {
        throw new Error(`mirror diverged at seq ${cmd.seq} (${cmd.type}):\n${JSON.stringify(r, big)}\n${JSON.stringify(mr, big)}`);
      }
    }
    opts.check?.(driver, cmd, r);
    return r;
  };
  const live: { id: number; user: number; pi: number }[] = [];
  const pairs = config.pairs;

  for (let u = 1; u <= users; u++) {
    // some accounts thin, so margin and liquidation paths run
    const rich = rng.chance(0.6);
    send({ type: "deposit", user: u, asset: USDC, amount: BigInt(rich ? rng.int(50_000, 500_000) : rng.int(500, 5_000)) });
    if (rng.chance(0.7)) send({ type: "deposit", user: u, asset: PEPE, amount: BigInt(rng.int(0, 300)) * PEPE_LOT + BigInt(rng.int(0, 999)) });
    if (rng.chance(0.5)) send({ type: "deposit", user: u, asset: DOGE, amount: BigInt(rng.int(1, 50)) * DOGE_LOT + 17n });
  }
  send({ type: "deposit", user: config.insurance, asset: USDC, amount: 20_000n });
  if (rng.chance(0.2)) send({ type: "place", user: 1, pair: pairs[0]!.id, side: "buy", orderType: "limit", price: 1000, size: 1 });
  send({ type: "start_trading" });

  // a drifting "fair" price per pair makes the book trend, so margins move
  const fair = pairs.map((p) => p.referencePriceTicks);
  for (let step = 0; step < opts.steps; step++) {
    const r = rng.next();
    const pi = rng.int(0, pairs.length - 1);
    const pair = pairs[pi]!;
    // a random walk pulled back toward the reference, so it stays inside the price band
    const ref = pair.referencePriceTicks;
    fair[pi] = Math.round(fair[pi]! + (ref - fair[pi]!) * 0.01 + fair[pi]! * (rng.next() - 0.5) * 0.03);
    const f = fair[pi]!;
    const user = rng.int(1, users);
    if (r < 0.55) {
      const side = rng.chance(0.5) ? "buy" : "sell";
      const orderType = rng.pick(["limit", "limit", "limit", "ioc", "post_only"] as const);
      const spread = Math.max(1, Math.round(f * 0.01));
      const off = rng.int(-2 * spread, 3 * spread);
      let price = side === "buy" ? f - off : f + off;
      if (rng.chance(0.01)) price += 0.5;
      if (rng.chance(0.01)) price = pair.referencePriceTicks * 3;
      const size = rng.chance(0.01) ? 0 : rng.int(1, 40);
      const res = send({ type: "place", user, pair: pair.id, side, orderType, price, size });
      if (res.ok && res.order?.status === "resting") live.push({ id: res.order.orderId, user, pi });
    } else if (r < 0.75 && live.length > 0) {
      const k = rng.int(0, live.length - 1);
      const o = live[k]!;
      send({ type: "cancel", user: rng.chance(0.95) ? o.user : o.user + 1, orderId: o.id });
      live.splice(k, 1);
    } else if (r < 0.85 && live.length > 0) {
      const o = rng.pick(live);
      const of = fair[o.pi]!;
      send({ type: "replace", user: o.user, orderId: o.id, price: of + rng.int(-Math.ceil(of / 50), Math.ceil(of / 50)), size: rng.int(1, 40) });
    } else if (r < 0.87) {
      send({ type: "cancel_all", user, ...(rng.chance(0.5) ? { pair: pair.id } : {}) });
    } else if (r < 0.9) {
      const asset = rng.pick([USDC, PEPE, DOGE]);
      const amount = asset === USDC ? BigInt(rng.int(1, 20_000)) : asset === PEPE ? PEPE_LOT * BigInt(rng.int(0, 5)) + 1n : DOGE_LOT;
      send({ type: "withdraw", user, asset, amount });
    } else if (r < 0.92) {
      send({ type: "deposit", user, asset: USDC, amount: BigInt(rng.int(1, 10_000)) });
    } else {
      // an aggressive sweep that moves the price, then whatever liquidations are due
      const side = rng.chance(0.5) ? "buy" : "sell";
      const price = side === "buy" ? Math.round(f * 1.05) : Math.round(f * 0.95);
      send({ type: "place", user, pair: pair.id, side, orderType: "ioc", price, size: rng.int(20, 120) });
      for (const liq of driver.liquidationsDue()) send(liq);
      if (rng.chance(0.05)) send({ type: "liquidate", user });
    }
    // live ids that no longer rest are forgotten lazily
    if (step % 50 === 0) {
      for (let i = live.length - 1; i >= 0; i--) if (driver.order(live[i]!.id) === null) live.splice(i, 1);
    }
  }
  if (!opts.keepTrading) {
    send({ type: "end_trading" });
    send({ type: "deposit", user: 1, asset: USDC, amount: 5n });
    send({ type: "close_out" });
  }
  return journal;
}

export function big(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? `${value}n` : value;
}
