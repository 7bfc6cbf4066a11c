// Recomputes one session's settlement from public data and says whether it holds up.
//
//   npm run audit -- --session N [--graphql URL] [--fill-log URL-or-file] [--rpc URL]
//   npm run audit -- --watch …   the watchtower: audits every session as its challenge window
//                                opens and, with the guardian's key, vetoes one that fails
//                                (scripts/audit/watch.ts, options in scripts/audit/watch-cli.ts)
//
// Inputs: the indexer's GraphQL (the session's commitments, posted batches and deltas; default
// http://127.0.0.1:42069/graphql) and the keeper's published fill log (default
// $CME_KEEPER_URL/api/sessions/N/fill-log, CME_KEEPER_URL defaulting to http://127.0.0.1:8787).
// With --rpc (or CME_RPC_URL) the commitments are also read from the vault itself, so a dishonest
// indexer cannot vouch for a dishonest keeper.
//
// Checks: the fill log's keccak256 equals the fillLogHash committed on-chain; the log is canonical
// and for this session and vault (its fills and block trades counted); the posted batches rebuild
// the committed batch root and decode to the indexed deltas; every token's deltas net to zero; the
// fills reproduce every delta; no account ends below zero. A voided session is checked only for its
// committed fill log (nothing it posted was applied). Prints a verdict; exits 0 if every check
// passes, 1 if any fails, 2 on a usage or I/O error, 3 if the session is still settling (re-run
// after finalize).
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { createPublicClient, getAddress, http, keccak256, type Hex } from "viem";
import { batchLinkHash, decodeEntries, ZERO_HASH, type SettlementEntry } from "../keeper/settlement/batches.ts";
import {
  deltasFromFillLog,
  hashFillLog,
  parseFillLog,
  type FillLog,
} from "../keeper/settlement/fill-log.ts";
import { CMEVaultAbi } from "../indexer/abis/CMEVault.ts";
import { graphql as indexerGraphql, IndexerQueryError } from "../indexer/client.ts";

// ------------------------------------------------------------------------------ public data

export type IndexedSession = {
  sessionId: number;
  phase: "trading" | "settling" | "finalized" | "voided";
  batchRoot: Hex | null;
  fillLogHash: Hex | null;
  batchCount: number | null;
  batchesPosted: number;
  entryCount: number;
};

export type IndexedBatch = { batchIndex: number; entryCount: number; entries: Hex; entriesHash: Hex };
export type IndexedDelta = { batchIndex: number; entryIndex: number; accountId: number; tokenIndex: number; delta: bigint };
export type IndexedNet = { tokenIndex: number; net: bigint; entryCount: number };
export type IndexedToken = { tokenIndex: number; symbol: string | null; decimals: number };

export type PublicRecord = {
  vault: { address: Hex; chainId: number } | null;
  session: IndexedSession | null;
  batches: IndexedBatch[];
  deltas: IndexedDelta[];
  nets: IndexedNet[];
  tokens: IndexedToken[];
};

/** What the vault itself reports for the session (optional: needs an RPC URL). */
export type OnChainSession = { phase: number; batchRoot: Hex; fillLogHash: Hex; batchCount: number; batchesPosted: number };

export class AuditInputError extends Error {
  override readonly name = "AuditInputError";
}

async function graphql<T>(url: string, query: string, variables: Record<string, unknown>): Promise<T> {
  try {
    return await indexerGraphql<T>(url, query, variables);
  } catch (error) {
    throw error instanceof IndexerQueryError ? new AuditInputError(error.message) : error;
  }
}

