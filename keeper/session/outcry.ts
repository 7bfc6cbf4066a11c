// The open-outcry feed: each broker reply's shouted line, kept for the session's readers (the
// newest thousand) and counted, so a reader can ask for what is new since it last looked.
export interface OutcryLine {
  account: string;
  accountId: number;
  broker: string;
  line: string;
  ts: number;
}

export const OUTCRY_MAX_CHARS = 280;

export class OutcryFeed {
  #lines: OutcryLine[] = [];
  #count = 0;

  /** Records a line; blank lines are not shouts. Returns what was recorded, or null. */
  record(entry: OutcryLine): OutcryLine | null {
    if (entry.line.trim() === "") return null;
    const line = { ...entry, line: entry.line.slice(0, OUTCRY_MAX_CHARS) };
    this.#lines.push(line);
    this.#count++;
    if (this.#lines.length > 1_000) this.#lines = this.#lines.slice(-500);
    return line;
  }

  /** The newest `limit` lines, newest first. */
  newest(limit: number): OutcryLine[] {
    return this.#lines.slice(-limit).reverse();
  }

  /** Lines recorded since the keeper started. */
  get count(): number {
    return this.#count;
  }
}
