// Keeper configuration: every knob is an environment variable with a local default, validated
// once at startup so a typo fails loudly before anything touches the chain or the database.
import { z } from "zod";

/** Hardhat's development account #1: scripts/deploy.ts makes it the settler on the local node. */
export const LOCAL_SETTLER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
export const LOCAL_CHAIN_ID = 31337;

const hex32 = z.string().regex(/^0x[0-9a-fA-F]{64}$/, "a 0x-prefixed 32-byte hex key");
const intFrom = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);

const schema = z.object({
  host: z.string().min(1),
  port: intFrom(0, 65_535),
  rpcUrl: z.string().url(),
  chainId: intFrom(1),
  deploymentPath: z.string().min(1),
  settlerKey: hex32,
  dbPath: z.string().min(1),
  confirmations: intFrom(0, 1_000),
  chainPollMs: intFrom(10, 600_000),
  preSessionSec: intFrom(0),
  tradingSec: intFrom(1),
  closingSec: intFrom(0),
  /** How long after trading ends the vault waits before anyone may void the session. */
  settlementWindowSec: intFrom(60),
  tickMs: intFrom(10, 60_000),
  batchEntries: intFrom(1, 100_000),
  txTimeoutMs: intFrom(100),
  feeBumpPercent: intFrom(10, 1_000),
  /** No settler transaction (nor fee bump) is signed with a higher max fee per gas; above it the keeper waits. */
  maxFeeGwei: z.string().regex(/^\d+(\.\d{1,9})?$/, "a decimal amount of gwei"),
  /** Most the settler may pay in fees for one session's transactions. */
  maxSessionFeeEth: z.string().regex(/^\d+(\.\d{1,18})?$/, "a decimal amount of ETH"),
  /** How long one chain call's transient failures (connection refused, HTTP 5xx, bad JSON, timeouts) are retried. */
  rpcRetrySec: intFrom(1),
  /** /healthz reports a component that should be progressing and made none for this long. */
  healthStallSec: intFrom(1),
  maxSignedExpirySec: intFrom(10),
  wsMaxBufferedBytes: intFrom(1_024),
  wsBookThrottleMs: intFrom(0, 60_000),
  /** Stream heartbeat: each client is pinged this often and dropped if it missed the previous ping (0: off). */
  wsPingMs: intFrom(0),
  /** Stream clients at once, in total and from one remote address. */
  wsMaxClients: intFrom(1),
  wsMaxClientsPerAddress: intFrom(1),
  /** Serve HTTP and WebSocket from a worker thread, away from the pit's tick (server.ts). */
  apiThread: z.boolean(),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]),
  brokersPath: z.string().optional(),
  referencePrices: z.record(z.string(), z.string().regex(/^\d+(\.\d+)?$/, "a decimal price in USDC")),
});

export type KeeperConfig = z.infer<typeof schema>;

/** Thrown at startup only: names every bad variable. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly issues: string[]) {
    super(`invalid keeper configuration:\n  ${issues.join("\n  ")}`);
  }
}

// Variable name for each field, so errors name what the operator actually sets.
const ENV: Record<keyof KeeperConfig, string> = {
  host: "CME_KEEPER_HOST",
  port: "CME_KEEPER_PORT",
  rpcUrl: "CME_RPC_URL",
  chainId: "CME_CHAIN_ID",
  deploymentPath: "CME_DEPLOYMENT",
  settlerKey: "CME_SETTLER_KEY",
  dbPath: "CME_DB_PATH",
  confirmations: "CME_CONFIRMATIONS",
  chainPollMs: "CME_CHAIN_POLL_MS",
  preSessionSec: "CME_PRE_SESSION_SEC",
  tradingSec: "CME_TRADING_SEC",
  closingSec: "CME_CLOSING_SEC",
  settlementWindowSec: "CME_SETTLEMENT_WINDOW_SEC",
  tickMs: "CME_TICK_MS",
  batchEntries: "CME_BATCH_ENTRIES",
  txTimeoutMs: "CME_TX_TIMEOUT_MS",
  feeBumpPercent: "CME_FEE_BUMP_PERCENT",
  maxFeeGwei: "CME_MAX_FEE_GWEI",
  maxSessionFeeEth: "CME_MAX_SESSION_FEE_ETH",
  rpcRetrySec: "CME_RPC_RETRY_SEC",
  healthStallSec: "CME_HEALTH_STALL_SEC",
  maxSignedExpirySec: "CME_MAX_SIGNED_EXPIRY_SEC",
  wsMaxBufferedBytes: "CME_WS_MAX_BUFFERED_BYTES",
  wsBookThrottleMs: "CME_WS_BOOK_THROTTLE_MS",
  wsPingMs: "CME_WS_PING_MS",
  wsMaxClients: "CME_WS_MAX_CLIENTS",
  wsMaxClientsPerAddress: "CME_WS_MAX_CLIENTS_PER_ADDRESS",
  apiThread: "CME_API_THREAD",
  logLevel: "CME_LOG_LEVEL",
  brokersPath: "CME_BROKERS",
  referencePrices: "CME_REFERENCE_PRICES",
};

/** Demo reference prices (USDC per whole token); a real deployment sets CME_REFERENCE_PRICES. */
const DEFAULT_REFERENCE_PRICES = { PEPE: "0.00001", WIF: "2", BONK: "0.00002", DOGE: "0.2", TRUMP: "10" };

