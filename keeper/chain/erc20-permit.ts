// EIP-2612 permits, so a wallet deposits in one transaction (vault.depositWithPermit) where the
// token supports it. Used by `npm run deposit` and the demo's funding.
import { parseSignature, type Address, type Hex, type LocalAccount, type PublicClient } from "viem";
import { erc20Abi } from "./vault-abi.ts";

const PERMIT_TYPES = {
  Permit: [
    { name: "owner", type: "address" },
    { name: "spender", type: "address" },
    { name: "value", type: "uint256" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
} as const;

export interface PermitDomain {
  name: string;
  version: string;
}

/** The token's EIP-712 name and version: from ERC-5267 `eip712Domain()`, else `name()` and "1"; null without `nonces()`. */
export async function readPermitDomain(client: PublicClient, token: Address): Promise<PermitDomain | null> {
  try {
    await client.readContract({ address: token, abi: erc20Abi, functionName: "nonces", args: [token] });
  } catch {
    return null;
  }
  try {
    const [, name, version] = await client.readContract({ address: token, abi: erc20Abi, functionName: "eip712Domain" });
    return { name, version };
  } catch {
    return { name: await client.readContract({ address: token, abi: erc20Abi, functionName: "name" }), version: "1" };
  }
}

export interface SignedPermit {
  deadline: bigint;
  v: number;
  r: Hex;
  s: Hex;
}

/** Signs `owner`'s permit for `spender` to pull `value` of `token` until `deadline`, with the token's current nonce. */
export async function signPermit(
  client: PublicClient,
  owner: LocalAccount,
  opts: { token: Address; domain: PermitDomain; spender: Address; value: bigint; deadline: bigint },
): Promise<SignedPermit> {
  const [nonce, chainId] = await Promise.all([
    client.readContract({ address: opts.token, abi: erc20Abi, functionName: "nonces", args: [owner.address] }),
    client.getChainId(),
  ]);
  const signature = await owner.signTypedData({
    domain: { ...opts.domain, chainId, verifyingContract: opts.token },
    types: PERMIT_TYPES,
    primaryType: "Permit",
    message: { owner: owner.address, spender: opts.spender, value: opts.value, nonce, deadline: opts.deadline },
  });
  const { v, r, s } = parseSignature(signature);
  return { deadline: opts.deadline, v: Number(v ?? 27n), r, s };
}
