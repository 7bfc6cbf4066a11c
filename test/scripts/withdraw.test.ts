// `npm run withdraw` (scripts/withdraw.ts) as a command against a real node and a running keeper,
// between sessions: it asks the keeper which way applies, sends vault.withdraw, and prints what it
// did and the new balance; --all takes what is left; bad input is refused by name (exit 2), an
// amount above what is available by the keeper's reason (exit 1). Every other phase goes through
// the same withdraw() in test/keeper/withdraw.test.ts.
import { expect } from "chai";
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { toHex } from "viem";
import { createKeeper, type Keeper } from "../../keeper/keeper.ts";
import { loadConfig } from "../../keeper/config.ts";
import { parseDeployment } from "../../keeper/chain/deployment.ts";
import { deploy, mintAndDeposit, startNode, user, vaultBalance, type Node } from "../support/chain.ts";

describe("npm run withdraw", function () {
  this.timeout(180_000);
  let node: Node;
  let keeper: Keeper | undefined;
  after(async () => {
    await keeper?.stop();
    node?.stop();
  });

  it("withdraws between sessions with vault.withdraw, then --all, and refuses bad input by name", async () => {
    node = await startNode();
    const { record, path } = await deploy(node.url);
    const who = user(9);
    await mintAndDeposit(node.url, record, who, { USDC: 500_000_000n });
    const config = loadConfig({}, { rpcUrl: node.url, dbPath: join(mkdtempSync(join(tmpdir(), "cme-withdraw-cli-")), "keeper.sqlite"), port: 0, logLevel: "silent", preSessionSec: 3600, confirmations: 0, chainPollMs: 100 });
    keeper = await createKeeper(config, { deployment: parseDeployment(record), env: {}, logger: pino({ level: "silent" }) });
    await keeper.start();
    const base = await keeper.app.listen({ host: "127.0.0.1", port: 0 });
    const key = toHex(who.getHdKey().privateKey!);

    // Asynchronous: the keeper answering the command runs in this process.
    const run = (args: string[], env: Record<string, string> = {}) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          ["--import", "tsx", "scripts/withdraw.ts", ...args],
          { cwd: process.cwd(), env: { ...process.env, CME_RPC_URL: node.url, CME_DEPLOYMENT: path, CME_KEEPER_URL: base, CME_USER_KEY: key, ...env } },
          (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stdout, stderr }),
        );
      });

    const some = await run(["--token", "USDC", "--amount", "100.5"]);
    expect(some.code, some.stderr).to.equal(0);
    expect(some.stdout).to.contain(`USDC of ${who.address}: up to 500 USDC now: no session is running, so all of it, directly from the vault`);
    expect(some.stdout).to.match(/ {2}withdraw: 0x[0-9a-f]{64} \(block \d+\)/);
    expect(some.stdout).to.contain(`withdrew 100.5 USDC (100500000 base units) to ${who.address} directly from the vault`);
    expect(some.stdout).to.contain("vault balance now 399.5 USDC; wallet 100.5 USDC");
    expect(await vaultBalance(node.client, record, who.address, "USDC")).to.equal(399_500_000n);

    const tooMuch = await run(["--token", "USDC", "--amount", "400"]);
    expect(tooMuch.code).to.equal(1);
    expect(tooMuch.stderr).to.contain("400 USDC asked, up to 399.5 USDC now: no session is running, so all of it, directly from the vault");

    const all = await run(["--token", "usdc", "--all"]);
    expect(all.code, all.stderr).to.equal(0);
    expect(all.stdout).to.contain("withdrew 399.5 USDC (399500000 base units)");
    expect(all.stdout).to.contain("vault balance now 0 USDC; wallet 500 USDC");
    const nothing = await run(["--token", "USDC", "--all"]);
    expect(nothing.code).to.equal(1);
    expect(nothing.stderr).to.contain("nothing to withdraw now");

    for (const [args, env, message] of [
      [["--token", "DOGE", "--all"], {}, "--token: DOGE is not listed (listed: USDC, PEPE"],
      [["--token", "USDC", "--amount", "1.1234567"], {}, "--amount: USDC has 6 decimals"],
      [["--token", "USDC", "--amount", "1e3"], {}, "--amount: 1e3 is not a decimal number of tokens"],
      [["--token", "USDC"], {}, "usage: npm run withdraw"],
      [["--token", "USDC", "--all"], { CME_USER_KEY: "" }, "--key: a 0x-prefixed private key"],
    ] as const) {
      const r = await run([...args], env);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).to.equal(2);
      expect(r.stderr).to.contain(message);
    }
    const down = await run(["--token", "USDC", "--all"], { CME_KEEPER_URL: "http://127.0.0.1:9" });
    expect(down.code).to.equal(1);
    expect(down.stderr).to.contain("the keeper at http://127.0.0.1:9/api/accounts/");
  });
});
