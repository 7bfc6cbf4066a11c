// `npm start`: the whole pit on one machine, with no keys and no configuration.
//
// Local demo (default, CME_RPC_URL unset): compile, start a Hardhat node, deploy the vault and
// the mock tokens (USDC, PEPE, WIF, BONK), fund demo wallets (Hardhat accounts #4 up) that
// deposit on-chain, start the keeper and configure each wallet's broker, prompt and pairs through
// the signed API, start the indexer, then run sessions back to back on an accelerated clock,
// settling each on-chain and printing its leaderboard and what the indexer serves. The chain is
// fresh every run, so the keeper's database and the index start afresh too.
//
// Real chain (CME_RPC_URL set): no node, no deploy, no demo wallets: read deployments/<chainId>.json,
// start the keeper and the indexer on their persistent databases (they resume where they were)
// and follow the sessions.
//
// Environment (beside the keeper's CME_* variables, keeper/config.ts, and the indexer's):
//   CME_DATA_DIR       local state: keeper database, logs, local index (default .cme)
//   CME_NODE_PORT      the local Hardhat node's port (default 8545)
//   CME_KEEPER_PORT    the keeper's HTTP port: pit page, API, /docs, /ws (default 8787)
//   CME_INDEXER_PORT   the indexer's port: GraphQL at /graphql (default 42069)
//   CME_INDEXER        0 to run without the indexer
//   CME_SESSIONS       stop cleanly after this many settled sessions (default: run until Ctrl-C)
//   CME_DEMO_WALLETS   built-in-broker demo wallets (default 8; AI wallets are added when a model is configured)
//   CME_PRE_SESSION_SEC / CME_TRADING_SEC / CME_CLOSING_SEC   the demo defaults are 15 / 120 / 10
// Ctrl-C (SIGINT), SIGTERM or a closed terminal (SIGHUP) stops the keeper, the indexer and the node, and exits 0.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { createPublicClient, http, type PublicClient } from "viem";
import { hardhat } from "viem/chains";
import { ConfigError, loadConfig, LOCAL_CHAIN_ID, type KeeperConfig } from "../keeper/config.ts";
import { createKeeper, type Keeper } from "../keeper/keeper.ts";
import { listen } from "../keeper/api/server.ts";
import { catalogue, loadCatalogueFile } from "../keeper/brokers/catalogue.ts";
import { parseDeployment, type Deployment } from "../keeper/chain/deployment.ts";
import { latestSession } from "../keeper/store/sessions.ts";
import { openDatabase } from "../keeper/store/database.ts";
import { deployCME, writeDeployment, type DeploymentRecord } from "../keeper/chain/deploy.ts";
import { c, endLive, say, shortAddress, step, table } from "./demo/ui.ts";
import { assertPortFree, binScript, spawnLogged, waitFor, type Child } from "./demo/processes.ts";
import { DEMO_DEPOSIT, demoWallets, hardhatAccount, type DemoWallet } from "./demo/wallets.ts";
import { fundWallets } from "./demo/fund.ts";
import { configureWallets, KeeperRefusal, SignedClient } from "./demo/configure.ts";
import { spawnIndexer, verifySession, waitForIndexer, type Indexer } from "./demo/indexer.ts";
import { brokerLabel, brokerList, SessionTracker, type SessionSummary } from "./demo/sessions.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const HOST = "127.0.0.1";
const env = process.env;

class UsageError extends Error {
  override name = "UsageError";
}

function intEnv(name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = env[name];
  if (v === undefined || v === "") return fallback;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`${name} must be a whole number from ${min} to ${max}, got "${v}"`);
  return Number(v);
}

const flagOff = (v: string | undefined) => v === "0" || v === "false" || v === "off";
/** A path as the user would type it: relative under the working directory, else absolute. */
const rel = (p: string) => {
  const r = relative(process.cwd(), p);
  return r === "" ? "." : r.startsWith("..") ? p : r;
};

// ------------------------------------------------------------------ shutdown

