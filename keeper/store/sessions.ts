// The keeper's record of each session's phase and clock, so a restart knows where it was.
import type { Db } from "./database.ts";
import { fromJson, toJson } from "./json.ts";

import type { SessionPhase } from "../core/phases.ts";

export interface SessionRecord {
  id: number;
  phase: SessionPhase;
  phaseStartedAt: number;
  /** ms since epoch; null while settling (it lasts until done). */
  phaseEndsAt: number | null;
  /** Block of the on-chain startSession receipt: balances up to it are the opening snapshot. */
  startBlock: number | null;
  info: Record<string, unknown>;
}

interface Row { id: number; phase: SessionPhase; phase_started_at: number; phase_ends_at: number | null; start_block: number | null; info: string }

const toRecord = (r: Row): SessionRecord => ({
  id: r.id,
  phase: r.phase,
  phaseStartedAt: r.phase_started_at,
  phaseEndsAt: r.phase_ends_at,
  startBlock: r.start_block,
  info: fromJson<Record<string, unknown>>(r.info),
});

export function latestSession(db: Db): SessionRecord | undefined {
  const r = db.prepare("SELECT * FROM sessions ORDER BY id DESC LIMIT 1").get() as Row | undefined;
  return r === undefined ? undefined : toRecord(r);
}

export function getSession(db: Db, id: number): SessionRecord | undefined {
  const r = db.prepare("SELECT * FROM sessions WHERE id = ?").get(id) as Row | undefined;
  return r === undefined ? undefined : toRecord(r);
}

export function putSession(db: Db, s: SessionRecord): void {
  db.prepare(
    `INSERT INTO sessions (id, phase, phase_started_at, phase_ends_at, start_block, info) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT(id) DO UPDATE SET phase = excluded.phase, phase_started_at = excluded.phase_started_at,
       phase_ends_at = excluded.phase_ends_at, start_block = excluded.start_block, info = excluded.info`,
  ).run(s.id, s.phase, s.phaseStartedAt, s.phaseEndsAt, s.startBlock, toJson(s.info));
}
