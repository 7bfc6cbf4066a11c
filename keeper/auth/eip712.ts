// The typed data users sign for keeper actions. Published at GET /api/eip712 so the page and the
// scripts sign exactly what the keeper checks: one struct per action, each with the wallet, a
// nonce and an expiry; the domain binds the chain id and the vault.
import type { Address } from "viem";

export const KEEPER_DOMAIN_NAME = "CME Keeper";
export const KEEPER_DOMAIN_VERSION = "1";

export const ACTION_TYPES = {
  SetBroker: [
    { name: "account", type: "address" },
    { name: "brokerId", type: "string" },
    { name: "nonce", type: "uint256" },
    { name: "expiry", type: "uint256" },
  ],
  SetPrompt: [
    { name: "account", type: "address" },
    { name: "prompt", type: "string" },
    { name: "nonce", type: "uint256" },
    { name: "expiry", type: "uint256" },
  ],
  SetPairs: [
    { name: "account", type: "address" },
    { name: "pairs", type: "string[]" },
    { name: "nonce", type: "uint256" },
    { name: "expiry", type: "uint256" },
  ],
  Reprompt: [
    { name: "account", type: "address" },
    { name: "prompt", type: "string" },
    { name: "nonce", type: "uint256" },
    { name: "expiry", type: "uint256" },
  ],
  WithdrawalRequest: [
    { name: "account", type: "address" },
    { name: "token", type: "address" },
    { name: "amount", type: "uint256" },
    { name: "nonce", type: "uint256" },
    { name: "expiry", type: "uint256" },
  ],
  /**
   * A user's own request-for-quote action (POST /trade/request | quote | accept | cancel | lock |
   * unlock): one struct, `action` naming which; fields an action does not use are 0 ("" for text,
   * [] for the whitelist). Only a request uses whitelist (empty: anyone may quote), minFill (0: the
   * pair's minimum size) and remainder ("keep" | "drop").
   */
  TradeAction: [
    { name: "account", type: "address" },
    { name: "action", type: "string" },
    { name: "pair", type: "string" },
    { name: "side", type: "string" },
    { name: "size", type: "uint256" },
    { name: "price", type: "uint256" },
    { name: "requestId", type: "uint256" },
    { name: "quoteId", type: "uint256" },
    { name: "ttlSec", type: "uint256" },
    { name: "whitelist", type: "address[]" },
    { name: "minFill", type: "uint256" },
    { name: "remainder", type: "string" },
    { name: "nonce", type: "uint256" },
    { name: "expiry", type: "uint256" },
  ],
  Admin: [
    { name: "action", type: "string" },
    { name: "sessionId", type: "uint32" },
    { name: "nonce", type: "uint256" },
    { name: "expiry", type: "uint256" },
  ],
} as const;

export type ActionType = keyof typeof ACTION_TYPES;

/** Route path of each user action and the struct its body is signed as. */
export const ACTION_ROUTES = {
  "/set-broker": "SetBroker",
  "/set-prompt": "SetPrompt",
  "/set-pairs": "SetPairs",
  "/reprompt": "Reprompt",
  "/withdrawal-permit": "WithdrawalRequest",
  "/trade/request": "TradeAction",
  "/trade/quote": "TradeAction",
  "/trade/accept": "TradeAction",
  "/trade/cancel": "TradeAction",
  "/trade/lock": "TradeAction",
  "/trade/unlock": "TradeAction",
  "/admin/settle": "Admin",
} as const satisfies Record<string, ActionType>;

export interface KeeperDomain {
  name: typeof KEEPER_DOMAIN_NAME;
  version: typeof KEEPER_DOMAIN_VERSION;
  chainId: number;
  verifyingContract: Address;
}

export function keeperDomain(chainId: number, vault: Address): KeeperDomain {
  return { name: KEEPER_DOMAIN_NAME, version: KEEPER_DOMAIN_VERSION, chainId, verifyingContract: vault };
}
