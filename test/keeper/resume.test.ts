// A deposit mined while the keeper is down during trading belongs to the session it was mined in:
// on restart the pit is rebuilt from the journal first, then the watcher catches up and credits
// it, once. (Before, the watcher caught up first and the deposit reached only the keeper's table.)
import { expect } from "chai";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import type { Address } from "viem";
import { createKeeper, type Keeper } from "../../keeper/keeper.ts";
import { loadConfig, type KeeperConfig } from "../../keeper/config.ts";
import { parseDeployment } from "../../keeper/chain/deployment.ts";
import { deploy, mintAndDeposit, startNode, user, type Node } from "../support/chain.ts";
import { signed } from "../support/keeper.ts";

const until = async (what: string, cond: () => boolean | Promise<boolean>, ms: number) => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

describe("keeper restart during trading", function () {
  this.timeout(180_000);
  let node: Node;
  let keeper: Keeper | undefined;
  after(async () => {
    await keeper?.stop();
    node?.stop();
  });

  it("credits a deposit mined while it was down to the running session, once", async () => {
    node = await startNode();
    const { record } = await deploy(node.url);
    const deployment = parseDeployment(record);
    const users = [4, 5, 6].map(user);
    for (const u of users) await mintAndDeposit(node.url, record, u, { USDC: 10_000_000_000n, PEPE: 3n * 10n ** 24n, WIF: 3n * 10n ** 19n });
    const config: KeeperConfig = loadConfig(
      {},
      {
        rpcUrl: node.url,
        dbPath: join(mkdtempSync(join(tmpdir(), "cme-resume-")), "keeper.sqlite"),
        port: 0,
        logLevel: "silent",
        preSessionSec: 3,
        tradingSec: 120,
        closingSec: 1,
        tickMs: 250,
        confirmations: 0,
        chainPollMs: 100,
      },
    );
    const open = async () => {
      const k = await createKeeper(config, { deployment, logger: pino({ level: "silent" }) });
      await k.start();
      return k;
    };
    keeper = await open();
    const vault = record.vault as Address;
    for (const u of users) {
      await until("the deposit seen", async () => (await keeper!.app.inject(`/api/accounts/${u.address}`)).json().accountId !== null, 20_000);
      const r = await keeper.app.inject({ method: "POST", url: "/set-broker", payload: await signed(u, "SetBroker", { brokerId: "rule-market-maker" }, { vault }) });
      expect(r.statusCode, r.body).to.equal(200);
    }
    await until("trading", () => keeper!.runner.current.phase === "trading", 30_000);
    const sessionId = keeper.runner.current.id;
    const depositor = keeper.runner.participants.find((p) => p.address === users[1]!.address.toLowerCase())!.accountId;
    const deposits = (k: Keeper) =>
      [...k.runner.journal.read<{ type: string; user?: number; amount?: string }>(sessionId)].filter((e) => e.command.type === "deposit" && e.command.user === depositor);
    const before = deposits(keeper).length;
    await keeper.stop();
    keeper = undefined;

    // Mined while nobody watches.
    await mintAndDeposit(node.url, record, users[1]!, { USDC: 7_000_000n });

    keeper = await open();
    expect(keeper.runner.current).to.include({ id: sessionId, phase: "trading" });
    await until("the downtime deposit credited", () => deposits(keeper!).length > before, 20_000);
    // Let the watcher poll a few more times: the credit must not repeat.
    await new Promise((r) => setTimeout(r, 1_000));
    const credited = deposits(keeper).slice(before);
    expect(credited.map((e) => String(e.command.amount))).to.deep.equal(["7000000"]);
  });
});
