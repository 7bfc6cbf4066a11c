// `npm start` from a clean state (a temporary data directory, fresh ports): the real script runs a
// short session on a local chain and the test checks, independently of what the script prints,
// that the session traded, was finalized on-chain, and that the indexer serves it: finalized,
// every token's deltas net to zero, the fill log hash the keeper publishes, and every balance equal
// to the vault's. Then Ctrl-C: the script exits 0 and leaves no process or port behind.
import { expect } from "chai";
import { readFileSync } from "node:fs";
import { createPublicClient, getAddress, http, type Address } from "viem";
import { hardhat } from "viem/chains";
import { vaultAbi } from "../../keeper/chain/vault-abi.ts";
import { eventually, graphql, portIsFree, startDemo, type Demo } from "../support/demo-process.ts";

interface Deployment {
  vault: Address;
  tokens: { symbol: string; address: Address; index: number }[];
}

// Hardhat accounts #4..#11: the demo's eight built-in-broker wallets (scripts/demo/wallets.ts).
const DEMO_WALLETS = [
  "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
  "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
  "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
  "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
  "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f",
  "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
  "0xBcd4042DE499D14e55001CcbB24a551F3b954096",
  "0x71bE63f3384f5fb98995898A86B02Fb2426c5788",
] as const;

describe("npm start", function () {
  // Compiling from scratch and starting Ponder dominate; a loaded 2-core machine needs headroom.
  this.timeout(600_000);
  let demo: Demo | undefined;

  afterEach(function () {
    if (demo !== undefined && demo.child.exitCode === null && demo.child.signalCode === null) demo.kill();
  });

  it("reaches a finalized session that the indexer serves, then stops cleanly on Ctrl-C", async function () {
    demo = await startDemo({ CME_PRE_SESSION_SEC: "5", CME_TRADING_SEC: "20", CME_CLOSING_SEC: "2" });
    const d = demo;

    await d.waitForOutput(/The pit is open[^]*Ctrl-C stops everything/, 420_000);
    expect(d.output()).to.include(`pit page   ${d.keeperUrl}/`);
    expect(d.output()).to.include(`GraphQL    ${d.graphqlUrl}`);
    const report = await d.waitForOutput(/indexed: session 1 finalized[^\n]*/, 300_000);
    const settled = d.output().match(/Session 1 settled · (\d+) trades/);
    expect(settled, d.output()).to.not.equal(null);
    expect(Number(settled![1])).to.be.greaterThan(0);
    expect(report[0]).to.match(/net per token USDC 0(, [A-Z]+ 0)* · \d+ balances equal the vault's/);

    const deployment = JSON.parse(readFileSync(d.deploymentPath, "utf8")) as Deployment;
    expect(deployment.tokens.map((t) => t.symbol)).to.deep.equal(["USDC", "PEPE", "WIF", "BONK"]);

    // The session, as the indexer serves it.
    const q = await graphql<{
      session: { phase: string; fillLogHash: string; batchCount: number; batchesPosted: number; entryCount: number } | null;
      sessionTokenNets: { items: { tokenIndex: number; net: string; credits: string; debits: string }[] };
      pendingDeltas: { totalCount: number };
    }>(
      d.graphqlUrl,
      `{ session(sessionId: 1) { phase fillLogHash batchCount batchesPosted entryCount }
         sessionTokenNets(where: { sessionId: 1 }, orderBy: "tokenIndex") { items { tokenIndex net credits debits } }
         pendingDeltas(where: { sessionId: 1 }) { totalCount } }`,
    );
    expect(q.session?.phase).to.equal("finalized");
    expect(q.session!.batchesPosted).to.equal(q.session!.batchCount);
    expect(q.session!.entryCount).to.be.greaterThan(0);
    expect(q.pendingDeltas.totalCount).to.equal(0);
    const nets = q.sessionTokenNets.items;
    for (const n of nets) expect(n.net, `token ${n.tokenIndex} net`).to.equal("0");
    // Trades moved USDC and at least one memecoin.
    expect(nets.find((n) => n.tokenIndex === 0 && BigInt(n.credits) > 0n), "USDC moved").to.not.equal(undefined);
    expect(nets.filter((n) => n.tokenIndex !== 0 && BigInt(n.credits) > 0n).length, "a memecoin moved").to.be.greaterThan(0);

    // The keeper's published fill log is the one committed on-chain, and it has fills.
    const fillLog = await fetch(`${d.keeperUrl}/api/sessions/1/fill-log`);
    expect(fillLog.status).to.equal(200);
    expect(fillLog.headers.get("x-fill-log-hash")).to.equal(q.session!.fillLogHash);
    const records = (await fillLog.text()).trimEnd().split("\n").map((l) => JSON.parse(l) as { type: string });
    expect(records.filter((r) => r.type === "fill").length).to.be.greaterThan(0);

    // Every balance the indexer serves equals the vault's at the block it has indexed, and every
    // demo wallet has all four tokens there.
    const client = createPublicClient({ chain: hardhat, transport: http(d.rpcUrl) });
    const compared = await eventually(
      "indexer balances equal to the vault's",
      async () => {
        const status = (await (await fetch(d.graphqlUrl.replace(/\/graphql$/, "/status"))).json()) as Record<string, { block?: { number: number } }>;
        const block = Object.values(status)[0]?.block?.number;
        if (block === undefined) return undefined;
        const rows = await graphql<{ balances: { items: { account: Address; token: Address; amount: string }[] } }>(
          d.graphqlUrl,
          `{ balances(limit: 1000) { items { account token amount } } }`,
        );
        const vault = await Promise.all(
          rows.balances.items.map((r) =>
            client.readContract({ address: deployment.vault, abi: vaultAbi, functionName: "balanceOf", args: [r.account, r.token], blockNumber: BigInt(block) }),
          ),
        );
        const mismatches = rows.balances.items.filter((r, i) => vault[i] !== BigInt(r.amount));
        // A block indexed between the two reads would show up here; the next poll re-reads both.
        return mismatches.length === 0 ? rows.balances.items : undefined;
      },
      60_000,
    );
    for (const w of DEMO_WALLETS) {
      const held = compared.filter((r) => getAddress(r.account) === w).map((r) => getAddress(r.token));
      expect(held.sort(), w).to.deep.equal(deployment.tokens.map((t) => getAddress(t.address)).sort());
    }

    // Ctrl-C: everything stops, npm exits 0, nothing is left listening or running.
    d.interrupt();
    const exit = await d.exitedWithin(90_000);
    expect(exit, d.output().slice(-3_000)).to.deep.equal({ code: 0, signal: null });
    expect(d.output()).to.match(/Ctrl-C: stopping the keeper, the indexer and the chain…\nstopped\./);
    expect(d.leftovers(), "processes left behind").to.deep.equal([]);
    for (const [name, port] of Object.entries(d.ports)) expect(await portIsFree(port), `${name} port ${port} freed`).to.equal(true);
  });
});
