// The watchtower: follows the vault and audits every session as its challenge window opens, with
// the same checks as the one-shot audit (scripts/audit.ts), and, given the guardian's account,
// vetoes a session that fails before the window ends. `npm run audit -- --watch` runs it
// (scripts/audit/watch-cli.ts).
//
// What it trusts: with `rpcUrl`, the vault as that node reports it (run your own node). The
// session's phase, commitments and the end of its challenge window are read from the vault; the
// indexer supplies the posted batches, and the checks tie them to the root the vault committed.
// Without `rpcUrl` it trusts the indexer and, not knowing the vault's challenge window, assumes
// the vault's floor (MIN_CHALLENGE_WINDOW) after the last indexed batch: it gives up waiting
// early, never late.
//
// When it decides, per session whose last batch is posted (the challenge window is open):
// - every check passes: PASS, nothing sent;
// - a check fails that no republication or indexer catch-up can fix (the committed fill log is
//   malformed, or its deltas differ from the posted ones, or they do not net to zero, or an
//   account would end below zero): FAIL at once, and the guardian vetoes;
// - what can still change (the fill log is not published yet, the published one does not hash
//   to the commitment, the indexer is down, lags the vault or disagrees with it) is retried every
//   poll until `vetoMarginSec` before the window closes; then FAIL, and the guardian vetoes (a
//   session nobody could verify must not finalize: a void only returns everyone to their
//   pre-session balances).
// A session that was finalized or voided before the watchtower decided is reported as such (a
// finalized one is still audited, too late to veto). One verdict per session, in order.
import {
  createPublicClient,
  createWalletClient,
  defineChain,
  getAddress,
  http,
  parseAbi,
  type Account,
  type Address,
  type Chain,
  type Hash,
  type Hex,
  type PublicClient,
  type Transport,
  type WalletClient,
} from "viem";
import { CMEVaultAbi } from "../../indexer/abis/CMEVault.ts";
import { graphql as indexerGraphql } from "../../indexer/client.ts";
import { GUARDIAN_ROLE } from "../../keeper/chain/deploy.ts";
import {
  AuditInputError,
  auditSession,
  fetchFillLog,
  fetchPublicRecord,
  type AuditReport,
  type IndexedSession,
  type OnChainSession,
} from "../audit.ts";

/** The vault's floor for the challenge window (CMEVault.MIN_CHALLENGE_WINDOW): the assumption without an RPC. */
export const MIN_CHALLENGE_WINDOW_SEC = 15 * 60;

/** Checks whose failure may be the indexer's (lagging or wrong), not the settlement's: retried. */
const INDEXER_CHECKS = new Set(["session indexed", "indexer matches the vault", "batch chain root", "indexed deltas"]);
/** A published log that does not hash to the commitment may be republished: retried. */
const REPUBLISHABLE_CHECKS = new Set(["fill log hash"]);
export const FILL_LOG_NOT_PUBLISHED = "fill log not published";
const MAX_REASON_CHARS = 200;

const accessControlAbi = parseAbi(["function hasRole(bytes32 role, address account) view returns (bool)"]);
const PHASES = ["none", "trading", "settling", "finalized", "voided"] as const;
type Phase = (typeof PHASES)[number];

export interface WatchOptions {
  /** The indexer's GraphQL endpoint. */
  graphqlUrl: string;
  /** The chain's RPC: the vault is read directly (required with `guardian`). */
  rpcUrl?: string;
  /** Where session `sessionId`'s fill log is published (URL or file path). */
  fillLogUrlFor: (sessionId: number) => string;
  /** The GUARDIAN_ROLE account that vetoes; without it the watchtower only reports. */
  guardian?: Account;
  /** The vault to follow; default: the one the indexer indexes (must match when given). */
  vault?: Address;
  /** Stops the watch (it resolves with the summary). */
  signal: AbortSignal;
  /** Called once per session with its verdict. */
  onVerdict: (verdict: WatchVerdict) => void;
  /** Progress and transient errors, one line each (waiting for a fill log, indexer lag, RPC errors). */
  onLog?: (line: string) => void;
  /** First session to watch; default: the vault's current session if still open, else the next. */
  fromSession?: number;
  /** Poll interval (default 2000 ms). */
  pollMs?: number;
  /** Stop retrying and decide this long before the window closes, leaving time to mine the veto (default 120 s). */
  vetoMarginSec?: number;
}

