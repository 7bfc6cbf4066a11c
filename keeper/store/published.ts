// What the keeper publishes after a session settles: the fill log (its keccak256 is committed
// on-chain at beginSettlement) and the top 10 prompts by PnL.
import type { Db } from "./database.ts";

export interface TopPrompt {
  sessionId: number;
  rank: number;
  address: string;
  brokerId: string | null;
  prompt: string;
  /** PnL in quote (USDC) base units at the closing mark, decimal string. */
  pnl: string;
}

export function putFillLog(db: Db, sessionId: number, body: string, hash: string): void {
  db.prepare("INSERT OR IGNORE INTO fill_logs (session_id, body, hash) VALUES (?, ?, ?)").run(sessionId, body, hash);
}

export function getFillLog(db: Db, sessionId: number): { body: string; hash: string } | undefined {
  return db.prepare("SELECT body, hash FROM fill_logs WHERE session_id = ?").get(sessionId) as { body: string; hash: string } | undefined;
}

export function putTopPrompts(db: Db, sessionId: number, rows: Omit<TopPrompt, "sessionId">[]): void {
  db.prepare("DELETE FROM top_prompts WHERE session_id = ?").run(sessionId);
  const ins = db.prepare("INSERT INTO top_prompts (session_id, rank, address, broker_id, prompt, pnl) VALUES (?, ?, ?, ?, ?, ?)");
  for (const r of rows) ins.run(sessionId, r.rank, r.address, r.brokerId, r.prompt, r.pnl);
}

/** Published top prompts, newest session first. */
export function listTopPrompts(db: Db, sessions: number): TopPrompt[] {
  const rows = db
    .prepare(
      `SELECT * FROM top_prompts WHERE session_id IN (SELECT DISTINCT session_id FROM top_prompts ORDER BY session_id DESC LIMIT ?)
       ORDER BY session_id DESC, rank`,
    )
    .all(sessions) as unknown as { session_id: number; rank: number; address: string; broker_id: string | null; prompt: string; pnl: string }[];
  return rows.map((r) => ({ sessionId: r.session_id, rank: r.rank, address: r.address, brokerId: r.broker_id, prompt: r.prompt, pnl: r.pnl }));
}
