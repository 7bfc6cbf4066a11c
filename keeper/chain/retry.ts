// Retrying chain work until it is done or provably impossible. A chain step fails for two kinds of
// reasons: the world said no (the vault reverted with a custom error, storage failed) or the road
// to it is bad (connection refused, HTTP 5xx, malformed JSON, a timeout). The first is final; the
// second is retried with exponential backoff until a time limit, not an attempt count, so a
// five-second outage and a five-minute one are handled alike.
import { BaseError, ContractFunctionRevertedError, ExecutionRevertedError, HttpRequestError, TimeoutError } from "viem";
import { StorageError } from "../store/database.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { ComponentHealth } from "../ops/health.ts";

/** What an error from a chain call means for the caller. */
export type ChainErrorKind =
  /** The call would revert / reverted: final. */
  | "revert"
  /** The settler cannot pay gas × max fee: wait for funds. */
  | "funds"
  /** The fee is below what the next block needs: wait (or bump). */
  | "underpriced"
  /** The node already has this transaction, or its nonce is used: receipts decide. */
  | "known"
  /** Anything else: the road, not the destination. Retry. */
  | "transient";

/** The causes of `err`, outermost first. */
const chain = (err: unknown): unknown[] => {
  const out: unknown[] = [];
  for (let e = err, i = 0; e !== undefined && e !== null && i < 10; e = (e as { cause?: unknown }).cause, i++) out.push(e);
  return out;
};

/** The node's words only (viem's full message also quotes the request body, which says "jsonrpc"). */
const words = (errs: unknown[]): string =>
  errs
    .map((e) => (e instanceof BaseError ? `${e.shortMessage}\n${e.details ?? ""}` : e instanceof Error ? e.message : String(e)))
    .join("\n")
    .toLowerCase();

/** Classifies a viem/RPC error by its chain of causes and the node's message. */
export function classifyChainError(err: unknown): ChainErrorKind {
  const errs = chain(err);
  const t = words(errs);
  if (/insufficient funds|exceeds transaction sender account balance|sender doesn't have enough funds/.test(t)) return "funds";
  if (/replacement transaction underpriced|already known|known transaction|transaction already imported|nonce too low/.test(t)) return "known";
  if (/max fee per gas less than block base fee|fee cap less than block base fee|too low for the next block|transaction underpriced/.test(t)) return "underpriced";
  // The road: HTTP status, timeouts, sockets, bodies that are not JSON, fetch itself.
  if (errs.some((e) => e instanceof HttpRequestError || e instanceof TimeoutError || (e instanceof Error && !(e instanceof BaseError) && (e.name !== "Error" || /fetch failed|econn|socket|json/i.test(e.message))))) {
    return "transient";
  }
  if (errs.some((e) => e instanceof ContractFunctionRevertedError || e instanceof ExecutionRevertedError) || /execution reverted|reverted with/.test(t)) return "revert";
  return "transient";
}

/** Gave up on transient failures at the deadline; `cause` is the last one. */
export class RetryDeadlineError extends Error {
  override name = "RetryDeadlineError";
  constructor(
    message: string,
    readonly details: { step: string; attempts: number; elapsedMs: number },
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Default finality: a vault revert named by its custom error (ChainError with an errorName) or a
 * storage failure. An inner retry that gave up (RetryDeadlineError, or a ChainError without an
 * error name) is not final for an outer one with a longer deadline.
 */
export function isFinalError(err: unknown): boolean {
  if (err instanceof StorageError) return true;
  const details = (err as { details?: { errorName?: unknown } } | null)?.details;
  return err instanceof Error && err.name === "ChainError" && typeof details?.errorName === "string";
}

export interface RetryOptions {
  /** Give up this long after the first attempt started (RetryDeadlineError). */
  deadlineMs: number;
  log?: { warn(o: object, m?: string): void };
  /** Each failure is counted in cme_chain_retries_total{step}. */
  metrics?: Metrics;
  /** Failures are noted on it (named if it stalls); success is progress. */
  health?: ComponentHealth;
  /** Which errors end the retrying at once (default isFinalError). */
  isFinal?: (err: unknown) => boolean;
  /** First delay, doubled after each failure up to maxDelayMs (defaults 250 ms, 30 s). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Called with each failure that will be retried (or has hit the deadline). */
  onFailure?: (err: unknown, attempt: number) => void;
  /** Checked before each retry: true stops with the last error (keeper shutting down). */
  stopped?: () => boolean;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The metrics label of a step: "session:3:batch:7" → "batch". */
export const stepKind = (step: string): string => {
  const parts = step.split(":");
  return parts[0] === "session" && parts.length >= 3 ? parts[2]! : parts[0]!;
};

/**
 * Runs `fn` until it resolves, retrying what is not final with exponential backoff (with jitter)
 * until `deadlineMs` has passed; a log line (warn) and a metric per failure.
 */
export async function retryUntil<T>(step: string, fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? defaultSleep;
  const isFinal = opts.isFinal ?? isFinalError;
  const base = opts.baseDelayMs ?? 250;
  const max = opts.maxDelayMs ?? 30_000;
  const started = now();
  for (let attempt = 1; ; attempt++) {
    try {
      const out = await fn(attempt);
      opts.health?.progress();
      return out;
    } catch (err) {
      if (isFinal(err)) throw err;
      const elapsed = now() - started;
      opts.metrics?.chainRetries.inc({ step: stepKind(step) });
      opts.health?.error(err);
      opts.onFailure?.(err, attempt);
      const message = err instanceof BaseError ? err.shortMessage : err instanceof Error ? err.message.split("\n")[0]! : String(err);
      if (elapsed >= opts.deadlineMs || opts.stopped?.() === true) {
        throw new RetryDeadlineError(
          `${step}: still failing after ${Math.round(elapsed / 1000)} s and ${attempt} attempts: ${message}`,
          { step, attempts: attempt, elapsedMs: elapsed },
          { cause: err },
        );
      }
      const ceiling = Math.min(max, base * 2 ** Math.min(attempt - 1, 20));
      const delay = Math.min(Math.round(ceiling / 2 + (Math.random() * ceiling) / 2), Math.max(0, opts.deadlineMs - elapsed));
      opts.log?.warn({ step, attempt, retryInMs: delay, error: message }, "chain step failed; retrying");
      await sleep(delay);
    }
  }
}