export type WatchVeto = { tx: Hash; blockNumber: bigint; blockTimestamp: number } | { error: string };

export interface WatchVerdict {
  sessionId: number;
  /** voided: voided (or vetoed by another guardian) before this watchtower decided. */
  outcome: "pass" | "fail" | "voided";
  /** Names of the failed checks, or FILL_LOG_NOT_PUBLISHED. */
  failed: string[];
  /** What a veto says (also set without a guardian: what it would have said). */
  reason: string | null;
  /** The audit behind the verdict (null when the fill log never arrived, or for `voided`). */
  report: AuditReport | null;
  /** The veto sent, or why it could not be; null when none was due or no guardian is configured. */
  veto: WatchVeto | null;
  /** When the vault lets `finalize` through (unix seconds; an estimate without an RPC). */
  finalizableAt: number | null;
  /** Finalized before this watchtower audited it: too late to veto. */
  late: boolean;
  /** For `voided`: who voided it, as indexed (null if the indexer has not caught up). */
  voidedBy: Address | null;
  /** The one log line for this verdict. */
  line: string;
}

export interface WatchSummary {
  verdicts: number;
  passed: number;
  failed: number;
  vetoed: number;
}

/** The watchtower cannot start: a wrong vault, a guardian without the role, a guardian without an RPC. */
export class WatchConfigError extends Error {
  override readonly name = "WatchConfigError";
}

// ------------------------------------------------------------------------------ what it reads

type VaultSession = OnChainSession & { finalizableAt: number; deadline: number };

type IndexedRow = {
  sessionId: number;
  phase: IndexedSession["phase"];
  batchCount: number | null;
  batchesPosted: number;
  settlementBegunAt: string | null;
  voidedBy: Hex | null;
};

type Snapshot = {
  /** Unix seconds as the vault will see it: the latest block's time, or the wall clock if later. */
  now: number;
  indexed: Map<number, IndexedRow>;
  onChain: Map<number, VaultSession>;
  lastId: number;
};

type Connection = {
  vault: Address;
  chainId: number;
  client: PublicClient | null;
  /** The guardian's, when one is configured. */
  wallet: WalletClient<Transport, Chain, Account> | null;
};

const graphql = <T>(url: string, query: string, variables: Record<string, unknown> = {}) => indexerGraphql<T>(url, query, variables);

/** Thrown by `connect` for what a retry may fix (the indexer down or not synced yet, the RPC down). */
class NotReady extends Error {}

