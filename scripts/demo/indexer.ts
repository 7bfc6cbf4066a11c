// The Ponder indexer as a child of `npm start` (ponder start in indexer/, embedded PGlite), and
// the check `npm start` prints after each session: the indexer serves the session as finalized,
// every token's deltas net to zero, and every balance it serves equals the vault's balanceOf at
// the block it has indexed.
import type { Address, PublicClient } from "viem";
import { vaultAbi } from "../../keeper/chain/vault-abi.ts";
import { graphql, indexedBlock, indexerUrls, isReady, ponderStart } from "../../indexer/client.ts";
import { binScript, spawnLogged, waitFor, type Child } from "./processes.ts";

export interface IndexerOptions {
  root: string;
  chainId: number;
  rpcUrl: string;
  deploymentPath: string;
  port: number;
  host: string;
  /** PGlite directory; undefined: the indexer's own default (or DATABASE_URL). */
  dbDir: string | undefined;
  /** Ignore DATABASE_URL: the local demo's chain is new every run, so its index is too. */
  embedded: boolean;
  schema: string;
  logPath: string;
}

export interface Indexer {
  child: Child;
  url: string;
  graphqlUrl: string;
}

export function spawnIndexer(o: IndexerOptions): Indexer {
  const { args, cwd, env } = ponderStart(o);
  const child = spawnLogged("indexer", [binScript(o.root, "ponder"), ...args], { cwd, env, logPath: o.logPath });
  return { child, ...indexerUrls(o.host, o.port) };
}

/** Ready: historical sync done (Ponder's /ready) and GraphQL answers. */
export async function waitForIndexer(ix: Indexer, timeoutMs: number): Promise<void> {
  await waitFor("the indexer", () => isReady(ix.url), { timeoutMs, child: ix.child, everyMs: 250 });
  await waitFor("the indexer's GraphQL", async () => (await graphql<{ vaults: unknown }>(ix.graphqlUrl, "{ vaults { totalCount } }")) !== undefined, {
    timeoutMs,
    child: ix.child,
  });
}

export interface IndexedSession {
  sessionId: number;
  phase: string;
  finalizedTx: string | null;
  finalizedBlock: number | null;
  entryCount: number;
  nets: { tokenIndex: number; net: bigint; credits: bigint }[];
  /** At `block`: every (account, token) balance the indexer serves, compared with the vault's. */
  balances: { block: number; compared: number; mismatches: string[] };
}

type SessionQuery = {
  session: { phase: string; finalizedTx: string | null; finalizedBlock: string | null; entryCount: number } | null;
  sessionTokenNets: { items: { tokenIndex: number; net: string; credits: string }[] };
};

/** Waits until the indexer serves `sessionId` as finalized, then checks nets and balances. */
export async function verifySession(ix: Indexer, client: PublicClient, vault: Address, sessionId: number, timeoutMs: number): Promise<IndexedSession> {
  let found: SessionQuery | undefined;
  await waitFor(
    `the indexer serving session ${sessionId}`,
    async () => {
      const q = await graphql<SessionQuery>(
        ix.graphqlUrl,
        `query ($s: Int!) {
          session(sessionId: $s) { phase finalizedTx finalizedBlock entryCount }
          sessionTokenNets(where: { sessionId: $s }, orderBy: "tokenIndex") { items { tokenIndex net credits } }
        }`,
        { s: sessionId },
      );
      if (q.session?.phase !== "finalized") return false;
      found = q;
      return true;
    },
    { timeoutMs, child: ix.child, everyMs: 250 },
  );
  const q = found!;
  const balances = await compareBalances(ix, client, vault);
  return {
    sessionId,
    phase: q.session!.phase,
    finalizedTx: q.session!.finalizedTx,
    finalizedBlock: q.session!.finalizedBlock === null ? null : Number(q.session!.finalizedBlock),
    entryCount: q.session!.entryCount,
    nets: q.sessionTokenNets.items.map((n) => ({ tokenIndex: n.tokenIndex, net: BigInt(n.net), credits: BigInt(n.credits) })),
    balances,
  };
}

type BalancePage = { balances: { items: { account: Address; token: Address; amount: string }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } };

/**
 * Every balance row the indexer serves against the vault's balanceOf at the indexed block. Read
 * the block first and the rows after: Ponder only moves forward, so a row read later is at least
 * as new; if a block lands in between the comparison is retried.
 */
export async function compareBalances(ix: Indexer, client: PublicClient, vault: Address): Promise<IndexedSession["balances"]> {
  for (let attempt = 0; ; attempt++) {
    const block = await indexedBlock(ix.url);
    const rows: BalancePage["balances"]["items"] = [];
    let after: string | null = null;
    for (;;) {
      const page: BalancePage = await graphql<BalancePage>(
        ix.graphqlUrl,
        `query ($after: String) { balances(limit: 1000, after: $after, orderBy: "accountId") { items { account token amount } pageInfo { hasNextPage endCursor } } }`,
        { after },
      );
      rows.push(...page.balances.items);
      if (!page.balances.pageInfo.hasNextPage) break;
      after = page.balances.pageInfo.endCursor;
    }
    if ((await indexedBlock(ix.url)) !== block && attempt < 5) continue;
    const onChain = await Promise.all(
      rows.map((r) => client.readContract({ address: vault, abi: vaultAbi, functionName: "balanceOf", args: [r.account, r.token], blockNumber: BigInt(block) })),
    );
    const mismatches = rows.flatMap((r, i) => (onChain[i] === BigInt(r.amount) ? [] : [`${r.account} ${r.token}: vault ${onChain[i]}, indexer ${r.amount}`]));
    return { block, compared: rows.length, mismatches };
  }
}