let keeper: Keeper | undefined;
let keeperLog: ReturnType<typeof pino.destination> | undefined;
let tracker: SessionTracker | undefined;
let indexer: Indexer | undefined;
let node: Child | undefined;
let chainConnection: { close(): Promise<void> } | undefined;
let stopping = false;
let stoppingSince = 0;

async function within<T>(what: string, p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((r) => {
    timer = setTimeout(() => {
      say(c.yellow(`  ${what} did not finish within ${ms / 1000} s; going on`));
      r(undefined);
    }, ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Stops everything in dependency order: the keeper (it talks to the chain), the indexer, the node. */
async function shutdown(code: number, why?: string): Promise<never> {
  if (stopping) {
    // npm forwards the terminal's SIGINT to its script, which the terminal signalled too: one
    // press arrives twice within moments. A second press later means "no more waiting"; the
    // exit hook in processes.ts then kills the child groups.
    if (performance.now() - stoppingSince > 1_500) process.exit(code === 0 ? 130 : code);
    return new Promise<never>(() => {});
  }
  stopping = true;
  stoppingSince = performance.now();
  tracker?.stop();
  endLive();
  say();
  const parts = [keeper && "the keeper", indexer && "the indexer", node && "the chain"].filter((p): p is string => typeof p === "string");
  const list = parts.length <= 1 ? (parts[0] ?? "") : `${parts.slice(0, -1).join(", ")} and ${parts.at(-1)}`;
  if (parts.length > 0) say(c.dim(`${why ?? "stopping"}: stopping ${list}…`));
  if (keeper !== undefined) {
    await within("the keeper's stop", keeper.stop().catch((err: unknown) => say(c.yellow(`  keeper stop: ${(err as Error).message}`))), 20_000);
  }
  keeperLog?.flushSync();
  await chainConnection?.close().catch(() => {});
  await indexer?.child.stop(10_000);
  await node?.stop(5_000);
  if (parts.length > 0) say(c.dim("stopped."));
  process.exit(code);
}

process.on("SIGINT", () => void shutdown(0, "Ctrl-C"));
process.on("SIGTERM", () => void shutdown(0, "SIGTERM"));
// The terminal closed: stop just as cleanly (the default would kill this process and orphan the children).
process.on("SIGHUP", () => void shutdown(0, "terminal closed"));

/** A child that dies on its own takes the demo down with it, with the end of its log. */
function watchChild(child: Child): void {
  void child.exited.then((code) => {
    if (stopping) return;
    say(c.red(`✖ ${child.name} exited unexpectedly (code ${code}); the end of ${rel(child.logPath)}:`));
    say(c.dim(child.tail(20)));
    void shutdown(1, `${child.name} died`);
  });
}

// ------------------------------------------------------------------ options

interface Options {
  realChain: boolean;
  dataDir: string;
  ports: { node: number; keeper: number; indexer: number };
  withIndexer: boolean;
  maxSessions: number;
  ruleSeats: number;
  logs: { keeper: string; indexer: string; chain: string };
}

function readOptions(): Options {
  const dataDir = resolve(env.CME_DATA_DIR ?? join(ROOT, ".cme"));
  return {
    realChain: (env.CME_RPC_URL ?? "") !== "",
    dataDir,
    ports: {
      node: intEnv("CME_NODE_PORT", 8545, 1, 65_535),
      keeper: intEnv("CME_KEEPER_PORT", 8787, 1, 65_535),
      indexer: intEnv("CME_INDEXER_PORT", 42069, 1, 65_535),
    },
    withIndexer: !flagOff(env.CME_INDEXER),
    maxSessions: env.CME_SESSIONS === undefined || env.CME_SESSIONS === "" ? Infinity : intEnv("CME_SESSIONS", 1, 1),
    // Hardhat's node funds accounts #0..#19; #4 up are the demo's, and three may go to AI brokers.
    ruleSeats: intEnv("CME_DEMO_WALLETS", 8, 0, 13),
    logs: { keeper: join(dataDir, "keeper.log"), indexer: join(dataDir, "indexer.log"), chain: join(dataDir, "chain.log") },
  };
}

/** What the keeper and the indexer run against, however it came about. */
interface Chain {
  rpcUrl: string;
  chainId: number;
  deployment: Deployment;
  deploymentPath: string;
  /** Keeper variables set by `npm start` on top of the environment. */
  keeperEnv: Record<string, string>;
  wallets: DemoWallet[];
}

// ------------------------------------------------------------------ the local demo

/** The keeper's variables for the local demo (known before anything starts, so they are checked first). */
function localKeeperEnv(o: Options): Record<string, string> {
  const chainId = LOCAL_CHAIN_ID;
  return {
    CME_RPC_URL: `http://${HOST}:${o.ports.node}`,
    CME_CHAIN_ID: String(chainId),
    CME_DEPLOYMENT: resolve(env.CME_DEPLOYMENT ?? join(ROOT, "deployments", `${chainId}.json`)),
    CME_DB_PATH: resolve(env.CME_DB_PATH ?? join(o.dataDir, `keeper-${chainId}.sqlite`)),
    CME_KEEPER_PORT: String(o.ports.keeper),
    // An accelerated clock: a session of about two and a half minutes.
    CME_PRE_SESSION_SEC: env.CME_PRE_SESSION_SEC ?? "15",
    CME_TRADING_SEC: env.CME_TRADING_SEC ?? "120",
    CME_CLOSING_SEC: env.CME_CLOSING_SEC ?? "10",
  };
}

function keeperConfig(keeperEnv: Record<string, string>): KeeperConfig {
  try {
    return loadConfig({ ...env, ...keeperEnv });
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
}

async function startLocalDemo(o: Options): Promise<Chain> {
  const keeperEnv = localKeeperEnv(o);
  keeperConfig(keeperEnv); // a bad variable fails now, not after the chain is up
  say(c.dim(`local demo: a fresh chain, so the keeper's database and the index start afresh (state in ${rel(o.dataDir)}/)`));
  const chainId = LOCAL_CHAIN_ID;
  const deploymentPath = keeperEnv.CME_DEPLOYMENT!;
  const dbPath = keeperEnv.CME_DB_PATH!;
  for (const f of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`, `${dbPath}-journal`]) rmSync(f, { force: true });
  rmSync(join(o.dataDir, `indexer-${chainId}`), { recursive: true, force: true });
  for (const f of Object.values(o.logs)) writeFileSync(f, "");
  await assertPortFree(o.ports.node, HOST, "local chain", "CME_NODE_PORT");
  await assertPortFree(o.ports.keeper, HOST, "keeper", "CME_KEEPER_PORT");
  if (o.withIndexer) await assertPortFree(o.ports.indexer, HOST, "indexer", "CME_INDEXER_PORT");
  const rpcUrl = keeperEnv.CME_RPC_URL!;

  let s = step("compiling contracts");
  const hre = (await import("hardhat")).default;
  await hre.tasks.getTask("build").run({ quiet: true, noTests: true });
  s.done();

  s = step(`starting a local chain (Hardhat node on :${o.ports.node})`);
  node = spawnLogged("chain", [binScript(ROOT, "hardhat"), "node", "--port", String(o.ports.node), "--hostname", HOST], {
    cwd: ROOT,
    env: { ...env, NO_COLOR: "1" },
    logPath: o.logs.chain,
  });
  const probe = createPublicClient({ chain: hardhat, transport: http(rpcUrl, { retryCount: 0 }) });
  await waitFor("the local chain", async () => (await probe.getChainId()) === LOCAL_CHAIN_ID, { timeoutMs: 120_000, child: node, everyMs: 250 });
  watchChild(node);
  s.done(rpcUrl);

  s = step("deploying the vault and demo tokens");
  const conn = await hre.network.create({ network: "localhost", override: { url: rpcUrl } });
  chainConnection = conn;
  const record: DeploymentRecord = await deployCME(conn.viem, {
    settler: hardhatAccount(1).address,
    treasury: hardhatAccount(2).address,
    insurance: hardhatAccount(3).address,
    gracePeriod: 300n,
    mocks: true,
  });
  writeDeployment(record, deploymentPath);
  s.done(`CMEVault ${record.vault} · ${record.tokens.map((t) => t.symbol).join(", ")} → ${rel(deploymentPath)}`);

  // The indexer takes a while to build and sync: it starts now and is awaited later.
  if (o.withIndexer) {
    startIndexer(o, { rpcUrl, chainId, deploymentPath, dbDir: join(o.dataDir, `indexer-${chainId}`), embedded: true, schema: "cme" });
  }

  const brokers = catalogue(env, env.CME_BROKERS === undefined ? loadCatalogueFile() : loadCatalogueFile(env.CME_BROKERS));
  const symbols = record.tokens.filter((t) => t.symbol !== "USDC").map((t) => `${t.symbol}/USDC`);
  const wallets = demoWallets(brokers, o.ruleSeats, symbols);
  if (wallets.length > 0) {
    s = step(`funding ${wallets.length} demo wallets (Hardhat accounts #${wallets[0]!.index}–#${wallets.at(-1)!.index})`);
    const funded = await fundWallets({ rpcUrl, deployment: record, wallets, amounts: DEMO_DEPOSIT, onWallet: (d, n) => s.progress(`${d}/${n} wallets deposited`) });
    const each = record.tokens.map((t) => `${Number(DEMO_DEPOSIT[t.symbol] ?? 0).toLocaleString("en-US")} ${t.symbol}`).join(" + ");
    s.done(`each deposited ${each} · ${funded.permits} with USDC permit · ${funded.transactions} transactions`);
  }

  return { rpcUrl, chainId, deployment: parseDeployment(record, deploymentPath), deploymentPath, wallets, keeperEnv };
}

// ------------------------------------------------------------------ a real chain

async function connectRealChain(o: Options): Promise<Chain> {
  const rpcUrl = env.CME_RPC_URL!;
  const probe = createPublicClient({ transport: http(rpcUrl.split(",")[0]!.trim()) });
  const s = step(`connecting to ${rpcUrl}`);
  const chainId = await probe.getChainId().catch((err: unknown) => {
    throw new UsageError(`cannot reach CME_RPC_URL ${rpcUrl}: ${(err as { shortMessage?: string }).shortMessage ?? (err as Error).message}`);
  });
  if (env.CME_CHAIN_ID !== undefined && Number(env.CME_CHAIN_ID) !== chainId) {
    throw new UsageError(`CME_CHAIN_ID is ${env.CME_CHAIN_ID} but ${rpcUrl} serves chain ${chainId}`);
  }
  s.done(`chain ${chainId} at block ${await probe.getBlockNumber()}`);
  const deploymentPath = resolve(env.CME_DEPLOYMENT ?? join(ROOT, "deployments", `${chainId}.json`));
  if (!existsSync(deploymentPath)) {
    const network = chainId === LOCAL_CHAIN_ID ? "localhost" : "remote";
    throw new UsageError(`no deployment at ${rel(deploymentPath)}: deploy first (npm run deploy -- --network ${network}, see scripts/deploy.ts) or set CME_DEPLOYMENT`);
  }
  const deployment = parseDeployment(JSON.parse(readFileSync(deploymentPath, "utf8")), deploymentPath);
  const dbPath = resolve(env.CME_DB_PATH ?? join(o.dataDir, `keeper-${chainId}.sqlite`));
  if (existsSync(dbPath)) {
    const db = openDatabase(dbPath);
    const last = latestSession(db);
    db.close();
    say(c.dim(`resuming: ${rel(dbPath)} holds session ${last?.id ?? "none"}${last === undefined ? "" : ` (${last.phase})`}; the keeper carries on from there`));
  } else {
    say(c.dim(`a new keeper database: ${rel(dbPath)}`));
  }
  await assertPortFree(o.ports.keeper, HOST, "keeper", "CME_KEEPER_PORT");
  if (o.withIndexer) {
    await assertPortFree(o.ports.indexer, HOST, "indexer", "CME_INDEXER_PORT");
    // The indexer's own persistent database (indexer/.ponder, or Postgres with DATABASE_URL): it resumes.
    startIndexer(o, { rpcUrl, chainId, deploymentPath, dbDir: env.CME_INDEXER_DB, embedded: false, schema: env.DATABASE_SCHEMA ?? "cme" });
  }
  return {
    rpcUrl,
    chainId,
    deployment,
    deploymentPath,
    wallets: [],
    keeperEnv: { CME_CHAIN_ID: String(chainId), CME_DEPLOYMENT: deploymentPath, CME_DB_PATH: dbPath, CME_KEEPER_PORT: String(o.ports.keeper) },
  };
}

function startIndexer(
  o: Options,
  at: { rpcUrl: string; chainId: number; deploymentPath: string; dbDir: string | undefined; embedded: boolean; schema: string },
): void {
  indexer = spawnIndexer({ root: ROOT, ...at, port: o.ports.indexer, host: HOST, logPath: o.logs.indexer });
  watchChild(indexer.child);
}

// ------------------------------------------------------------------ the keeper and its sessions

async function startKeeper(o: Options, chain: Chain): Promise<{ keeper: Keeper; url: string; config: KeeperConfig }> {
  const config = keeperConfig(chain.keeperEnv);
  const s = step("starting the keeper");
  keeperLog = pino.destination({ dest: o.logs.keeper, sync: false, mkdir: true });
  const log = pino({ level: config.logLevel, base: { svc: "keeper" } }, keeperLog);
  const k = await createKeeper(config, { deployment: chain.deployment, logger: log, env: { ...env, ...chain.keeperEnv } });
  keeper = k;
  await k.start();
  const url = await listen(k);
  s.done(`${url} · sessions of ${config.preSessionSec} s pre-session, ${config.tradingSec} s trading, ${config.closingSec} s closing · log ${rel(o.logs.keeper)}`);
  return { keeper: k, url, config };
}

/** Each demo wallet's broker, prompt and pairs, signed by the wallet and sent over HTTP. */
async function configureBrokers(k: Keeper, url: string, wallets: readonly DemoWallet[]): Promise<void> {
  const s = step(`configuring ${wallets.length} brokers through the signed API (EIP-712)`);
  try {
    await configureWallets(await SignedClient.connect(url), wallets);
  } catch (err) {
    if (!(err instanceof KeeperRefusal && err.status === 409 && k.runner.current.phase !== "pre_session")) throw err;
    // A very slow machine missed the first pre-session: the settings apply from the next session.
    say(c.yellow(`  ${err.message}`));
  }
  const listing = brokerList(k);
  const ai = wallets.filter((w) => listing.find((b) => b.id === w.brokerId)?.kind === "ai").length;
  s.done(`${wallets.length - ai} built-in${ai > 0 ? ` and ${ai} AI` : ""} brokers with the example prompts`);
  const names = new Map(listing.map((b) => [b.id, brokerLabel(b)]));
  const rows = wallets.map((w) => [
    `#${w.index}`,
    shortAddress(w.account.address),
    w.permit ? "permit" : "approve",
    names.get(w.brokerId) ?? w.brokerId,
    w.example.title,
    w.pairs === null ? c.dim("all") : w.pairs.join(", "),
  ]);
  for (const line of table(["wallet", "account", "USDC in", "broker", "prompt", "pairs"], rows)) say(`  ${line}`);
  if (ai === 0 && listing.some((b) => b.kind === "ai" && !b.available)) {
    say(c.dim(`  AI brokers are off: set OPENAI_API_KEY, OPENROUTER_API_KEY or CME_LOCAL_BASE_URL to add them (see README, Configuration)`));
  }
}

/** The lines printed under a session's report: what the indexer serves for it. */
async function indexerCheck(ix: Indexer, client: PublicClient, chain: Chain, sessionId: number): Promise<{ ok: boolean; lines: string[] }> {
  const symbol = new Map(chain.deployment.tokens.map((t) => [t.index, t.symbol]));
  try {
    const v = await verifySession(ix, client, chain.deployment.vault, sessionId, 180_000);
    const zero = v.nets.every((n) => n.net === 0n);
    const ok = zero && v.balances.mismatches.length === 0;
    const nets = v.nets.map((n) => `${symbol.get(n.tokenIndex) ?? n.tokenIndex} ${n.net === 0n ? "0" : c.red(String(n.net))}`);
    const lines = [
      `  ${ok ? c.green("✔") : c.red("✖")} indexed: session ${sessionId} ${v.phase} at block ${v.finalizedBlock} · ` +
        `net per token ${nets.length === 0 ? "(no deltas)" : nets.join(", ")} · ${v.balances.compared} balances equal the vault's at block ${v.balances.block}` +
        c.dim(` (GraphQL ${ix.graphqlUrl})`),
      ...v.balances.mismatches.slice(0, 10).map((m) => c.red(`    ${m}`)),
    ];
    return { ok, lines };
  } catch (err) {
    return { ok: false, lines: [c.red(`  ✖ the indexer has not served session ${sessionId}: ${(err as Error).message.split("\n")[0]}`)] };
  }
}

// ------------------------------------------------------------------ the run

async function main(): Promise<void> {
  const o = readOptions();
  mkdirSync(o.dataDir, { recursive: true });
  say(`${c.bold("CME")} ${c.dim("· the Chicago Memecoin Exchange, a trading pit for AI brokers")}`);
  const chain = o.realChain ? await connectRealChain(o) : await startLocalDemo(o);
  const { keeper: k, url, config } = await startKeeper(o, chain);

  // Follow the sessions from now on (so no trade is missed), printing once the setup has printed.
  const client = createPublicClient({ chain: { ...hardhat, id: chain.chainId }, transport: http(chain.rpcUrl.split(",")[0]!.trim()) }) as PublicClient;
  let releaseOutput!: () => void;
  let indexFailures = 0;
  let settled = 0;
  tracker = new SessionTracker({
    keeper: k,
    labels: new Map(chain.wallets.map((w) => [w.account.address.toLowerCase(), `#${w.index}`])),
    quoteDecimals: chain.deployment.tokens.find((t) => t.symbol === "USDC")?.decimals ?? 6,
    gate: new Promise<void>((r) => (releaseOutput = r)),
    afterReport: async (summary) => {
      if (indexer === undefined) return [];
      const check = await indexerCheck(indexer, client, chain, summary.sessionId);
      if (!check.ok) indexFailures++;
      return check.lines;
    },
    onSettled: () => {
      if (++settled >= o.maxSessions) void shutdown(indexFailures > 0 ? 1 : 0, `CME_SESSIONS=${o.maxSessions} reached`);
    },
  });
  tracker.start();

  if (chain.wallets.length > 0) await configureBrokers(k, url, chain.wallets);
  if (indexer !== undefined) {
    const s = step("waiting for the indexer (Ponder) to build and sync");
    await waitForIndexer(indexer, 240_000);
    s.done(`${indexer.graphqlUrl} · log ${rel(o.logs.indexer)}`);
  }

  say();
  say(c.bold("The pit is open"));
  say(`  pit page   ${c.cyan(`${url}/`)}`);
  say(`  API docs   ${c.cyan(`${url}/docs`)}`);
  if (indexer !== undefined) say(`  GraphQL    ${c.cyan(indexer.graphqlUrl)}`);
  if (node !== undefined) say(`  chain      ${c.cyan(chain.rpcUrl)} ${c.dim(`(chain ${chain.chainId}, vault ${chain.deployment.vault})`)}`);
  const logNames = ["keeper.log", ...(indexer === undefined ? [] : ["indexer.log"]), ...(node === undefined ? [] : ["chain.log"])];
  say(c.dim(`  logs in ${rel(o.dataDir)}/: ${logNames.join(", ")} · Ctrl-C stops everything`));
  say(c.dim(`  sessions of ${config.preSessionSec + config.tradingSec + config.closingSec} s plus settlement; PnL in USDC at each session's closing mark`));
  say();
  releaseOutput();
}

main().catch((err: unknown) => {
  // Stopping pulls the chain and the keeper from under the setup: its errors are expected then.
  if (stopping) return;
  endLive();
  const e = err as Error;
  say(c.red(`✖ ${e instanceof UsageError ? e.message : (e.stack ?? e.message)}`));
  void shutdown(1, "failed");
});
