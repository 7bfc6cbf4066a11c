// Withdraws from the CME vault to the wallet, in whatever phase the session is in:
//   npm run withdraw -- --token USDC --amount 100 [--key 0x… | --keystore NAME] [--keeper URL]
//   npm run withdraw -- --token USDC --all
// The amount is in whole tokens (decimals allowed). The key comes from --key, CME_USER_KEY, or the
// Hardhat keystore (--keystore NAME: `npx hardhat keystore set NAME`). The keeper
// (CME_KEEPER_URL, else CME_KEEPER_HOST:CME_KEEPER_PORT) says which way applies now and how much
// (GET /api/accounts/:address/withdrawal, decided by keeper/session/withdrawal.ts):
//   direct  between sessions, or settling with the account's delta posted: vault.withdraw
//   permit  trading or closing: the keeper's permit (POST /withdrawal-permit, EIP-712 signed), then
//           vault.withdrawWithPermit
//   wait    nothing can leave now (settling before the delta is posted, a liability, a session starting)
// `withdraw()` is the whole operation; the tests call it as this command does.
import { execFileSync } from "node:child_process";
import { realpathSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  createWalletClient,
  formatUnits,
  http,
  parseUnits,
  type Account,
  type Address,
  type Chain,
  type Hex,
  type PublicClient,
  type Transport,
  type WalletClient,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { erc20Abi, vaultAbi } from "../keeper/chain/vault-abi.ts";
import type { PermitWire, WithdrawalWire } from "../keeper/api/wire.ts";

export interface WithdrawDeps {
  /** The keeper's HTTP origin, e.g. http://127.0.0.1:8787. */
  keeperUrl: string;
  publicClient: PublicClient;
  wallet: WalletClient<Transport, Chain, Account>;
  /** Progress, one line at a time. */
  log?: (line: string) => void;
}

export interface WithdrawRequest {
  /** A listed token's symbol or address. */
  token: string;
  /** Whole tokens as a decimal string, base units as a bigint, or everything available now. */
  amount: string | bigint | "all";
}

export type WithdrawRefusal = "bad_amount" | "keeper_refused" | "wait" | "nothing_available" | "above_available" | "reverted";

export type WithdrawOutcome =
  | {
      ok: true;
      route: "direct" | "permit";
      /** Base units withdrawn. */
      amount: bigint;
      symbol: string;
      decimals: number;
      hash: Hex;
      block: bigint;
      /** The vault's balanceOf and the wallet's token balance after it. */
      vaultBalance: bigint;
      walletBalance: bigint;
      /** The keeper's answer the withdrawal followed, and its permit when one was needed. */
      plan: WithdrawalWire;
      permit: PermitWire | null;
    }
  | { ok: false; code: WithdrawRefusal; message: string; field?: string; plan: WithdrawalWire | null };

/** The keeper did not answer as a keeper does (unreachable, or not JSON). */
export class KeeperUnreachableError extends Error {
  override name = "KeeperUnreachableError";
  constructor(
    readonly url: string,
    options?: { cause?: unknown },
  ) {
    super(`the keeper at ${url} did not answer: is it running (CME_KEEPER_URL, --keeper)?`, options);
  }
}

async function keeperJson(url: string, init?: RequestInit): Promise<{ status: number; body: Record<string, unknown> }> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (cause) {
    throw new KeeperUnreachableError(url, { cause });
  }
  try {
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  } catch (cause) {
    throw new KeeperUnreachableError(url, { cause });
  }
}

const refusal = (code: WithdrawRefusal, message: string, plan: WithdrawalWire | null, field?: string): WithdrawOutcome =>
  field === undefined ? { ok: false, code, message, plan } : { ok: false, code, message, field, plan };

/** The vault's custom error as `Name(arg, …)`, or the message. */
function revertReason(err: unknown): string {
  if (err instanceof BaseError) {
    const reverted = err.walk((e) => e instanceof ContractFunctionRevertedError);
    if (reverted instanceof ContractFunctionRevertedError && reverted.data !== undefined) {
      return `${reverted.data.errorName}(${(reverted.data.args ?? []).map(String).join(", ")})`;
    }
    return err.shortMessage;
  }
  return String(err);
}

