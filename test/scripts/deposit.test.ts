// scripts/deposit.ts against a real node: USDC (EIP-2612) goes in with one depositWithPermit
// transaction, a memecoin without permit with approve + deposit; bad input is refused by name.
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { createWalletClient, http, toHex, type Address } from "viem";
import { hardhat } from "viem/chains";
import { erc20Abi } from "../../keeper/chain/vault-abi.ts";
import { deploy, startNode, user, vaultBalance, type Node } from "../support/chain.ts";

describe("npm run deposit", function () {
  this.timeout(180_000);
  let node: Node;
  after(() => node?.stop());

  it("deposits with permit where the token has one, and with approve otherwise", async () => {
    node = await startNode();
    const { record, path } = await deploy(node.url);
    const who = user(9);
    const key = toHex(who.getHdKey().privateKey!);
    const w = createWalletClient({ chain: hardhat, transport: http(node.url), account: who });
    for (const [symbol, amount] of [["USDC", 500_000_000n], ["PEPE", 10n ** 24n]] as const) {
      const token = record.tokens.find((t) => t.symbol === symbol)!.address as Address;
      await node.client.waitForTransactionReceipt({ hash: await w.writeContract({ address: token, abi: erc20Abi, functionName: "mint", args: [who.address, amount] }) });
    }
    const run = (...args: string[]) =>
      spawnSync(process.execPath, ["--import", "tsx", "scripts/deposit.ts", ...args], {
        cwd: process.cwd(),
        env: { ...process.env, CME_RPC_URL: node.url, CME_DEPLOYMENT: path },
      });
    const usdc = run("--token", "USDC", "--amount", "100.5", "--key", key);
    expect(String(usdc.stdout), String(usdc.stderr)).to.match(/depositWithPermit: 0x/);
    expect(await vaultBalance(node.client, record, who.address, "USDC")).to.equal(100_500_000n);
    const pepe = run("--token", "PEPE", "--amount", "250000", "--key", key);
    expect(String(pepe.stdout), String(pepe.stderr)).to.match(/approve: 0x[\s\S]*deposit: 0x/);
    expect(await vaultBalance(node.client, record, who.address, "PEPE")).to.equal(250_000n * 10n ** 18n);
    const bad = run("--token", "DOGE", "--amount", "1", "--key", key);
    expect(bad.status).to.equal(2);
    expect(String(bad.stderr)).to.match(/--token: DOGE is not listed/);
  });
});