type Page<T> = { items: T[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };

async function allPages<T>(url: string, field: string, selection: string, where: string, variables: Record<string, unknown>): Promise<T[]> {
  const out: T[] = [];
  let after: string | null = null;
  for (;;) {
    const query = `query ($after: String, $sessionId: Int!) {
      page: ${field}(where: ${where}, orderBy: "id", orderDirection: "asc", limit: 1000, after: $after) {
        items { ${selection} }
        pageInfo { hasNextPage endCursor }
      }
    }`;
    const data: { page: Page<T> } = await graphql(url, query, { ...variables, after });
    out.push(...data.page.items);
    if (!data.page.pageInfo.hasNextPage) return out;
    after = data.page.pageInfo.endCursor;
  }
}

/** Everything the audit needs from the indexer about session `sessionId`. */
export async function fetchPublicRecord(graphqlUrl: string, sessionId: number): Promise<PublicRecord> {
  const head = await graphql<{
    vaults: { items: { address: Hex; chainId: number }[] };
    session: IndexedSession | null;
    sessionTokenNets: { items: { tokenIndex: number; net: string; entryCount: number }[] };
    tokens: { items: IndexedToken[] };
  }>(
    graphqlUrl,
    `query ($sessionId: Int!) {
      vaults(limit: 2) { items { address chainId } }
      session(sessionId: $sessionId) { sessionId phase batchRoot fillLogHash batchCount batchesPosted entryCount }
      sessionTokenNets(where: { sessionId: $sessionId }, limit: 1000) { items { tokenIndex net entryCount } }
      tokens(limit: 1000) { items { tokenIndex symbol decimals } }
    }`,
    { sessionId },
  );
  const batches = await allPages<IndexedBatch>(
    graphqlUrl,
    "settlementBatchs",
    "batchIndex entryCount entries entriesHash",
    "{ sessionId: $sessionId }",
    { sessionId },
  );
  const deltas = await allPages<Omit<IndexedDelta, "delta"> & { delta: string }>(
    graphqlUrl,
    "deltas",
    "batchIndex entryIndex accountId tokenIndex delta",
    "{ sessionId: $sessionId }",
    { sessionId },
  );
  return {
    vault: head.vaults.items.length === 1 ? head.vaults.items[0]! : null,
    session: head.session,
    batches: batches.sort((a, b) => a.batchIndex - b.batchIndex),
    deltas: deltas
      .map((d) => ({ ...d, delta: BigInt(d.delta) }))
      .sort((a, b) => a.batchIndex - b.batchIndex || a.entryIndex - b.entryIndex),
    nets: head.sessionTokenNets.items.map((n) => ({ tokenIndex: n.tokenIndex, net: BigInt(n.net), entryCount: n.entryCount })),
    tokens: head.tokens.items,
  };
}

export async function fetchFillLog(source: string): Promise<Uint8Array> {
  if (/^https?:\/\//.test(source)) {
    let response: Response;
    try {
      response = await fetch(source);
    } catch (error) {
      throw new AuditInputError(`cannot fetch the fill log from ${source}: ${(error as Error).message}`);
    }
    if (!response.ok) throw new AuditInputError(`fill log ${source}: HTTP ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  }
  try {
    return new Uint8Array(await readFile(source));
  } catch (error) {
    throw new AuditInputError(`cannot read the fill log ${source}: ${(error as Error).message}`);
  }
}

export async function fetchOnChainSession(rpcUrl: string, vault: Hex, sessionId: number): Promise<OnChainSession> {
  const client = createPublicClient({ transport: http(rpcUrl) });
  let s;
  try {
    s = await client.readContract({ address: vault, abi: CMEVaultAbi, functionName: "session", args: [sessionId] });
  } catch (error) {
    throw new AuditInputError(`cannot read session ${sessionId} from the vault at ${rpcUrl}: ${(error as Error).message.split("\n")[0]}`);
  }
  return { phase: s.phase, batchRoot: s.batchRoot, fillLogHash: s.fillLogHash, batchCount: s.batchCount, batchesPosted: s.batchesPosted };
}

// ------------------------------------------------------------------------------ checks (pure)

export type CheckResult = { name: string; ok: boolean; detail: string };

/** pass: every check holds; fail: a check failed; pending: settlement is not complete yet. */
export type AuditOutcome = "pass" | "fail" | "pending";

export type AuditReport = {
  sessionId: number;
  phase: IndexedSession["phase"] | "unknown";
  checks: CheckResult[];
  outcome: AuditOutcome;
  ok: boolean;
  verdict: string;
};

const PHASE_BY_INDEX = ["none", "trading", "settling", "finalized", "voided"] as const;
const MAX_LISTED = 8;

function listFirst(lines: string[]): string {
  const shown = lines.slice(0, MAX_LISTED).join("; ");
  return lines.length > MAX_LISTED ? `${shown}; … ${lines.length - MAX_LISTED} more` : shown;
}

const keyOf = (accountId: number, tokenIndex: number) => `${accountId}/${tokenIndex}`;
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** Rebuilds the hash onion from the posted batches: root = h_0, h_n = 0. */
export function batchRoot(sessionId: number, batches: readonly { entries: Hex }[]): Hex {
  let next = ZERO_HASH;
  for (let i = batches.length - 1; i >= 0; i--) next = batchLinkHash(sessionId, i, batches[i]!.entries, next);
  return next;
}

/** Runs every check on already fetched data. */
export function auditSession(input: {
  sessionId: number;
  record: PublicRecord;
  fillLog: Uint8Array;
  onChain?: OnChainSession;
}): AuditReport {
  const { sessionId, record, fillLog: bytes } = input;
  const checks: CheckResult[] = [];
  const check = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  const s = record.session;
  const symbol = (t: number) => record.tokens.find((x) => x.tokenIndex === t)?.symbol ?? `token ${t}`;
  const label = (key: string) => {
    const [accountId, tokenIndex] = key.split("/").map(Number);
    return `account ${accountId} ${symbol(tokenIndex!)}`;
  };

  if (s === null) {
    check("session indexed", false, `the indexer has no session ${sessionId}`);
    return finish(sessionId, "unknown", checks);
  }
  check("session indexed", true, `phase ${s.phase}, ${s.batchesPosted}/${s.batchCount ?? "?"} batches, ${s.entryCount} entries`);
  if (s.fillLogHash === null || s.batchRoot === null || s.batchCount === null) {
    // Voided (or still trading) before settlement began: nothing was committed or posted.
    return finish(sessionId, s.phase, checks, s.phase === "voided" ? undefined : "settlement has not begun");
  }

  if (input.onChain !== undefined) {
    const c = input.onChain;
    const same =
      c.batchRoot.toLowerCase() === s.batchRoot.toLowerCase() &&
      c.fillLogHash.toLowerCase() === s.fillLogHash.toLowerCase() &&
      c.batchCount === s.batchCount &&
      PHASE_BY_INDEX[c.phase] === s.phase;
    check(
      "indexer matches the vault",
      same,
      same
        ? "root, fill log hash, batch count and phase as the vault reports them"
        : `vault says phase ${PHASE_BY_INDEX[c.phase] ?? c.phase}, root ${c.batchRoot}, fillLogHash ${c.fillLogHash}, ${c.batchCount} batches`,
    );
  }

  // 1. The published log is the one committed on-chain.
  const hash = hashFillLog(bytes);
  check(
    "fill log hash",
    hash === s.fillLogHash.toLowerCase(),
    hash === s.fillLogHash.toLowerCase() ? `keccak256 ${hash} as committed` : `keccak256 is ${hash}, committed ${s.fillLogHash}`,
  );
  const hashCheck = checks[checks.length - 1]!;

  // 2. It is a well-formed log for this session and vault.
  const parsed = parseFillLog(new TextDecoder("utf-8", { fatal: false }).decode(bytes));
  let log: FillLog | undefined;
  if (!parsed.ok) {
    check("fill log format", false, `${parsed.code}: ${parsed.message}`);
  } else {
    log = parsed.log;
    const h = log.header;
    const problems: string[] = [];
    if (h.sessionId !== sessionId) problems.push(`header is for session ${h.sessionId}`);
    if (record.vault !== null && h.vault !== record.vault.address.toLowerCase()) problems.push(`header names vault ${h.vault}, indexed vault is ${record.vault.address}`);
    if (record.vault !== null && h.chainId !== record.vault.chainId) problems.push(`header names chain ${h.chainId}, indexed chain is ${record.vault.chainId}`);
    const fills = log.events.filter((e) => e.type === "fill").length;
    const blocks = log.events.filter((e) => e.type === "fill" && e.block === true).length;
    check(
      "fill log format",
      problems.length === 0,
      problems.length === 0
        ? `canonical, ${plural(log.balances.length, "opening balance")}, ${plural(fills, "fill")} (${plural(blocks, "block trade")}), ${plural(log.events.length - fills, "transfer")}`
        : problems.join("; "),
    );
  }

  if (s.phase === "voided") return finish(sessionId, s.phase, checks);
  if (s.batchesPosted < s.batchCount) {
    return finish(sessionId, s.phase, checks, `${s.batchesPosted} of ${s.batchCount} batches posted`);
  }

  // 3. The posted batches are the committed chain, and decode to the indexed deltas.
  const batchProblems: string[] = [];
  if (record.batches.length !== s.batchCount) batchProblems.push(`${record.batches.length} batches indexed, ${s.batchCount} committed`);
  record.batches.forEach((b, i) => {
    if (b.batchIndex !== i) batchProblems.push(`batch ${b.batchIndex} at position ${i}`);
    if (keccak256(b.entries) !== b.entriesHash.toLowerCase()) batchProblems.push(`batch ${b.batchIndex}: entries do not hash to entriesHash`);
  });
  const root = batchRoot(sessionId, record.batches);
  if (root !== s.batchRoot.toLowerCase()) batchProblems.push(`recomputed root ${root}, committed ${s.batchRoot}`);
  check("batch chain root", batchProblems.length === 0, batchProblems.length === 0 ? `${record.batches.length} batches rebuild root ${root}` : listFirst(batchProblems));

  const posted: SettlementEntry[] = [];
  const decodeProblems: string[] = [];
  const byBatch = new Map<number, IndexedDelta[]>();
  for (const d of record.deltas) byBatch.set(d.batchIndex, [...(byBatch.get(d.batchIndex) ?? []), d]);
  for (const b of record.batches) {
    let entries: SettlementEntry[];
    try {
      entries = decodeEntries(b.entries);
    } catch (error) {
      decodeProblems.push(`batch ${b.batchIndex}: ${(error as Error).message}`);
      continue;
    }
    posted.push(...entries);
    const indexed = byBatch.get(b.batchIndex) ?? [];
    if (indexed.length !== entries.length) decodeProblems.push(`batch ${b.batchIndex}: ${entries.length} entries posted, ${indexed.length} indexed`);
    entries.forEach((e, i) => {
      const d = indexed[i];
      if (d !== undefined && (d.accountId !== e.accountId || d.tokenIndex !== e.tokenIndex || d.delta !== e.delta || d.entryIndex !== i)) {
        decodeProblems.push(`batch ${b.batchIndex} entry ${i}: posted ${e.accountId}/${e.tokenIndex} ${e.delta}, indexed ${d.accountId}/${d.tokenIndex} ${d.delta}`);
      }
    });
  }
  if (record.deltas.length !== posted.length) decodeProblems.push(`${record.deltas.length} deltas indexed, ${posted.length} entries posted`);
  // The indexer's per-token aggregate must agree with the entries too (an indexer problem, not the
  // settlement's: the watchtower retries these).
  const nets = new Map<number, bigint>();
  for (const e of posted) nets.set(e.tokenIndex, (nets.get(e.tokenIndex) ?? 0n) + e.delta);
  for (const n of record.nets) {
    if (n.net !== (nets.get(n.tokenIndex) ?? 0n)) decodeProblems.push(`indexer's net for ${symbol(n.tokenIndex)} is ${n.net}, entries sum to ${nets.get(n.tokenIndex) ?? 0n}`);
  }
  check("indexed deltas", decodeProblems.length === 0, decodeProblems.length === 0 ? `${posted.length} entries, as posted` : listFirst(decodeProblems));

  // 4. Conservation: every token's posted entries net to zero.
  const netProblems: string[] = [];
  for (const [t, net] of nets) if (net !== 0n) netProblems.push(`${symbol(t)} nets to ${net}`);
  check(
    "deltas net to zero",
    netProblems.length === 0,
    netProblems.length === 0 ? `${nets.size} tokens, each sums to 0` : listFirst(netProblems),
  );

  // 5. The fills reproduce every delta, and nobody ends below zero.
  if (log !== undefined) {
    const expected = new Map(deltasFromFillLog(log).map((d) => [keyOf(d.accountId, d.tokenIndex), d.delta]));
    const actual = new Map<string, bigint>();
    for (const e of posted) actual.set(keyOf(e.accountId, e.tokenIndex), (actual.get(keyOf(e.accountId, e.tokenIndex)) ?? 0n) + e.delta);
    const mismatches: string[] = [];
    for (const [key, want] of expected) {
      const got = actual.get(key) ?? 0n;
      if (got !== want) mismatches.push(`${label(key)}: fills give ${want}, posted ${got}`);
    }
    for (const [key, got] of actual) {
      if (!expected.has(key) && got !== 0n) mismatches.push(`${label(key)}: fills give 0, posted ${got}`);
    }
    check(
      "fills reproduce deltas",
      mismatches.length === 0,
      mismatches.length === 0 ? `${plural(expected.size, "(account, token) delta")} recomputed, all equal` : listFirst(mismatches),
    );
    // A log that is not the committed one yet reproduces every delta was changed where no value
    // moves (a block trade's flag, a timestamp, a seq); without this the hash alone says nothing of what.
    if (!hashCheck.ok && mismatches.length === 0) {
      hashCheck.detail += "; its fills still reproduce every posted delta, so what changed moves no value (a block flag, a timestamp or a seq)";
    }

    const opening = new Map(log.balances.map((b) => [keyOf(b.accountId, b.tokenIndex), b.amount]));
    const negative: string[] = [];
    for (const [key, d] of actual) {
      const end = (opening.get(key) ?? 0n) + d;
      if (end < 0n) negative.push(`${label(key)}: opens at ${opening.get(key) ?? 0n}, delta ${d}`);
    }
    check("no negative balance", negative.length === 0, negative.length === 0 ? "every account closes at or above zero" : listFirst(negative));
  }

  return finish(sessionId, s.phase, checks);
}

function finish(sessionId: number, phase: AuditReport["phase"], checks: CheckResult[], incomplete?: string): AuditReport {
  const failed = checks.filter((c) => !c.ok);
  const outcome: AuditOutcome = failed.length > 0 ? "fail" : incomplete !== undefined ? "pending" : "pass";
  const state =
    phase === "finalized"
      ? "finalized: these deltas are balances"
      : phase === "voided"
        ? "voided: its deltas were dropped and no balance changed"
        : `${phase}: not finalized yet`;
  const verdict =
    outcome === "fail"
      ? `FAIL: session ${sessionId}: ${failed.length} check${failed.length === 1 ? "" : "s"} failed (${failed.map((c) => c.name).join(", ")}) (${state})`
      : outcome === "pending"
        ? `PENDING: session ${sessionId}: ${incomplete} (${state}); run the audit again once it is finalized`
        : `PASS: session ${sessionId} ${phase === "voided" ? "holds up" : "reproduces from public data"} (${state})`;
  return { sessionId, phase, checks, outcome, ok: outcome === "pass", verdict };
}

export function renderReport(report: AuditReport): string {
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const lines = [`audit of session ${report.sessionId}`, ""];
  for (const c of report.checks) lines.push(`  ${c.ok ? "ok  " : "FAIL"}  ${c.name.padEnd(width)}  ${c.detail}`);
  lines.push("", report.verdict);
  return lines.join("\n");
}

// ------------------------------------------------------------------------------ CLI

type Args = { session: number; graphql: string; fillLog: string; rpc: string | undefined };

function parseArgs(argv: string[]): Args {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (!flag.startsWith("--")) throw new AuditInputError(`unexpected argument "${flag}"`);
    const value = argv[i + 1];
    if (value === undefined || value.startsWith("--")) throw new AuditInputError(`${flag} needs a value`);
    values.set(flag.slice(2), value);
    i++;
  }
  for (const key of values.keys()) {
    if (!["session", "graphql", "fill-log", "rpc"].includes(key)) throw new AuditInputError(`unknown option --${key}`);
  }
  const raw = values.get("session");
  if (raw === undefined || !/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 0xffff_ffff) {
    throw new AuditInputError("--session must be a session id (a positive integer)");
  }
  const session = Number(raw);
  const keeper = process.env.CME_KEEPER_URL ?? "http://127.0.0.1:8787";
  return {
    session,
    graphql: values.get("graphql") ?? process.env.CME_GRAPHQL_URL ?? "http://127.0.0.1:42069/graphql",
    fillLog: values.get("fill-log") ?? `${keeper.replace(/\/$/, "")}/api/sessions/${session}/fill-log`,
    rpc: values.get("rpc") ?? (process.env.CME_RPC_URL || undefined),
  };
}

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`audit: ${(error as Error).message}`);
    console.error("usage: npm run audit -- --session N [--graphql URL] [--fill-log URL-or-file] [--rpc URL]");
    console.error("       npm run audit -- --watch [options]   (the watchtower; see scripts/audit/watch-cli.ts)");
    return 2;
  }
  try {
    const [record, fillLog] = await Promise.all([fetchPublicRecord(args.graphql, args.session), fetchFillLog(args.fillLog)]);
    let onChain: OnChainSession | undefined;
    if (args.rpc !== undefined && record.vault !== null) {
      onChain = await fetchOnChainSession(args.rpc, getAddress(record.vault.address), args.session);
    }
    const report = auditSession({ sessionId: args.session, record, fillLog, ...(onChain === undefined ? {} : { onChain }) });
    console.log(`indexer  ${args.graphql}`);
    console.log(`fill log ${args.fillLog}${args.rpc === undefined ? "" : `\nvault    ${args.rpc}`}\n`);
    console.log(renderReport(report));
    return report.outcome === "pass" ? 0 : report.outcome === "fail" ? 1 : 3;
  } catch (error) {
    if (error instanceof AuditInputError) {
      console.error(`audit: ${error.message}`);
      return 2;
    }
    throw error;
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  // No top-level await: the watchtower's modules import this one, which must finish evaluating first.
  const argv = process.argv.slice(2);
  const run = argv.includes("--watch") ? import("./audit/watch-cli.ts").then((cli) => cli.runWatch(argv)) : main();
  void run.then((code) => (process.exitCode = code));
}