let nonceSeq = 0;

/**
 * Asks the keeper which route applies to `request.token` now, gets a permit when the route needs
 * one, sends the transaction from `deps.wallet` and waits for it. Expected refusals (nothing
 * available, the keeper's or the vault's no) are returned with a code; an unreachable keeper throws.
 */
export async function withdraw(deps: WithdrawDeps, request: WithdrawRequest): Promise<WithdrawOutcome> {
  const { publicClient: pc, wallet } = deps;
  const log = deps.log ?? (() => {});
  const account = wallet.account.address;
  const base = deps.keeperUrl.replace(/\/+$/, "");
  const asked = await keeperJson(`${base}/api/accounts/${account}/withdrawal?token=${encodeURIComponent(request.token)}`);
  if (asked.status !== 200) {
    return refusal("keeper_refused", String(asked.body.message ?? `the keeper answered ${asked.status}`), null, asked.body.field as string | undefined);
  }
  const plan = asked.body as unknown as WithdrawalWire;
  const show = (v: bigint) => `${formatUnits(v, plan.decimals)} ${plan.token}`;
  const available = BigInt(plan.available);

  let amount: bigint;
  if (request.amount === "all") amount = available;
  else if (typeof request.amount === "bigint") amount = request.amount;
  else {
    const m = /^(\d+)(?:\.(\d+))?$/.exec(request.amount);
    if (m === null) return refusal("bad_amount", `--amount: ${request.amount} is not a decimal number of tokens`, plan, "amount");
    if ((m[2] ?? "").length > plan.decimals) return refusal("bad_amount", `--amount: ${plan.token} has ${plan.decimals} decimals`, plan, "amount");
    amount = parseUnits(request.amount, plan.decimals);
  }

  if (plan.route === "wait") return refusal("wait", `nothing now: ${plan.reason}`, plan);
  log(`${plan.token} of ${account}: up to ${show(available)} now: ${plan.reason}`);
  if (amount <= 0n) return refusal(available === 0n ? "nothing_available" : "bad_amount", available === 0n ? `nothing to withdraw now: ${plan.reason}` : "--amount: must be more than 0", plan, "amount");
  if (amount > available) return refusal("above_available", `${show(amount)} asked, up to ${show(available)} now: ${plan.reason}`, plan, "amount");

  const vault = (await keeperJson(`${base}/api/session`)).body.vault as Address;
  const token = plan.tokenAddress as Address;
  let permit: PermitWire | null = null;
  let hash: Hex;
  try {
    if (plan.route === "direct") {
      const { request: tx } = await pc.simulateContract({ account: wallet.account, address: vault, abi: vaultAbi, functionName: "withdraw", args: [token, amount] });
      hash = await wallet.writeContract(tx);
    } else {
      const eip712 = (await keeperJson(`${base}/api/eip712`)).body as { domain: Record<string, unknown>; types: Record<string, { name: string; type: string }[]> };
      const nonce = BigInt(Date.now()) * 1000n + BigInt((nonceSeq = (nonceSeq + 1) % 1000));
      const expiry = Math.floor(Date.now() / 1000) + 600;
      const signature = await wallet.signTypedData({
        account: wallet.account,
        domain: eip712.domain,
        types: { WithdrawalRequest: eip712.types.WithdrawalRequest! },
        primaryType: "WithdrawalRequest",
        message: { account, token, amount, nonce, expiry: BigInt(expiry) },
      });
      const got = await keeperJson(`${base}/withdrawal-permit`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ account, token, amount: amount.toString(), nonce: nonce.toString(), expiry, signature }),
      });
      if (got.status !== 200) return refusal("keeper_refused", `${String(got.body.message)} (${got.status})`, plan, got.body.field as string | undefined);
      permit = got.body.permit as PermitWire;
      log(`  permit: session ${permit.sessionId}, nonce ${permit.nonce}, valid until ${new Date(permit.deadline * 1000).toISOString()}`);
      const { request: tx } = await pc.simulateContract({
        account: wallet.account,
        address: permit.vault as Address,
        abi: vaultAbi,
        functionName: "withdrawWithPermit",
        args: [token, amount, account, BigInt(permit.nonce), BigInt(permit.deadline), permit.signature as Hex],
      });
      hash = await wallet.writeContract(tx);
    }
  } catch (err) {
    return refusal("reverted", `the vault refuses: ${revertReason(err)}`, plan);
  }
  const receipt = await pc.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") return refusal("reverted", `transaction ${hash} reverted`, plan);
  log(`  ${plan.route === "direct" ? "withdraw" : "withdrawWithPermit"}: ${hash} (block ${receipt.blockNumber})`);
  const [vaultBalance, walletBalance] = await Promise.all([
    pc.readContract({ address: vault, abi: vaultAbi, functionName: "balanceOf", args: [account, token] }),
    pc.readContract({ address: token, abi: erc20Abi, functionName: "balanceOf", args: [account] }),
  ]);
  return { ok: true, route: plan.route, amount, symbol: plan.token, decimals: plan.decimals, hash, block: receipt.blockNumber, vaultBalance, walletBalance, plan, permit };
}

