// Checks a signed keeper action: expiry, chain, nonce spelling, signature, then nonce use. The
// nonce is consumed by the caller in the same database transaction that applies the action, so a
// refused action (wrong phase, say) leaves the nonce usable and nothing changed.
//
// One authorization, one encoding: an action has exactly one accepted spelling of its nonce (a
// uint256 in canonical decimal: no sign, no leading zeros, no hex) and one of its signature (low
// s, EIP-2). Anything else is refused before the nonce is looked at, so a replay cannot slip past
// the used-nonce check by re-spelling the nonce or malleating the signature.
import { getAddress, hexToBigInt, recoverTypedDataAddress, type Address, type Hex } from "viem";
import { ACTION_TYPES, type ActionType, type KeeperDomain } from "./eip712.ts";

export type AuthFailure =
  | { code: "expired"; message: string; field: "expiry" }
  | { code: "expiry_too_far"; message: string; field: "expiry" }
  | { code: "wrong_chain"; message: string; field: "chainId" }
  | { code: "bad_nonce"; message: string; field: "nonce" }
  | { code: "bad_signature"; message: string; field: "signature" }
  | { code: "high_s_signature"; message: string; field: "signature" }
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

/** The largest uint256. */
export const MAX_UINT256 = (1n << 256n) - 1n;
/** The order of secp256k1: a signature's s must be at most half of it (EIP-2). */
export const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const HALF_N = SECP256K1_N >> 1n;
const CANONICAL_DECIMAL = /^(0|[1-9][0-9]{0,77})$/;

/** True when `s` is a uint256 written as canonical decimal ("0", "1796"; never "01796", "0x6b4", "-0"). */
export function isCanonicalUint256(s: string): boolean {
  return CANONICAL_DECIMAL.test(s) && BigInt(s) <= MAX_UINT256;
}

/** Expiry, chain and the nonce's spelling: the checks that need neither state nor cryptography. */
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
  if (typeof env.nonce !== "string" || !isCanonicalUint256(env.nonce)) {
    return { code: "bad_nonce", message: "nonce must be a uint256 in decimal without leading zeros", field: "nonce" };
  }
  return null;
}

/**
 * Refuses the malleable twin of a signature: (r, n - s) with the other parity recovers the same
 * signer, so only the low-s form (what every wallet produces) is accepted.
 */
function checkLowS(signature: Hex): AuthFailure | null {
  if (!/^0x[0-9a-fA-F]{130}$/.test(signature)) {
    return { code: "bad_signature", message: "signature must be 65 bytes (r, s, v) in hex", field: "signature" };
  }
  const s = hexToBigInt(`0x${signature.slice(66, 130)}`);
  if (s > HALF_N) {
    return { code: "high_s_signature", message: "signature has a high s value (s > secp256k1n/2): send the low-s form", field: "signature" };
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
  const malleable = checkLowS(env.signature);
  if (malleable !== null) return malleable;
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

/**
 * Wallets send addresses in any case; the typed-data hash is over the address value, not its
 * spelling. Lists of addresses (a trade request's whitelist) likewise.
 */
function checksummed(message: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(message)) out[k] = Array.isArray(v) ? v.map(checksum) : checksum(v);
  return out;
}

function checksum(v: unknown): unknown {
  return typeof v === "string" && /^0x[0-9a-fA-F]{40}$/.test(v) ? getAddress(v.toLowerCase()) : v;
}
