// Shared test fixtures for the keeper: a keeper without a chain (API tests), signing helpers for
// the keeper's EIP-712 actions, and a JSON-aware fetch.
import { privateKeyToAccount, generatePrivateKey, type LocalAccount, type PrivateKeyAccount } from "viem/accounts";
import { getAddress, type Address } from "viem";
import { loadConfig, type KeeperConfig } from "../../keeper/config.ts";
import { createKeeper, type Keeper, type KeeperOptions } from "../../keeper/keeper.ts";
import { ACTION_TYPES, keeperDomain, type ActionType } from "../../keeper/auth/eip712.ts";
import type { Deployment } from "../../keeper/chain/deployment.ts";
import pino from "pino";

export const VAULT = "0x5FbDB2315678afecb367f032d93F642f64180aa3" as Address;

export const FAKE_DEPLOYMENT: Deployment = {
  chainId: 31337,
  vault: VAULT,
  startBlock: 1,
  settler: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
  treasury: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
  insurance: "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
  tokens: [
    { symbol: "USDC", address: getAddress("0x0000000000000000000000000000000000000a01"), decimals: 6, index: 0 },
    { symbol: "PEPE", address: getAddress("0x0000000000000000000000000000000000000a02"), decimals: 18, index: 1 },
    { symbol: "WIF", address: getAddress("0x0000000000000000000000000000000000000a03"), decimals: 18, index: 2 },
  ],
};

export function testConfig(overrides: Partial<KeeperConfig> = {}): KeeperConfig {
  return loadConfig({}, { dbPath: ":memory:", port: 0, logLevel: "silent", preSessionSec: 3600, tradingSec: 3600, closingSec: 60, ...overrides });
}

/** A keeper with no chain: accounts are registered by feeding it vault events directly. */
export async function offlineKeeper(overrides: Partial<KeeperConfig> = {}, opts: KeeperOptions = {}): Promise<Keeper> {
  const k = await createKeeper(testConfig(overrides), { deployment: FAKE_DEPLOYMENT, chain: null, logger: pino({ level: "silent" }), ...opts });
  k.runner.applyVaultEvents(
    [
      { kind: "account", block: 1, accountId: 1, address: FAKE_DEPLOYMENT.treasury },
      { kind: "account", block: 1, accountId: 2, address: FAKE_DEPLOYMENT.insurance },
    ],
    1n,
  );
  return k;
}

export function wallet(): PrivateKeyAccount {
  return privateKeyToAccount(generatePrivateKey());
}

let nonceCounter = 1n;

/** Signs a keeper action body: returns the body with account, nonce, expiry and signature. */
export async function signed<T extends Record<string, unknown>>(
  signer: LocalAccount,
  type: ActionType,
  fields: T,
  opts: { chainId?: number; vault?: Address; expiry?: number; nonce?: bigint; account?: Address } = {},
): Promise<T & { account: Address; nonce: string; expiry: number; signature: `0x${string}` }> {
  const nonce = opts.nonce ?? nonceCounter++;
  const expiry = opts.expiry ?? Math.floor(Date.now() / 1000) + 600;
  const account = opts.account ?? signer.address;
  const message: Record<string, unknown> = { ...fields, nonce, expiry: BigInt(expiry) };
  if (type !== "Admin") message.account = account;
  if (type === "WithdrawalRequest") message.amount = BigInt(fields.amount as string);
  const sign = signer.signTypedData as (p: unknown) => Promise<`0x${string}`>;
  const signature = await sign({
    domain: keeperDomain(opts.chainId ?? 31337, opts.vault ?? VAULT),
    types: { [type]: ACTION_TYPES[type] },
    primaryType: type,
    message,
  });
  return { ...fields, account, nonce: nonce.toString(), expiry, signature };
}

const TRADE_DEFAULTS = { pair: "", side: "", size: 0, price: 0, requestId: 0, quoteId: 0, ttlSec: 0, whitelist: [] as string[], minFill: 0, remainder: "" };

export type TradeFields = Partial<typeof TRADE_DEFAULTS>;

/**
 * A signed body for POST /trade/<action>: the whole TradeAction struct is signed (unused fields
 * as 0, "" or []), the body carries only the route's own fields. A request keeps its remainder
 * ("keep") unless told otherwise, as the route requires one.
 */
export async function signedTrade<T extends TradeFields>(
  signer: LocalAccount,
  action: "request" | "quote" | "accept" | "cancel" | "lock" | "unlock",
  fields: T,
  opts: { vault?: Address; nonce?: bigint; account?: Address } = {},
) {
  const own = action === "request" && fields.remainder === undefined ? { ...fields, remainder: "keep" } : fields;
  const full = { ...TRADE_DEFAULTS, ...own, action };
  const body = await signed(signer, "TradeAction", full, opts);
  const { action: _a, ...rest } = body;
  const keep = new Set([...Object.keys(own), "account", "nonce", "expiry", "signature"]);
  return Object.fromEntries(Object.entries(rest).filter(([k]) => keep.has(k))) as Record<string, unknown>;
}
