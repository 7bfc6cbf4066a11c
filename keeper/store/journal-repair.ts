// Repairs a torn session journal: one with a gap in its sequence, which only a keeper older than
// the memory-after-commit rule could write (it applied a command whose transaction then failed to
// commit, and journaled the following commands on top of it). The commands after the gap cannot be
// replayed (the engine needs seq n+1 after n) and were built on state that never reached the disk,
// so the repair drops them and the session resumes from the last command before the gap.
//
// The keeper drops a tail of order commands by itself (session/pit.ts). It refuses a tail holding
// deposits, withdrawals or phase steps, since those touched the world outside the pit: this
// command shows what would go, what to check first, and drops it with --apply.
//
//   node --import tsx keeper/store/journal-repair.ts --db .cme/keeper-31337.sqlite --session 3 [--apply]
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { Db } from "./database.ts";
import { openDatabase } from "./database.ts";
import { Journal } from "./journal.ts";
import { getSession } from "./sessions.ts";

export interface JournalRepair {
  sessionId: number;
  /** Null: no gap, nothing to do. */
  gap: { before: number; after: number } | null;
  /** The commands after the gap, by type. */
  dropped: Record<string, number>;
  /** What the operator must check before (or after) dropping them. */
  warnings: string[];
  applied: boolean;
}

/** Describes (and with `apply`, performs) the repair of session `sessionId`'s journal. */
export function repairJournal(db: Db, sessionId: number, apply: boolean): JournalRepair {
  const journal = new Journal(db);
  const gap = journal.firstGap(sessionId);
  const out: JournalRepair = { sessionId, gap, dropped: {}, warnings: [], applied: false };
  if (gap === null) return out;
  const tail = [...journal.read<Record<string, unknown> & { type: string }>(sessionId, gap.before)];
  for (const e of tail) {
    const c = e.command;
    out.dropped[c.type] = (out.dropped[c.type] ?? 0) + 1;
    if (c.type === "withdraw") {
      out.warnings.push(
        `seq ${e.seq}: withdrawal of ${String(c.amount)} (asset ${String(c.asset)}) by account ${String(c.user)} is dropped; if its permit was signed ` +
          "and used on-chain (see the permits table and the vault's isPermitUsed), the user's pit balance no longer reflects it: void the session instead.",
      );
    }
    if (c.type === "deposit") {
      out.warnings.push(
        `seq ${e.seq}: in-session deposit credit of ${String(c.amount)} (asset ${String(c.asset)}) to account ${String(c.user)} is dropped; ` +
          "the vault still holds the deposit, it just does not trade in this session.",
      );
    }
    if (c.type === "start_trading" || c.type === "end_trading" || c.type === "close_out") {
      out.warnings.push(`seq ${e.seq}: phase step ${c.type} is dropped; the session record says ${getSession(db, sessionId)?.phase ?? "?"}; the runner re-takes the step.`);
    }
  }
  if (apply) {
    journal.truncateAfter(sessionId, gap.before);
    out.applied = true;
  }
  return out;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { db: { type: "string" }, session: { type: "string" }, apply: { type: "boolean", default: false } } });
  if (values.db === undefined || values.session === undefined) {
    console.error("usage: node --import tsx keeper/store/journal-repair.ts --db <keeper.sqlite> --session <id> [--apply]");
    process.exit(2);
  }
  const db = openDatabase(values.db);
  const r = repairJournal(db, Number(values.session), values.apply === true);
  if (r.gap === null) {
    console.log(`session ${r.sessionId}: the journal has no gap; nothing to repair`);
  } else {
    console.log(`session ${r.sessionId}: gap after seq ${r.gap.before} (next found: ${r.gap.after})`);
    console.log(`commands after the gap: ${Object.entries(r.dropped).map(([t, n]) => `${n} ${t}`).join(", ")}`);
    for (const w of r.warnings) console.log(`  ! ${w}`);
    console.log(r.applied ? `dropped; the session resumes from seq ${r.gap.before}` : "dry run: nothing changed (add --apply to drop them)");
  }
  db.close();
}
