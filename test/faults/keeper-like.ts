// What the keeper does with the watcher's events, reduced to a ledger of additive credits (the
// pit's view of deposits): enough to see a deposit credited twice, or once.
import type { Db } from "../../keeper/store/database.ts";
import { transaction } from "../../keeper/store/database.ts";
import { getCursor, setCursor } from "../../keeper/store/ledger.ts";
import type { VaultEvent } from "../../keeper/chain/watcher.ts";

export function keeperLike(db: Db) {
  const credited = new Map<string, bigint>();
  const events: VaultEvent[] = [];
  const apply = (evs: VaultEvent[], toBlock: bigint) =>
    transaction(db, () => {
      for (const ev of evs) {
        events.push(ev);
        if (ev.kind === "deposit") credited.set(`${ev.address}:${ev.token}`, (credited.get(`${ev.address}:${ev.token}`) ?? 0n) + ev.amount);
      }
      setCursor(db, toBlock);
    });
  return { credited, events, apply, cursor: () => getCursor(db) ?? 0n };
}

