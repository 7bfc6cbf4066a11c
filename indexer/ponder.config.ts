// Where to index: the chain comes from the environment, the vault's address and start block from
// the deployment output (scripts/deploy.ts writes deployments/<chainId>.json).
//   CME_CHAIN_ID      chain id (default 31337, the local Hardhat node)
//   CME_RPC_URL       HTTP RPC URL, or several separated by commas (default http://127.0.0.1:8545)
//   CME_DEPLOYMENT    deployment file (default <repo>/deployments/<chainId>.json)
//   CME_POLLING_MS    block polling interval in ms (default 100 on 31337, else 1000; min 100)
//   CME_INDEXER_DB    embedded (PGlite) database directory (default indexer/.ponder/pglite, or
//                     pglite-31337-<deployment block hash> on the local chain); ignored when
//                     DATABASE_URL selects Postgres
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createConfig } from "ponder";
import { CMEVaultAbi } from "./abis/CMEVault.ts";

const LOCAL_CHAIN_ID = 31337;
const LOCAL_RPC_BACKENDS = 10;
const here = dirname(fileURLToPath(import.meta.url));

const chainId = Number(process.env.CME_CHAIN_ID ?? LOCAL_CHAIN_ID);
if (!Number.isSafeInteger(chainId) || chainId <= 0) {
  throw new Error(`CME_CHAIN_ID must be a positive integer, got "${process.env.CME_CHAIN_ID}"`);
}
const rpcUrls = (process.env.CME_RPC_URL ?? "http://127.0.0.1:8545")
  .split(",")
  .map((u) => u.trim())
  .filter((u) => u !== "");
if (rpcUrls.length === 0) throw new Error("CME_RPC_URL must name at least one RPC URL");
// Ponder rate-limits every RPC URL it is given, starting at 20 requests/s and growing slowly, to
// protect hosted providers. A local node has no such limit and a burst of blocks then waits on
// the limiter, so on the local chain the one URL is given as several backends.
const rpc = chainId === LOCAL_CHAIN_ID && rpcUrls.length === 1 ? Array.from({ length: LOCAL_RPC_BACKENDS }, () => rpcUrls[0]!) : rpcUrls;
const deploymentPath = resolve(process.env.CME_DEPLOYMENT ?? join(here, "..", "deployments", `${chainId}.json`));
const pollingInterval = Number(process.env.CME_POLLING_MS ?? (chainId === LOCAL_CHAIN_ID ? 100 : 1_000));

type Deployment = { chainId: number; vault: `0x${string}`; startBlock: number };

function readDeployment(path: string): Deployment {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (error) {
    throw new Error(
      `indexer: cannot read the deployment ${path} (${(error as Error).message}). ` +
        "Deploy first (scripts/deploy.ts) or point CME_DEPLOYMENT at the file.",
    );
  }
  const { vault, startBlock } = parsed;
  if (parsed.chainId !== chainId) {
    throw new Error(`indexer: ${path}: chainId is ${String(parsed.chainId)}, expected ${chainId} (CME_CHAIN_ID)`);
  }
  if (typeof vault !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(vault)) {
    throw new Error(`indexer: ${path}: vault must be an address, got ${String(vault)}`);
  }
  if (typeof startBlock !== "number" || !Number.isSafeInteger(startBlock) || startBlock < 0) {
    throw new Error(`indexer: ${path}: startBlock must be a block number, got ${String(startBlock)}`);
  }
  return { chainId, vault: vault as `0x${string}`, startBlock };
}

const deployment = readDeployment(deploymentPath);

/**
 * The embedded database's directory. A local node restarted from genesis redeploys the vault at
 * the same address and block, so Ponder would resume from the previous chain's checkpoint and
 * serve stale rows: on the local chain the directory is keyed by the hash of the deployment
 * block, and directories of earlier local chains are removed.
 */
async function pgliteDirectory(): Promise<string> {
  if (process.env.CME_INDEXER_DB !== undefined) return resolve(process.env.CME_INDEXER_DB);
  const root = join(here, ".ponder");
  if (chainId !== LOCAL_CHAIN_ID) return join(root, "pglite");
  const response = await fetch(rpcUrls[0]!, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_getBlockByNumber", params: [`0x${deployment.startBlock.toString(16)}`, false] }),
  }).catch((error: unknown) => {
    throw new Error(`indexer: cannot reach the local node at ${rpcUrls[0]} (${(error as Error).message})`);
  });
  const hash = ((await response.json()) as { result?: { hash?: string } | null }).result?.hash;
  if (hash === undefined) throw new Error(`indexer: the local node has no block ${deployment.startBlock}: redeploy (scripts/deploy.ts)`);
  const name = `pglite-${LOCAL_CHAIN_ID}-${hash.slice(2, 14)}`;
  if (existsSync(root)) {
    for (const entry of readdirSync(root)) {
      if (entry.startsWith(`pglite-${LOCAL_CHAIN_ID}-`) && entry !== name) rmSync(join(root, entry), { recursive: true, force: true });
    }
  }
  return join(root, name);
}

export default createConfig({
  ...(process.env.DATABASE_URL === undefined && process.env.DATABASE_PRIVATE_URL === undefined
    ? { database: { kind: "pglite", directory: await pgliteDirectory() } }
    : {}),
  chains: {
    cme: {
      id: chainId,
      rpc,
      pollingInterval,
      // A local node restarts from genesis with the same chain id: never reuse cached RPC results.
      disableCache: chainId === LOCAL_CHAIN_ID,
    },
  },
  contracts: {
    CMEVault: {
      abi: CMEVaultAbi,
      chain: "cme",
      address: deployment.vault,
      startBlock: deployment.startBlock,
    },
  },
});