/**
 * Builds the configuration from `env` (process.env by default) and `overrides` (tests), applying
 * the local defaults: Hardhat node on 8545, chain 31337, the Hardhat settler key, seed durations.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<KeeperConfig> = {}): KeeperConfig {
  const chainId = env.CME_CHAIN_ID ?? String(overrides.chainId ?? LOCAL_CHAIN_ID);
  let referencePrices: unknown = DEFAULT_REFERENCE_PRICES;
  const issues: string[] = [];
  if (env.CME_REFERENCE_PRICES !== undefined) {
    try {
      referencePrices = JSON.parse(env.CME_REFERENCE_PRICES);
    } catch {
      issues.push(`${ENV.referencePrices}: not JSON (expected {"PEPE":"0.00001",...})`);
    }
  }
  const raw = {
    host: env.CME_KEEPER_HOST ?? "127.0.0.1",
    port: env.CME_KEEPER_PORT ?? 8787,
    rpcUrl: env.CME_RPC_URL ?? "http://127.0.0.1:8545",
    chainId,
    deploymentPath: env.CME_DEPLOYMENT ?? `deployments/${chainId}.json`,
    settlerKey: env.CME_SETTLER_KEY ?? (chainId === String(LOCAL_CHAIN_ID) ? LOCAL_SETTLER_KEY : undefined),
    dbPath: env.CME_DB_PATH ?? `.cme/keeper-${chainId}.sqlite`,
    confirmations: env.CME_CONFIRMATIONS ?? (chainId === String(LOCAL_CHAIN_ID) ? 0 : 2),
    chainPollMs: env.CME_CHAIN_POLL_MS ?? (chainId === String(LOCAL_CHAIN_ID) ? 250 : 2_000),
    preSessionSec: env.CME_PRE_SESSION_SEC ?? 30 * 60,
    tradingSec: env.CME_TRADING_SEC ?? 50 * 60,
    closingSec: env.CME_CLOSING_SEC ?? 10 * 60,
    settlementWindowSec: env.CME_SETTLEMENT_WINDOW_SEC ?? 24 * 3600,
    tickMs: env.CME_TICK_MS ?? 1_000,
    batchEntries: env.CME_BATCH_ENTRIES ?? 400,
    txTimeoutMs: env.CME_TX_TIMEOUT_MS ?? 30_000,
    feeBumpPercent: env.CME_FEE_BUMP_PERCENT ?? 20,
    maxFeeGwei: env.CME_MAX_FEE_GWEI ?? "200",
    maxSessionFeeEth: env.CME_MAX_SESSION_FEE_ETH ?? "0.5",
    rpcRetrySec: env.CME_RPC_RETRY_SEC ?? 600,
    healthStallSec: env.CME_HEALTH_STALL_SEC ?? 300,
    maxSignedExpirySec: env.CME_MAX_SIGNED_EXPIRY_SEC ?? 3_600,
    wsMaxBufferedBytes: env.CME_WS_MAX_BUFFERED_BYTES ?? 1 << 20,
    wsBookThrottleMs: env.CME_WS_BOOK_THROTTLE_MS ?? 250,
    wsPingMs: env.CME_WS_PING_MS ?? 30_000,
    wsMaxClients: env.CME_WS_MAX_CLIENTS ?? 10_000,
    wsMaxClientsPerAddress: env.CME_WS_MAX_CLIENTS_PER_ADDRESS ?? 32,
    apiThread: env.CME_API_THREAD === undefined ? true : env.CME_API_THREAD !== "0" && env.CME_API_THREAD !== "false",
    logLevel: env.CME_LOG_LEVEL ?? "info",
    brokersPath: env.CME_BROKERS,
    referencePrices,
    ...overrides,
  };
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = issue.path[0] as keyof KeeperConfig | undefined;
      const name = key === undefined ? "config" : ENV[key];
      issues.push(`${name}: ${issue.message}`);
    }
  }
  if (issues.length > 0 || !parsed.success) throw new ConfigError(issues);
  const config = parsed.data;
  if (config.chainId !== LOCAL_CHAIN_ID && config.settlerKey === LOCAL_SETTLER_KEY) {
    throw new ConfigError([`${ENV.settlerKey}: the public Hardhat key is only allowed on chain ${LOCAL_CHAIN_ID}`]);
  }
  // exactOptionalPropertyTypes: drop undefined optionals rather than carrying explicit undefined.
  if (config.brokersPath === undefined) delete config.brokersPath;
  return config;
}

/**
 * Startup check against the vault's clock rules (ICMEVault): a session may be voided by anyone
 * at its deadline + grace period, and the keeper may finalize only `challengeWindow` after its
 * last batch. The keeper sets the deadline CME_SETTLEMENT_WINDOW_SEC after trading and closing
 * end, so settlement window + grace must exceed the challenge window, with room left to post the
 * batches; otherwise anyone could void every session before the keeper may finalize it.
 * Returns the error to report, or null when the windows fit. All arguments in seconds; the
 * grace period and challenge window are the vault's (`gracePeriod()`, `challengeWindow()`).
 */
export function checkSettlementWindow(settlementWindowSec: number, gracePeriodSec: number, challengeWindowSec: number): string | null {
  if (settlementWindowSec + gracePeriodSec > challengeWindowSec) return null;
  return (
    `${ENV.settlementWindowSec}: ${settlementWindowSec} s + the vault's grace period ${gracePeriodSec} s must exceed its ` +
    `challenge window ${challengeWindowSec} s (plus the time to post the batches), or anyone may void a session ` +
    "before the keeper may finalize it"
  );
}