async function connect(o: WatchOptions): Promise<Connection> {
  let head;
  try {
    head = await graphql<{ vaults: { items: { address: Hex; chainId: number }[] } }>(o.graphqlUrl, `{ vaults(limit: 2) { items { address chainId } } }`);
  } catch (error) {
    throw new NotReady((error as Error).message);
  }
  const indexed = head.vaults.items;
  if (indexed.length === 0) throw new NotReady(`the indexer at ${o.graphqlUrl} has not indexed the vault yet`);
  if (indexed.length > 1) throw new WatchConfigError(`the indexer at ${o.graphqlUrl} indexes ${indexed.length} vaults, expected one`);
  const vault = getAddress(indexed[0]!.address);
  if (o.vault !== undefined && getAddress(o.vault) !== vault) throw new WatchConfigError(`the indexer indexes vault ${vault}, not ${getAddress(o.vault)}`);
  const chainId = indexed[0]!.chainId;
  if (o.rpcUrl === undefined) return { vault, chainId, client: null, wallet: null };

  const chain = defineChain({
    id: chainId,
    name: `chain ${chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [o.rpcUrl] } },
  });
  const client = createPublicClient({ chain, transport: http(o.rpcUrl, { retryCount: 2, timeout: 20_000 }) }) as PublicClient;
  const rpcChainId = await client.getChainId().catch((error: Error) => {
    throw new NotReady(`cannot reach the RPC at ${o.rpcUrl}: ${error.message.split("\n")[0]}`);
  });
  if (rpcChainId !== chainId) throw new WatchConfigError(`the RPC serves chain ${rpcChainId}, the indexer chain ${chainId}`);
  if ((await client.getCode({ address: vault })) === undefined) throw new WatchConfigError(`no contract at ${vault} on chain ${chainId}`);
  if (o.guardian !== undefined) {
    const holds = await client.readContract({ address: vault, abi: accessControlAbi, functionName: "hasRole", args: [GUARDIAN_ROLE, o.guardian.address] });
    if (!holds) throw new WatchConfigError(`${o.guardian.address} does not hold GUARDIAN_ROLE on vault ${vault}`);
    if ((await client.getBalance({ address: o.guardian.address })) === 0n) o.onLog?.(`warning: the guardian ${o.guardian.address} has no ETH to pay for a veto`);
  }
  const wallet = o.guardian === undefined ? null : createWalletClient({ account: o.guardian, chain, transport: http(o.rpcUrl) });
  return { vault, chainId, client, wallet };
}

async function readVaultSession(c: Connection, sessionId: number): Promise<VaultSession> {
  const s = await c.client!.readContract({ address: c.vault, abi: CMEVaultAbi, functionName: "session", args: [sessionId] });
  return {
    phase: s.phase,
    batchRoot: s.batchRoot,
    fillLogHash: s.fillLogHash,
    batchCount: s.batchCount,
    batchesPosted: s.batchesPosted,
    finalizableAt: Number(s.finalizableAt),
    deadline: Number(s.deadline),
  };
}

type IndexerView = { indexedAt: number; currentSessionId: number; sessions: IndexedRow[] };

async function indexerView(o: WatchOptions, from: number): Promise<IndexerView> {
  const data = await graphql<{
    _meta: { status: Record<string, { block?: { timestamp?: number } }> | null } | null;
    vaults: { items: { currentSessionId: number }[] };
    sessions: { items: IndexedRow[] };
  }>(
    o.graphqlUrl,
    `query ($from: Int!) {
      _meta { status }
      vaults(limit: 1) { items { currentSessionId } }
      sessions(where: { sessionId_gte: $from }, orderBy: "sessionId", orderDirection: "asc", limit: 100) {
        items { sessionId phase batchCount batchesPosted settlementBegunAt voidedBy }
      }
    }`,
    { from },
  );
  return {
    indexedAt: Object.values(data._meta?.status ?? {})[0]?.block?.timestamp ?? 0,
    currentSessionId: data.vaults.items[0]?.currentSessionId ?? 0,
    sessions: data.sessions.items,
  };
}

/**
 * What the watchtower knows this poll. With an RPC the vault decides phases and windows, so an
 * indexer that is down does not stop the clock: its sessions are just missing (and a session
 * whose window is closing fails as unverifiable). Without an RPC the indexer is all there is.
 */
async function snapshot(c: Connection, o: WatchOptions, from: number, warn: (key: string, line: string) => void): Promise<Snapshot> {
  const wall = Math.floor(Date.now() / 1000);
  if (c.client === null) {
    const view = await indexerView(o, from);
    return { now: Math.max(view.indexedAt, wall), indexed: new Map(view.sessions.map((s) => [s.sessionId, s])), onChain: new Map(), lastId: view.currentSessionId };
  }
  const [block, current, view] = await Promise.all([
    c.client.getBlock({ blockTag: "latest" }),
    c.client.readContract({ address: c.vault, abi: CMEVaultAbi, functionName: "currentSessionId" }),
    indexerView(o, from).then(
      (view) => {
        warn("indexer", "");
        return view;
      },
      (error: Error) => {
        warn("indexer", `indexer: ${error.message.split("\n")[0]}; following the vault alone meanwhile`);
        return null;
      },
    ),
  ]);
  const onChain = new Map<number, VaultSession>();
  for (let id = from; id <= current; id++) onChain.set(id, await readVaultSession(c, id));
  return {
    now: Math.max(Number(block.timestamp), wall),
    indexed: new Map((view?.sessions ?? []).map((s) => [s.sessionId, s])),
    onChain,
    lastId: current,
  };
}

/** Without an RPC: the last indexed batch's time (or settlement's, without batches) plus the vault's floor. */
async function estimatedFinalizableAt(o: WatchOptions, row: IndexedRow): Promise<number | null> {
  if (row.batchCount === 0) return row.settlementBegunAt === null ? null : Number(row.settlementBegunAt) + MIN_CHALLENGE_WINDOW_SEC;
  const data = await graphql<{ settlementBatchs: { items: { timestamp: string }[] } }>(
    o.graphqlUrl,
    `query ($sessionId: Int!) {
      settlementBatchs(where: { sessionId: $sessionId }, orderBy: "batchIndex", orderDirection: "desc", limit: 1) { items { timestamp } }
    }`,
    { sessionId: row.sessionId },
  );
  const last = data.settlementBatchs.items[0];
  return last === undefined ? null : Number(last.timestamp) + MIN_CHALLENGE_WINDOW_SEC;
}

// ------------------------------------------------------------------------------ the decision

type Attempt =
  | { kind: "wait"; note: string }
  | { kind: "pass"; report: AuditReport }
  | { kind: "fail"; report: AuditReport | null; failed: string[]; reason: string };

function iso(unixSec: number): string {
  return new Date(unixSec * 1000).toISOString().replace(".000Z", "Z");
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** The veto's reason: the failed checks by name, then the first one's detail. */
export function vetoReason(report: AuditReport): string {
  const failed = report.checks.filter((c) => !c.ok);
  const first = failed[0];
  if (first === undefined) return clip(`could not verify: ${report.verdict}`, MAX_REASON_CHARS);
  return clip(`${failed.map((c) => c.name).join(", ")}: ${first.detail}`, MAX_REASON_CHARS);
}

/** Fetches and audits; `closing`: no more retries, whatever is unverified fails. */
async function attempt(o: WatchOptions, sessionId: number, onChain: VaultSession | undefined, closing: boolean): Promise<Attempt> {
  let fillLog: Uint8Array;
  try {
    fillLog = await fetchFillLog(o.fillLogUrlFor(sessionId));
  } catch (error) {
    if (!(error instanceof AuditInputError)) throw error;
    if (closing) return { kind: "fail", report: null, failed: [FILL_LOG_NOT_PUBLISHED], reason: FILL_LOG_NOT_PUBLISHED };
    return { kind: "wait", note: `${FILL_LOG_NOT_PUBLISHED} yet (${error.message})` };
  }
  let record;
  try {
    record = await fetchPublicRecord(o.graphqlUrl, sessionId);
  } catch (error) {
    if (!(error instanceof AuditInputError)) throw error;
    const reason = clip(`could not verify: ${error.message}`, MAX_REASON_CHARS);
    if (closing) return { kind: "fail", report: null, failed: ["indexer unavailable"], reason };
    return { kind: "wait", note: `indexer unavailable (${error.message})` };
  }
  const report = auditSession({ sessionId, record, fillLog, ...(onChain === undefined ? {} : { onChain }) });
  if (report.outcome === "pass") return { kind: "pass", report };
  const failed = report.checks.filter((c) => !c.ok).map((c) => c.name);
  const fixable = failed.some((name) => INDEXER_CHECKS.has(name) || REPUBLISHABLE_CHECKS.has(name));
  if (!closing && (report.outcome === "pending" || fixable)) {
    // pending: the vault has every batch (that is what opened the window), the indexer not yet
    const behind = /^PENDING: session \d+: (.*?) \(/.exec(report.verdict)?.[1] ?? report.verdict;
    return { kind: "wait", note: report.outcome === "pending" ? `waiting for the indexer: ${behind}` : `retrying: ${vetoReason(report)}` };
  }
  return { kind: "fail", report, failed: failed.length > 0 ? failed : ["could not verify"], reason: vetoReason(report) };
}

async function sendVeto(c: Connection, wallet: NonNullable<Connection["wallet"]>, sessionId: number, reason: string): Promise<WatchVeto> {
  try {
    const tx = await wallet.writeContract({ address: c.vault, abi: CMEVaultAbi, functionName: "vetoSession", args: [sessionId, reason] });
    const receipt = await c.client!.waitForTransactionReceipt({ hash: tx });
    if (receipt.status !== "success") return { error: `veto ${tx} reverted` };
    const block = await c.client!.getBlock({ blockNumber: receipt.blockNumber });
    return { tx, blockNumber: receipt.blockNumber, blockTimestamp: Number(block.timestamp) };
  } catch (error) {
    return { error: ((error as { shortMessage?: string }).shortMessage ?? (error as Error).message).split("\n")[0]! };
  }
}

// ------------------------------------------------------------------------------ the loop

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Follows the vault until `signal` aborts; calls `onVerdict` once per session. */
export async function watch(o: WatchOptions): Promise<WatchSummary> {
  const pollMs = o.pollMs ?? 2_000;
  const margin = o.vetoMarginSec ?? 120;
  const summary: WatchSummary = { verdicts: 0, passed: 0, failed: 0, vetoed: 0 };
  if (o.guardian !== undefined && o.rpcUrl === undefined) throw new WatchConfigError("a guardian needs an RPC URL to send its veto");
  let connected: Connection | undefined;
  for (let waiting = ""; connected === undefined; ) {
    try {
      connected = await connect(o);
    } catch (error) {
      if (!(error instanceof NotReady)) throw error;
      if (error.message !== waiting) o.onLog?.(`waiting: ${error.message}`);
      waiting = error.message;
      await sleep(pollMs, o.signal);
      if (o.signal.aborted) return summary;
    }
  }
  const c = connected;
  const notes = new Map<number, string>();
  const estimates = new Map<number, number | null>();
  const decided = new Set<number>();
  let from = o.fromSession;
  /** Logs `line` under `key` unless it is what was last logged there ("" clears it). */
  const lastLines = new Map<string, string>();
  const warn = (key: string, line: string) => {
    if (line !== "" && lastLines.get(key) !== line) o.onLog?.(line);
    lastLines.set(key, line);
  };

  const note = (sessionId: number, text: string) => {
    if (notes.get(sessionId) === text) return;
    notes.set(sessionId, text);
    o.onLog?.(`session ${sessionId}: ${text}`);
  };

  const decide = (v: Omit<WatchVerdict, "line">) => {
    const line = verdictLine(v, o.guardian !== undefined);
    decided.add(v.sessionId);
    notes.delete(v.sessionId);
    estimates.delete(v.sessionId);
    summary.verdicts++;
    if (v.outcome === "pass") summary.passed++;
    if (v.outcome === "fail") summary.failed++;
    if (v.veto !== null && "tx" in v.veto) summary.vetoed++;
    o.onVerdict({ ...v, line });
  };

  async function evaluate(sessionId: number, snap: Snapshot): Promise<void> {
    const row = snap.indexed.get(sessionId);
    const chainRow = snap.onChain.get(sessionId);
    const phase: Phase | undefined = c.client !== null ? (chainRow === undefined ? undefined : PHASES[chainRow.phase]) : row?.phase;
    if (phase === undefined || phase === "none" || phase === "trading") return;

    const base = { sessionId, veto: null, late: false, voidedBy: null, finalizableAt: chainRow?.finalizableAt ?? null } as const;
    if (phase === "voided") {
      const voidedBy = row?.phase === "voided" && row.voidedBy !== null ? getAddress(row.voidedBy) : null;
      decide({ ...base, voidedBy, outcome: "voided", failed: [], reason: null, report: null });
      return;
    }
    if (phase === "finalized") {
      if (row?.phase !== "finalized") return note(sessionId, "finalized on-chain; waiting for the indexer");
      const a = await attempt(o, sessionId, chainRow, true);
      if (a.kind === "wait") return note(sessionId, a.note);
      decide({ ...base, late: true, outcome: a.kind, failed: a.kind === "fail" ? a.failed : [], reason: a.kind === "fail" ? a.reason : null, report: a.report });
      return;
    }

    // settling: decide once the last batch is posted (the challenge window is open)
    let finalizableAt: number | null;
    if (chainRow !== undefined) {
      if (chainRow.batchesPosted < chainRow.batchCount || chainRow.finalizableAt === 0) return;
      finalizableAt = chainRow.finalizableAt;
    } else {
      if (row === undefined || row.batchCount === null || row.batchesPosted < row.batchCount) return;
      if (!estimates.has(sessionId) || estimates.get(sessionId) === null) estimates.set(sessionId, await estimatedFinalizableAt(o, row));
      finalizableAt = estimates.get(sessionId) ?? null;
    }
    const closing = finalizableAt !== null && snap.now >= finalizableAt - margin;
    const a = await attempt(o, sessionId, chainRow, closing);
    if (a.kind === "wait") {
      const until = finalizableAt === null ? "" : `; retrying until ${iso(finalizableAt - margin)} (the window closes ${iso(finalizableAt)})`;
      return note(sessionId, `${a.note}${until}`);
    }
    if (a.kind === "pass") {
      decide({ ...base, finalizableAt, outcome: "pass", failed: [], reason: null, report: a.report });
      return;
    }
    let veto: WatchVeto | null = null;
    if (c.wallet !== null) {
      veto = await sendVeto(c, c.wallet, sessionId, a.reason);
      if ("error" in veto) {
        const still = await readVaultSession(c, sessionId);
        const now = Math.max(Math.floor(Date.now() / 1000), Number((await c.client!.getBlock()).timestamp));
        if (PHASES[still.phase] === "settling" && now < still.finalizableAt) return note(sessionId, `veto failed (${veto.error}); retrying`);
      }
    }
    decide({ ...base, finalizableAt, outcome: "fail", failed: a.failed, reason: a.reason, report: a.report, veto });
  }

  while (!o.signal.aborted) {
    try {
      if (from === undefined) from = await firstOpenSession(c, o);
      const snap = await snapshot(c, o, from, warn);
      for (let id = from; id <= snap.lastId && !o.signal.aborted; id++) {
        if (!decided.has(id)) await evaluate(id, snap);
      }
      while (decided.has(from)) decided.delete(from++);
      warn("poll", "");
    } catch (error) {
      warn("poll", `watch: ${(error as Error).message.split("\n")[0]}; retrying`);
    }
    await sleep(pollMs, o.signal);
  }
  return summary;
}

/** The vault's current session if it is still open, else the next one to start. */
async function firstOpenSession(c: Connection, o: WatchOptions): Promise<number> {
  if (c.client !== null) {
    const current = await c.client.readContract({ address: c.vault, abi: CMEVaultAbi, functionName: "currentSessionId" });
    if (current === 0) return 1;
    const phase = PHASES[(await readVaultSession(c, current)).phase];
    return phase === "finalized" || phase === "voided" ? current + 1 : current;
  }
  const data = await graphql<{ vaults: { items: { currentSessionId: number }[] } }>(o.graphqlUrl, `{ vaults(limit: 1) { items { currentSessionId } } }`);
  const current = data.vaults.items[0]?.currentSessionId ?? 0;
  if (current === 0) return 1;
  const s = await graphql<{ session: { phase: Phase } | null }>(o.graphqlUrl, `query ($id: Int!) { session(sessionId: $id) { phase } }`, { id: current });
  return s.session?.phase === "finalized" || s.session?.phase === "voided" ? current + 1 : current;
}

function verdictLine(v: Omit<WatchVerdict, "line">, hasGuardian: boolean): string {
  const head = `session ${v.sessionId}`;
  if (v.outcome === "voided") {
    return `${head} VOIDED${v.voidedBy === null ? "" : ` by ${v.voidedBy}`} before the watchtower decided: every balance stays as before the session`;
  }
  const window = v.finalizableAt === null ? "" : ` (finalize opens ${iso(v.finalizableAt)})`;
  if (v.outcome === "pass") {
    const fills = v.report?.checks.find((ch) => ch.name === "fills reproduce deltas")?.detail ?? "every check holds";
    return `${head} PASS${v.late ? " (audited after finalize)" : ""}: ${fills}${v.late ? "" : window}`;
  }
  let action: string;
  if (v.late) action = "finalized before the watchtower audited it: too late to veto";
  else if (v.veto === null) action = hasGuardian ? "not vetoed" : "NOT vetoed (no guardian key): report it to the guardian";
  else if ("tx" in v.veto) {
    const left = v.finalizableAt === null ? "" : `, ${v.finalizableAt - v.veto.blockTimestamp} s before the window closed`;
    action = `vetoed in ${v.veto.tx} (block ${v.veto.blockNumber}${left})`;
  } else action = `veto FAILED: ${v.veto.error}`;
  return `${head} FAIL: ${v.reason ?? v.failed.join(", ")} -> ${action}`;
}
