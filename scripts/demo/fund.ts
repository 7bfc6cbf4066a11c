// Funds the demo wallets on the local chain: each mints the mock tokens to itself (open mint)
// and deposits them into the vault from its own wallet, the way a user would: USDC with its
// EIP-2612 permit in one transaction (vault.depositWithPermit) for half of them, approve then
// deposit for the rest and for the memecoins (which have no permit). Wallets run in parallel;
// each one's transactions in order.
import { createPublicClient, createWalletClient, http, parseUnits, type Account, type Address, type Chain, type Hex, type PublicClient, type Transport, type WalletClient } from "viem";
import { hardhat } from "viem/chains";
import { erc20Abi, vaultAbi } from "../../keeper/chain/vault-abi.ts";
import { readPermitDomain, signPermit } from "../../keeper/chain/erc20-permit.ts";
import type { DeploymentRecord } from "../../keeper/chain/deploy.ts";
import type { DemoWallet } from "./wallets.ts";

export interface FundOptions {
  rpcUrl: string;
  deployment: DeploymentRecord;
  wallets: readonly DemoWallet[];
  /** Whole tokens per symbol. */
  amounts: Record<string, string>;
  /** Called after each wallet has deposited everything. */
  onWallet?: (done: number, total: number) => void;
}

export interface FundResult {
  transactions: number;
  permits: number;
}

export async function fundWallets(opts: FundOptions): Promise<FundResult> {
  const publicClient = createPublicClient({ chain: hardhat, transport: http(opts.rpcUrl) }) as PublicClient;
  const vault = opts.deployment.vault;
  let transactions = 0;
  let permits = 0;
  let done = 0;
  await Promise.all(
    opts.wallets.map(async (w) => {
      const wallet = createWalletClient({ chain: hardhat, transport: http(opts.rpcUrl), account: w.account });
      const mined = async (hash: Hex, what: string) => {
        const receipt = await publicClient.waitForTransactionReceipt({ hash });
        if (receipt.status !== "success") throw new Error(`demo wallet #${w.index}: ${what} reverted (${hash})`);
        transactions++;
      };
      for (const token of opts.deployment.tokens) {
        const whole = opts.amounts[token.symbol];
        if (whole === undefined) continue;
        const amount = parseUnits(whole, token.decimals);
        await mined(await wallet.writeContract({ address: token.address, abi: erc20Abi, functionName: "mint", args: [w.account.address, amount] }), `mint ${token.symbol}`);
        if (w.permit && token.symbol === "USDC") {
          await depositWithPermit(publicClient, wallet, w, token.address, vault, amount, mined);
          permits++;
        } else {
          await mined(await wallet.writeContract({ address: token.address, abi: erc20Abi, functionName: "approve", args: [vault, amount] }), `approve ${token.symbol}`);
          await mined(await wallet.writeContract({ address: vault, abi: vaultAbi, functionName: "deposit", args: [token.address, amount] }), `deposit ${token.symbol}`);
        }
      }
      opts.onWallet?.(++done, opts.wallets.length);
    }),
  );
  return { transactions, permits };
}

async function depositWithPermit(
  publicClient: PublicClient,
  wallet: WalletClient<Transport, Chain, Account>,
  w: DemoWallet,
  token: Address,
  vault: Address,
  amount: bigint,
  mined: (hash: Hex, what: string) => Promise<void>,
): Promise<void> {
  const domain = await readPermitDomain(publicClient, token);
  if (domain === null) throw new Error(`token ${token} has no EIP-2612 permit`);
  const deadline = (await publicClient.getBlock()).timestamp + 3_600n;
  const { v, r, s } = await signPermit(publicClient, w.account, { token, domain, spender: vault, value: amount, deadline });
  await mined(
    await wallet.writeContract({ address: vault, abi: vaultAbi, functionName: "depositWithPermit", args: [token, amount, deadline, v, r, s] }),
    "depositWithPermit USDC",
  );
}
