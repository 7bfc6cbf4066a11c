// What `npm start` prints: one line per step with its outcome and time, a spinner with elapsed
// seconds for slow steps on a terminal (plain lines elsewhere, so logs and CI stay readable),
// a status line redrawn in place while a session trades, and aligned tables. Colour only on a
// terminal and never with NO_COLOR.
import { stdout } from "node:process";

const tty = stdout.isTTY === true;
const colour = tty && process.env.NO_COLOR === undefined && process.env.TERM !== "dumb";
const ansi = (open: number, close: number) => (s: string) => (colour ? `\x1b[${open}m${s}\x1b[${close}m` : s);

export const c = {
  bold: ansi(1, 22),
  dim: ansi(2, 22),
  red: ansi(31, 39),
  green: ansi(32, 39),
  yellow: ansi(33, 39),
  blue: ansi(34, 39),
  magenta: ansi(35, 39),
  cyan: ansi(36, 39),
};

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const strip = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");

let live: string | null = null;
/** Set by `endLive`: no more spinners or status lines (shutting down). */
let ended = false;
const spinners = new Set<NodeJS.Timeout>();

// The terminal may go away (SIGHUP) while the demo shuts down: losing progress text then is fine,
// crashing on it (and leaving the node and the indexer behind) is not.
stdout.on("error", () => {});

function clearLive(): void {
  if (tty && live !== null) stdout.write("\r\x1b[2K");
}

function redrawLive(): void {
  if (tty && live !== null) stdout.write(live);
}

/** Prints a line, keeping any live status line below it. */
export function say(line = ""): void {
  clearLive();
  stdout.write(`${line}\n`);
  redrawLive();
}

/** Cuts `s` to `max` visible characters, keeping colour codes whole (a status line must not wrap). */
function fit(s: string, max: number): string {
  let out = "";
  let visible = 0;
  for (let i = 0; i < s.length; ) {
    const code = /^\x1b\[[0-9;]*m/.exec(s.slice(i));
    if (code !== null) {
      out += code[0];
      i += code[0].length;
      continue;
    }
    if (visible >= max) {
      i++;
      continue;
    }
    out += s[i];
    visible++;
    i++;
  }
  return out;
}

/** Sets (or clears, with null) the one line redrawn in place; terminals only. */
export function status(line: string | null): void {
  if (!tty || (ended && line !== null)) return;
  clearLive();
  const columns = stdout.columns > 0 ? stdout.columns : 0;
  live = line === null ? null : columns > 0 ? fit(line, columns - 1) : line;
  redrawLive();
}

export const seconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;

export interface Step {
  /** Detail shown after the label while the step runs ("3/8 wallets"). */
  progress(detail: string): void;
  done(summary?: string): void;
  fail(summary?: string): void;
}

/** Stops every spinner and clears the status line for good: what prints from now on is plain lines. */
export function endLive(): void {
  ended = true;
  for (const t of spinners) clearInterval(t);
  spinners.clear();
  status(null);
}

/** Starts a step: a spinner with elapsed time on a terminal, else one "…" line. */
export function step(label: string): Step {
  const started = performance.now();
  let detail = "";
  let frame = 0;
  let timer: NodeJS.Timeout | undefined;
  if (tty) {
    const draw = () => {
      const elapsed = Math.floor((performance.now() - started) / 1000);
      status(`${c.cyan(SPINNER[frame++ % SPINNER.length]!)} ${label}${detail === "" ? "" : c.dim(` · ${detail}`)}${elapsed >= 1 ? c.dim(` · ${elapsed} s`) : ""}`);
    };
    draw();
    timer = setInterval(draw, 100);
    timer.unref();
    spinners.add(timer);
  } else {
    say(`… ${label}`);
  }
  const end = (mark: string, summary: string | undefined) => {
    if (timer !== undefined) {
      clearInterval(timer);
      spinners.delete(timer);
    }
    if (ended) return;
    if (tty) status(null);
    const took = c.dim(`(${seconds(performance.now() - started)})`);
    say(`${mark} ${label}${summary === undefined ? "" : `: ${summary}`} ${took}`);
  };
  return {
    progress(d) {
      detail = d;
    },
    done: (summary) => end(c.green("✔"), summary),
    fail: (summary) => end(c.red("✖"), summary),
  };
}

export type Align = "left" | "right";

/** An aligned table: header, rule, rows; cells may carry colour codes. */
export function table(headers: string[], rows: string[][], align: Align[] = []): string[] {
  const width = headers.map((h, i) => Math.max(strip(h).length, ...rows.map((r) => strip(r[i] ?? "").length)));
  const cell = (s: string, i: number) => {
    const pad = " ".repeat(Math.max(0, width[i]! - strip(s).length));
    return align[i] === "right" ? pad + s : s + pad;
  };
  const line = (cells: string[]) => cells.map(cell).join("  ").trimEnd();
  return [c.dim(line(headers)), c.dim(width.map((w) => "─".repeat(w)).join("  ")), ...rows.map(line)];
}

/** Exact decimal text of `value / 10^decimals`, rounded half away from zero to `places`, with grouping. */
export function formatUnits(value: bigint, decimals: number, places: number, signed = false): string {
  const neg = value < 0n;
  let abs = neg ? -value : value;
  if (decimals > places) {
    const div = 10n ** BigInt(decimals - places);
    abs = (abs + div / 2n) / div;
  } else {
    abs *= 10n ** BigInt(places - decimals);
  }
  const s = abs.toString().padStart(places + 1, "0");
  const int = s.slice(0, s.length - places).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const sign = neg && abs !== 0n ? "-" : signed && abs !== 0n ? "+" : "";
  return `${sign}${int}${places > 0 ? `.${s.slice(s.length - places)}` : ""}`;
}

export const shortAddress = (a: string) => `${a.slice(0, 6)}…${a.slice(-4)}`;

/** A one-line excerpt of free text, cut at a word boundary. */
export function excerpt(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ").trim();
  if (flat.length <= max) return flat;
  const cut = flat.slice(0, max - 1);
  const space = cut.lastIndexOf(" ");
  return `${(space > max * 0.6 ? cut.slice(0, space) : cut).replace(/[\s,.;:]+$/, "")}…`;
}
