// A user's pit settings: chosen broker, strategy prompt and pairs. Keyed by wallet address
// (lower case); the vault's account id is looked up in the ledger.
import type { Db } from "./database.ts";

export interface UserSettings {
  address: string;
  brokerId: string | null;
  prompt: string | null;
  pairs: string[] | null;
  updatedAt: number;
}

interface Row { address: string; broker_id: string | null; prompt: string | null; pairs: string | null; updated_at: number }

const toSettings = (r: Row): UserSettings => ({
  address: r.address,
  brokerId: r.broker_id,
  prompt: r.prompt,
  pairs: r.pairs === null ? null : (JSON.parse(r.pairs) as string[]),
  updatedAt: r.updated_at,
});

export function getUser(db: Db, address: string): UserSettings | undefined {
  const r = db.prepare("SELECT * FROM users WHERE address = ?").get(address.toLowerCase()) as Row | undefined;
  return r === undefined ? undefined : toSettings(r);
}

export function listUsers(db: Db): UserSettings[] {
  return (db.prepare("SELECT * FROM users ORDER BY address").all() as unknown as Row[]).map(toSettings);
}

export function updateUser(
  db: Db,
  address: string,
  change: { brokerId?: string; prompt?: string; pairs?: string[] },
  now: number,
): UserSettings {
  const key = address.toLowerCase();
  db.prepare("INSERT OR IGNORE INTO users (address, updated_at) VALUES (?, ?)").run(key, now);
  if (change.brokerId !== undefined) db.prepare("UPDATE users SET broker_id = ? WHERE address = ?").run(change.brokerId, key);
  if (change.prompt !== undefined) db.prepare("UPDATE users SET prompt = ? WHERE address = ?").run(change.prompt, key);
  if (change.pairs !== undefined) db.prepare("UPDATE users SET pairs = ? WHERE address = ?").run(JSON.stringify(change.pairs), key);
  db.prepare("UPDATE users SET updated_at = ? WHERE address = ?").run(now, key);
  return getUser(db, key)!;
}

/** Records the session's one re-prompt; false when the user already used it. */
export function recordReprompt(db: Db, sessionId: number, address: string, prompt: string, now: number): boolean {
  const r = db
    .prepare("INSERT OR IGNORE INTO reprompts (session_id, address, prompt, at) VALUES (?, ?, ?, ?)")
    .run(sessionId, address.toLowerCase(), prompt, now);
  return r.changes === 1;
}

export function getReprompt(db: Db, sessionId: number, address: string): { prompt: string; at: number } | undefined {
  return db
    .prepare("SELECT prompt, at FROM reprompts WHERE session_id = ? AND address = ?")
    .get(sessionId, address.toLowerCase()) as { prompt: string; at: number } | undefined;
}

export function listReprompts(db: Db, sessionId: number): { address: string; prompt: string; at: number }[] {
  return db.prepare("SELECT address, prompt, at FROM reprompts WHERE session_id = ? ORDER BY at").all(sessionId) as unknown as {
    address: string;
    prompt: string;
    at: number;
  }[];
}
