// Checks a signed keeper action: expiry, chain, signature, then nonce. The nonce is consumed by
// the caller in the same database transaction that applies the action, so a refused action
// (wrong phase, say) leaves the nonce usable and nothing changed.
import { getAddress, recoverTypedDataAddress, type Address, type Hex } from "viem";
import { ACTION_TYPES, type ActionType, type KeeperDomain } from "./eip712.ts";

export type AuthFailure =
  | { code: "expired"; message: string; field: "expiry" }
  | { code: "expiry_too_far"; message: string; field: "expiry" }
  | { code: "wrong_chain"; message: string; field: "chainId" }
  | { code: "bad_signature"; message: string; field: "signature" }
  | { code: "wrong_signer"; message: string; field: "signature" }
  | { code: "replayed_nonce"; message: string; field: "nonce" };

export interface SignedEnvelope {
  account: Address;
  nonce: string;
  expiry: number | string;
  signature: Hex;
  chainId?: number;
}

export interface VerifyOptions {
  domain: KeeperDomain;
  nowSec: number;
  maxExpirySec: number;
  isNonceUsed: (account: string, nonce: string) => boolean;
  /** Address that must have signed; defaults to the envelope's account (user actions). */
  signer?: Address;
  /**
   * The API thread already recovered the signature and matched it to the signer (checkSignature):
   * the pit's thread then checks only what needs its state, and never spends time on elliptic curves.
   */
  signatureChecked?: boolean;
}

/** Returns null when the envelope is valid, or the reason it is not (401 material). */
export async function verifyAction(
  type: ActionType,
  message: Record<string, unknown>,
  env: SignedEnvelope,
  opts: VerifyOptions,
): Promise<AuthFailure | null> {
  const early = checkEnvelope(env, opts);
  if (early !== null) return early;
  if (opts.signatureChecked !== true) {
    const bad = await checkSignature(type, message, env, opts.domain, opts.signer ?? env.account);
    if (bad !== null) return bad;
  }
  if (opts.isNonceUsed(env.account, env.nonce)) {
    return { code: "replayed_nonce", message: `nonce ${env.nonce} was already used by ${env.account}`, field: "nonce" };
  }
  return null;
}

/** Expiry and chain: the checks that need neither state nor cryptography. */
export function checkEnvelope(env: SignedEnvelope, opts: { domain: KeeperDomain; nowSec: number; maxExpirySec: number }): AuthFailure | null {
  const expiry = Number(env.expiry);
  if (expiry <= opts.nowSec) {
    return { code: "expired", message: `request expired at ${expiry} (now ${opts.nowSec})`, field: "expiry" };
  }
  if (expiry > opts.nowSec + opts.maxExpirySec) {
    return { code: "expiry_too_far", message: `expiry must be within ${opts.maxExpirySec} s of now`, field: "expiry" };
  }
  if (env.chainId !== undefined && env.chainId !== opts.domain.chainId) {
    return { code: "wrong_chain", message: `signed for chain ${env.chainId}; this keeper is on chain ${opts.domain.chainId}`, field: "chainId" };
  }
  return null;
}

/** Recovers the EIP-712 signer (about 1.5 ms of CPU) and compares it with `expected`. */
export async function checkSignature(
  type: ActionType,
  message: Record<string, unknown>,
  env: SignedEnvelope,
  domain: KeeperDomain,
  expected: Address,
): Promise<AuthFailure | null> {
  let recovered: Address;
  try {
    recovered = await recoverTypedDataAddress({
      domain,
      types: { [type]: ACTION_TYPES[type] } as Record<string, readonly { name: string; type: string }[]>,
      primaryType: type,
      message: { ...checksummed(message), nonce: BigInt(env.nonce), expiry: BigInt(env.expiry) },
      signature: env.signature,
    });
  } catch (err) {
    return { code: "bad_signature", message: `signature does not decode: ${(err as Error).message.split("\n")[0]}`, field: "signature" };
  }
  if (recovered.toLowerCase() !== expected.toLowerCase()) {
    return {
      code: "wrong_signer",
      message: `signature is by ${recovered}, not ${expected} (check chain id ${domain.chainId} and verifying contract ${domain.verifyingContract})`,
      field: "signature",
    };
  }
  return null;
}

/** Wallets send addresses in any case; the typed-data hash is over the address value, not its spelling. */
function checksummed(message: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(message)) out[k] = typeof v === "string" && /^0x[0-9a-fA-F]{40}$/.test(v) ? getAddress(v.toLowerCase()) : v;
  return out;
}
