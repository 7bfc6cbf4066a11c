// How other programs run and read the indexer: `npm start`, the audit, the indexer's tests and
// its benchmark all launch `ponder start` and query GraphQL through this one module, so the
// environment Ponder needs and the readiness rules live in one place. Not part of the Ponder app
// (Ponder builds only ponder.config.ts, ponder.schema.ts and src/).
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const INDEXER_DIR = dirname(fileURLToPath(import.meta.url));

export interface PonderLaunch {
  chainId: number;
  rpcUrl: string;
  /** deployments/<chainId>.json of the vault to index. */
  deploymentPath: string;
  port: number;
  host: string;
  /** Database schema Ponder writes to (one per app instance). */
  schema: string;
  /** Embedded PGlite directory; undefined: the indexer's own default. */
  dbDir?: string | undefined;
  /** Ignore DATABASE_URL and use PGlite even when the environment names a Postgres. */
  embedded: boolean;
  /** Extra arguments before `start` (e.g. `--log-level debug`). */
  globalArgs?: readonly string[];
  /** Extra arguments after `start` (e.g. `--log-format json`). */
  startArgs?: readonly string[];
}

/** The command line, working directory and environment of `ponder start` for `o`. */
export function ponderStart(o: PonderLaunch, baseEnv: NodeJS.ProcessEnv = process.env): { args: string[]; cwd: string; env: NodeJS.ProcessEnv } {
  const env: NodeJS.ProcessEnv = {
    ...baseEnv,
    CME_CHAIN_ID: String(o.chainId),
    CME_RPC_URL: o.rpcUrl,
    CME_DEPLOYMENT: o.deploymentPath,
    PONDER_TELEMETRY_DISABLED: "true",
    // Ponder colours its log when it believes it has a terminal; its output goes to files and pipes.
    NO_COLOR: "1",
    FORCE_COLOR: "0",
  };
  if (o.dbDir !== undefined) env.CME_INDEXER_DB = o.dbDir;
  if (o.embedded) {
    delete env.DATABASE_URL;
    delete env.DATABASE_PRIVATE_URL;
    delete env.DATABASE_SCHEMA;
  }
  const args = [...(o.globalArgs ?? []), "start", "--schema", o.schema, "--port", String(o.port), "--hostname", o.host, ...(o.startArgs ?? [])];
  return { args, cwd: INDEXER_DIR, env };
}

export const indexerUrls = (host: string, port: number) => {
  const url = `http://${host}:${port}`;
  return { url, graphqlUrl: `${url}/graphql` };
};

export class IndexerQueryError extends Error {
  override readonly name = "IndexerQueryError";
}

/** One GraphQL request; an unreachable indexer, a GraphQL error or an empty answer is an IndexerQueryError. */
export async function graphql<T>(url: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  let response: Response;
  try {
    response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query, variables }) });
  } catch (error) {
    throw new IndexerQueryError(`cannot reach the indexer at ${url}: ${(error as Error).message}`);
  }
  const body = (await response.json().catch(() => ({}))) as { data?: T; errors?: { message: string }[] };
  if (body.errors !== undefined && body.errors.length > 0) throw new IndexerQueryError(`indexer GraphQL error: ${body.errors.map((e) => e.message).join("; ")}`);
  if (body.data === undefined || body.data === null) throw new IndexerQueryError(`indexer GraphQL: no data (HTTP ${response.status})`);
  return body.data;
}

/** Historical sync done: Ponder's /ready answers 200. */
export async function isReady(url: string): Promise<boolean> {
  return (await fetch(`${url}/ready`)).status === 200;
}

/** The block Ponder has indexed up to (its /status); -1 before the first. */
export async function indexedBlock(url: string): Promise<number> {
  const status = (await (await fetch(`${url}/status`)).json()) as Record<string, { block?: { number: number } }>;
  return Object.values(status)[0]?.block?.number ?? -1;
}
