// Signs the vault's withdrawal permits with the settler key. The domain is read from the vault's
// own eip712Domain() (EIP-5267), so the signature matches whatever name and version it was built with.
import type { Address, Hex, PublicClient } from "viem";
import type { PrivateKeyAccount } from "viem/accounts";
import { vaultAbi } from "./vault-abi.ts";

export interface WithdrawalPermit {
  account: Address;
  token: Address;
  amount: bigint;
  sessionId: number;
  nonce: bigint;
  deadline: bigint;
}

const WITHDRAWAL_TYPES = {
  Withdrawal: [
    { name: "account", type: "address" },
    { name: "token", type: "address" },
    { name: "amount", type: "uint256" },
    { name: "sessionId", type: "uint32" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
} as const;

export class PermitSigner {
  #domain: { name: string; version: string; chainId: number; verifyingContract: Address } | undefined;

  constructor(
    private readonly client: PublicClient,
    private readonly settler: PrivateKeyAccount,
    private readonly vault: Address,
  ) {}

  async domain() {
    if (this.#domain === undefined) {
      const [, name, version, chainId, verifyingContract] = await this.client.readContract({ address: this.vault, abi: vaultAbi, functionName: "eip712Domain" });
      this.#domain = { name, version, chainId: Number(chainId), verifyingContract };
    }
    return this.#domain;
  }

  /**
   * `ttlSec` after now on the chain's clock as well as the wall clock: the vault compares a
   * permit's deadline with block time, which on the local chain runs ahead (the keeper moves it
   * past the withdrawal and challenge windows).
   */
  async deadline(nowSec: number, ttlSec: number): Promise<bigint> {
    const chainNow = (await this.client.getBlock({ blockTag: "latest" })).timestamp;
    const base = chainNow > BigInt(nowSec) ? chainNow : BigInt(nowSec);
    return base + BigInt(ttlSec);
  }

  async sign(p: WithdrawalPermit): Promise<Hex> {
    return this.settler.signTypedData({ domain: await this.domain(), types: WITHDRAWAL_TYPES, primaryType: "Withdrawal", message: p });
  }
}
