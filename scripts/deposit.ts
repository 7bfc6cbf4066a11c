// Deposits into the CME vault from a wallet:
//   npm run deposit -- --token USDC --amount 100 [--key 0x… | --keystore NAME] [--for 0xACCOUNT]
// The amount is in whole tokens (decimals allowed). Tokens with EIP-2612 permit (USDC here) are
// deposited in one transaction with vault.depositWithPermit; others are approved, then deposited.
// --keystore reads the key from the Hardhat keystore (`npx hardhat keystore set NAME`).
import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";
import { createPublicClient, createWalletClient, http, parseUnits, type Address, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { loadConfig } from "../keeper/config.ts";
import { readDeployment } from "../keeper/chain/deployment.ts";
import { createChainClients } from "../keeper/chain/client.ts";
import { erc20Abi, vaultAbi } from "../keeper/chain/vault-abi.ts";
import { readPermitDomain, signPermit } from "../keeper/chain/erc20-permit.ts";

const { values } = parseArgs({
  options: { token: { type: "string" }, amount: { type: "string" }, key: { type: "string" }, keystore: { type: "string" }, for: { type: "string" } },
});
if (values.token === undefined || values.amount === undefined || !/^\d+(\.\d+)?$/.test(values.amount)) {
  console.error("usage: npm run deposit -- --token SYMBOL --amount N [--key 0x… | --keystore NAME]");
  process.exit(2);
}
const config = loadConfig();
const deployment = readDeployment(config.deploymentPath);
const token = deployment.tokens.find((t) => t.symbol.toUpperCase() === values.token!.toUpperCase() || t.address.toLowerCase() === values.token!.toLowerCase());
if (token === undefined) {
  console.error(`--token: ${values.token} is not listed (listed: ${deployment.tokens.map((t) => t.symbol).join(", ")})`);
  process.exit(2);
}

/** Reads a private key from the Hardhat keystore (prompts for its password on the terminal). */
function keyFromKeystore(name: string): string {
  return execFileSync("npx", ["hardhat", "keystore", "get", name], { stdio: ["inherit", "pipe", "inherit"] }).toString().trim();
}

let key = values.key ?? process.env.CME_DEPOSITOR_KEY;
if (key === undefined && values.keystore !== undefined) key = keyFromKeystore(values.keystore);
if (key === undefined || !/^0x[0-9a-fA-F]{64}$/.test(key)) {
  console.error("--key: a 0x-prefixed private key (or CME_DEPOSITOR_KEY, or --keystore NAME)");
  process.exit(2);
}
const account = privateKeyToAccount(key as Hex);
const { chain } = createChainClients({ rpcUrl: config.rpcUrl, chainId: config.chainId, settlerKey: config.settlerKey as Hex, pollMs: 500 });
const pc = createPublicClient({ chain, transport: http(config.rpcUrl) });
const wc = createWalletClient({ chain, transport: http(config.rpcUrl), account });
const amount = parseUnits(values.amount, token.decimals);
const vault = deployment.vault;
const beneficiary = (values.for ?? account.address) as Address;

async function mined(hash: Hex, what: string) {
  const r = await pc.waitForTransactionReceipt({ hash });
  if (r.status !== "success") throw new Error(`${what} reverted (${hash})`);
  console.log(`  ${what}: ${hash} (block ${r.blockNumber})`);
}

/** The token's EIP-2612 domain, when it has permit. */
console.log(`depositing ${values.amount} ${token.symbol} (${amount} base units) from ${account.address} into ${vault}`);
const permit = beneficiary === account.address ? await readPermitDomain(pc, token.address) : null;
if (permit !== null) {
  const deadline = BigInt(Math.floor(Date.now() / 1000) + 1800);
  const { v, r, s } = await signPermit(pc, account, { token: token.address, domain: permit, spender: vault, value: amount, deadline });
  await mined(
    await wc.writeContract({ address: vault, abi: vaultAbi, functionName: "depositWithPermit", args: [token.address, amount, deadline, v, r, s] }),
    "depositWithPermit",
  );
} else {
  await mined(await wc.writeContract({ address: token.address, abi: erc20Abi, functionName: "approve", args: [vault, amount] }), "approve");
  await mined(
    beneficiary === account.address
      ? await wc.writeContract({ address: vault, abi: vaultAbi, functionName: "deposit", args: [token.address, amount] })
      : await wc.writeContract({ address: vault, abi: vaultAbi, functionName: "depositFor", args: [beneficiary, token.address, amount] }),
    beneficiary === account.address ? "deposit" : "depositFor",
  );
}
const balance = await pc.readContract({ address: vault, abi: vaultAbi, functionName: "balanceOf", args: [beneficiary, token.address] });
console.log(`vault balance of ${beneficiary}: ${balance} ${token.symbol} base units`);