// ---------------------------------------------------------------- the command

async function main(): Promise<number> {
  const { loadConfig } = await import("../keeper/config.ts");
  const { createChainClients } = await import("../keeper/chain/client.ts");
  const { values } = parseArgs({
    options: {
      token: { type: "string" },
      amount: { type: "string" },
      all: { type: "boolean" },
      key: { type: "string" },
      keystore: { type: "string" },
      keeper: { type: "string" },
    },
  });
  const usage = "usage: npm run withdraw -- --token SYMBOL (--amount N | --all) [--key 0x… | --keystore NAME] [--keeper URL]";
  if (values.token === undefined || (values.amount === undefined) === (values.all !== true)) {
    console.error(usage);
    return 2;
  }
  if (values.amount !== undefined && !/^\d+(\.\d+)?$/.test(values.amount)) {
    console.error(`--amount: ${values.amount} is not a decimal number of tokens\n${usage}`);
    return 2;
  }
  let key = values.key ?? process.env.CME_USER_KEY;
  if (key === undefined && values.keystore !== undefined) {
    // Prompts for the keystore's password on the terminal.
    key = execFileSync("npx", ["hardhat", "keystore", "get", values.keystore], { stdio: ["inherit", "pipe", "inherit"] }).toString().trim();
  }
  if (key === undefined || !/^0x[0-9a-fA-F]{64}$/.test(key)) {
    console.error("--key: a 0x-prefixed private key (or CME_USER_KEY, or --keystore NAME)");
    return 2;
  }
  const config = loadConfig();
  const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
  const keeperUrl = values.keeper ?? process.env.CME_KEEPER_URL ?? `http://${host}:${config.port}`;
  const { chain } = createChainClients({ rpcUrl: config.rpcUrl, chainId: config.chainId, settlerKey: config.settlerKey as Hex, pollMs: 500 });
  const publicClient = createPublicClient({ chain, transport: http(config.rpcUrl) }) as PublicClient;
  const wallet = createWalletClient({ chain, transport: http(config.rpcUrl), account: privateKeyToAccount(key as Hex) });
  const out = await withdraw({ keeperUrl, publicClient, wallet, log: (l) => console.log(l) }, { token: values.token, amount: values.all === true ? "all" : values.amount! });
  if (!out.ok) {
    console.error(out.field === "token" ? `--token: ${out.message}` : out.message);
    return out.code === "bad_amount" || out.field === "token" ? 2 : 1;
  }
  const show = (v: bigint) => `${formatUnits(v, out.decimals)} ${out.symbol}`;
  console.log(`withdrew ${show(out.amount)} (${out.amount} base units) to ${wallet.account.address} ${out.route === "permit" ? "with the keeper's permit" : "directly from the vault"}`);
  console.log(`vault balance now ${show(out.vaultBalance)}; wallet ${show(out.walletBalance)}`);
  return 0;
}

/** Whether this file is the command being run (tests import `withdraw` instead). */
function invokedDirectly(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(resolve(process.argv[1])) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : String(err));
      process.exit(1);
    },
  );
}
