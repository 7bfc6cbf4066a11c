// A real Hardhat node for keeper tests: started as a child process on a free port, the vault and
// mock tokens deployed with the shared deploy function, and funded user wallets that deposit.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPublicClient, createWalletClient, http, type Address, type PublicClient } from "viem";
import { mnemonicToAccount, type HDAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import { deployCME, type DeploymentRecord } from "../../keeper/chain/deploy.ts";
import { erc20Abi, vaultAbi } from "../../keeper/chain/vault-abi.ts";

export const MNEMONIC = "test test test test test test test test test test test junk";

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.once("error", reject);
  });
}

export interface Node {
  url: string;
  client: PublicClient;
  stop(): void;
}

export async function startNode(): Promise<Node> {
  const port = await freePort();
  const child: ChildProcess = spawn("npx", ["hardhat", "node", "--port", String(port), "--hostname", "127.0.0.1"], {
    cwd: process.cwd(),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  child.stdout?.on("data", (d) => (out += String(d)));
  child.stderr?.on("data", (d) => (out += String(d)));
  const url = `http://127.0.0.1:${port}`;
  const client = createPublicClient({ chain: hardhat, transport: http(url) }) as PublicClient;
  const end = Date.now() + 120_000;
  for (;;) {
    try {
      await client.getChainId();
      break;
    } catch {
      if (Date.now() > end || child.exitCode !== null) throw new Error(`hardhat node did not start:\n${out.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return {
    url,
    client,
    stop() {
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {
        /* already gone */
      }
    },
  };
}

/** Deploys the vault and mocks on `url` and writes the record to a temporary file. */
export async function deploy(url: string): Promise<{ record: DeploymentRecord; path: string }> {
  const { network } = await import("hardhat");
  const conn = await network.create({ network: "localhost", override: { url } });
  const wallets = await conn.viem.getWalletClients();
  const record = await deployCME(conn.viem, {
    settler: wallets[1]!.account.address,
    treasury: wallets[2]!.account.address,
    insurance: wallets[3]!.account.address,
    gracePeriod: 300n,
    mocks: true,
  });
  const dir = mkdtempSync(join(tmpdir(), "cme-keeper-"));
  const path = join(dir, "deployment.json");
  writeFileSync(path, JSON.stringify(record, null, 2));
  return { record, path };
}

/** Hardhat account `index` (from 4 up: 0 deploys, 1 settles, 2 treasury, 3 insurance). */
export function user(index: number): HDAccount {
  return mnemonicToAccount(MNEMONIC, { addressIndex: index });
}

export async function mintAndDeposit(url: string, record: DeploymentRecord, who: HDAccount, deposits: Record<string, bigint>): Promise<void> {
  const w = createWalletClient({ chain: hardhat, transport: http(url), account: who });
  const pc = createPublicClient({ chain: hardhat, transport: http(url) });
  for (const [symbol, amount] of Object.entries(deposits)) {
    const token = record.tokens.find((t) => t.symbol === symbol)!.address as Address;
    const wait = async (hash: `0x${string}`) => {
      const r = await pc.waitForTransactionReceipt({ hash });
      if (r.status !== "success") throw new Error(`tx ${hash} reverted`);
    };
    await wait(await w.writeContract({ address: token, abi: erc20Abi, functionName: "mint", args: [who.address, amount] }));
    await wait(await w.writeContract({ address: token, abi: erc20Abi, functionName: "approve", args: [record.vault, amount] }));
    await wait(await w.writeContract({ address: record.vault, abi: vaultAbi, functionName: "deposit", args: [token, amount] }));
  }
}

export async function vaultBalance(client: PublicClient, record: DeploymentRecord, who: Address, symbol: string): Promise<bigint> {
  const token = record.tokens.find((t) => t.symbol === symbol)!.address as Address;
  return client.readContract({ address: record.vault, abi: vaultAbi, functionName: "balanceOf", args: [who, token] });
}
