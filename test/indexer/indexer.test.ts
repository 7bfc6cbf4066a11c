// End to end: a Hardhat network, the vault as keeper/chain/deploy.ts deploys it, the Ponder app
// (`ponder start`, embedded database) indexing it live. Every balance the indexer serves is
// compared with the vault's own balanceOf after deposits, withdrawals, a settled session, a
// voided session and a session settled after the void.
import { expect } from "chai";
import { after, before, describe, it } from "mocha";
import { Hono, type MiddlewareHandler } from "hono";
import type { Hex, TransactionReceipt } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { PermitSigner } from "../../keeper/chain/permit-signer.ts";
import type { DeploymentRecord } from "../../keeper/chain/deploy.ts";
import { eventually, graphql, startChain, startIndexer, waitForBlock, type Indexer, type LocalChain } from "../support/indexer.ts";
import { checkGraphqlRequest, GRAPHQL_LIMITS, limitedGraphql } from "../../indexer/src/api/limits.ts";
import { deployWithDriver, fillLogOf, toHexKey, type Driver } from "../support/session-driver.ts";

// Hardhat's development account #1 (the deploy's settler on the local chain): a public test key.
const SETTLER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const USDC = 10n ** 6n;
const PEPE = 10n ** 18n;
const GRACE_SEC = 60n;

/** Three nested list relations in under 200 bytes: up to a billion rows at Ponder's largest pages. */
const THREE_NESTED_LISTS = `{ accounts(limit: 1000) { items { deltas(limit: 1000) { items { accountInfo { deltas(limit: 1000) { items { delta } } } } } } } }`;
/** The same at Ponder's default page size (50 rows a list). */
const THREE_NESTED_DEFAULT_LISTS = `{ accounts { items { deltas { items { accountInfo { deltas { items { delta } } } } } } } }`;

type GraphqlErrorBody = { errors?: { message: string; extensions?: { code?: string } }[]; data?: unknown };

async function postGraphql(url: string, body: unknown): Promise<{ status: number; json: GraphqlErrorBody; ms: number }> {
  const started = performance.now();
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const json = (await response.json()) as GraphqlErrorBody;
  return { status: response.status, json, ms: performance.now() - started };
}

type BalanceRow = { account: Hex; token: Hex; accountId: number; tokenIndex: number; amount: string; lastSessionId: number | null };

describe("indexer (Ponder) against a live vault", function () {
  this.timeout(180_000);

  let chain: LocalChain;
  let deployment: DeploymentRecord;
  let indexer: Indexer;
  let d: Driver;
  let treasuryId: number;
  const users: Hex[] = [];
  const ids = new Map<string, number>();

  const id = (address: Hex) => {
    const value = ids.get(address.toLowerCase());
    if (value === undefined) throw new Error(`no account id for ${address}`);
    return value;
  };

  /** Waits for the indexer to process `receipt`'s block. */
  const indexed = async (receipt: TransactionReceipt) => {
    await waitForBlock(indexer.url, receipt.blockNumber);
  };

  async function indexerBalances(pageSize = 1000): Promise<Map<string, BalanceRow>> {
    const out = new Map<string, BalanceRow>();
    let after: string | null = null;
    for (;;) {
      const data: { balances: { items: BalanceRow[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } = await graphql(
        indexer.graphqlUrl,
        `query ($after: String, $limit: Int) {
          balances(limit: $limit, after: $after, orderBy: "accountId", orderDirection: "asc") {
            items { account token accountId tokenIndex amount lastSessionId }
            pageInfo { hasNextPage endCursor }
          }
        }`,
        { after, limit: pageSize },
      );
      for (const row of data.balances.items) out.set(toHexKey(row.account, row.token), row);
      if (!data.balances.pageInfo.hasNextPage) return out;
      after = data.balances.pageInfo.endCursor;
    }
  }

  /** Every (account, token) the vault knows: the indexer must serve the same amount (absent = 0). */
  async function expectBalancesMatchVault(): Promise<number> {
    const [onChain, served] = await Promise.all([d.vaultBalances(), indexerBalances()]);
    const mismatches: string[] = [];
    for (const [key, amount] of onChain) {
      const row = served.get(key);
      if ((row === undefined ? 0n : BigInt(row.amount)) !== amount) mismatches.push(`${key}: vault ${amount}, indexer ${row?.amount ?? "none"}`);
    }
    for (const key of served.keys()) if (!onChain.has(key)) mismatches.push(`${key}: indexed but unknown to the vault`);
    expect(mismatches, mismatches.join("\n")).to.deep.equal([]);
    return onChain.size;
  }

  async function sessionRow(sessionId: number) {
    const data = await graphql<{
      session: { phase: string; batchCount: number; batchesPosted: number; entryCount: number; batchRoot: Hex; fillLogHash: Hex; voidedBy: Hex | null } | null;
      sessionTokenNets: { items: { tokenIndex: number; net: string; credits: string; debits: string; entryCount: number }[] };
      pendingDeltas: { totalCount: number };
      deltas: { totalCount: number };
      settlementBatchs: { items: { batchIndex: number; entryCount: number }[] };
    }>(
      indexer.graphqlUrl,
      `query ($s: Int!) {
        session(sessionId: $s) { phase batchCount batchesPosted entryCount batchRoot fillLogHash voidedBy }
        sessionTokenNets(where: { sessionId: $s }) { items { tokenIndex net credits debits entryCount } }
        pendingDeltas(where: { sessionId: $s }) { totalCount }
        deltas(where: { sessionId: $s }) { totalCount }
        settlementBatchs(where: { sessionId: $s }, orderBy: "batchIndex") { items { batchIndex entryCount } }
      }`,
      { s: sessionId },
    );
    return data;
  }

  before(async function () {
    chain = await startChain();
    ({ deployment, d } = await deployWithDriver(chain.viem, GRACE_SEC));
    treasuryId = await d.accountId(deployment.treasury);
    indexer = await startIndexer(chain.url, deployment);
  });

  after(async function () {
    await indexer?.stop();
    await chain?.stop();
  });

  describe("listing and registration", function () {
    it("indexes every listed token with its index, decimals and symbol", async function () {
      await waitForBlock(indexer.url, await d.publicClient.getBlockNumber());
      const data = await graphql<{ tokens: { items: { address: Hex; tokenIndex: number; decimals: number; symbol: string }[] } }>(
        indexer.graphqlUrl,
        `{ tokens(orderBy: "tokenIndex") { items { address tokenIndex decimals symbol } } }`,
      );
      expect(data.tokens.items).to.deep.equal(
        deployment.tokens.map((t) => ({ address: t.address.toLowerCase(), tokenIndex: t.index, decimals: t.decimals, symbol: t.symbol })),
      );
    });

    it("indexes the treasury and insurance accounts registered at deploy", async function () {
      const data = await graphql<{ accounts: { items: { address: Hex; accountId: number }[] }; vaults: { items: { gracePeriod: string; accountCount: number; tokenCount: number }[] } }>(
        indexer.graphqlUrl,
        `{ accounts(orderBy: "accountId") { items { address accountId } } vaults { items { gracePeriod accountCount tokenCount } } }`,
      );
      expect(data.accounts.items).to.deep.equal([
        { address: deployment.treasury.toLowerCase(), accountId: treasuryId },
        { address: deployment.insurance.toLowerCase(), accountId: await d.accountId(deployment.insurance) },
      ]);
      expect(data.vaults.items).to.deep.equal([{ gracePeriod: GRACE_SEC.toString(), accountCount: 2, tokenCount: deployment.tokens.length }]);
    });
  });

  describe("deposits and withdrawals", function () {
    it("serves the vault's balances after deposits, depositFor, withdraw and withdrawTo", async function () {
      for (const w of d.wallets.slice(4, 8)) users.push(w.account.address);
      const [alice, bob, carol, dave] = d.wallets.slice(4, 8) as [typeof d.wallets[number], typeof d.wallets[number], typeof d.wallets[number], typeof d.wallets[number]];
      await d.deposit(alice, "USDC", 10_000n * USDC);
      await d.deposit(alice, "PEPE", 2_000_000n * PEPE);
      await d.deposit(bob, "USDC", 5_000n * USDC);
      await d.deposit(carol, "PEPE", 3_000_000n * PEPE);
      // dave pays, carol is credited
      const usdc = await chain.viem.getContractAt("MockUSDC", d.token("USDC").address, { client: { wallet: dave } });
      await d.mined(await usdc.write.mint([dave.account.address, 700n * USDC]));
      await d.mined(await usdc.write.approve([deployment.vault, 700n * USDC]));
      await d.mined(await (await d.vaultAs(dave)).write.depositFor([carol.account.address, d.token("USDC").address, 700n * USDC]));
      await d.deposit(dave, "USDC", 1_000n * USDC);
      await d.mined(await (await d.vaultAs(dave)).write.withdraw([d.token("USDC").address, 250n * USDC]));
      const last = await d.mined(await (await d.vaultAs(bob)).write.withdrawTo([d.token("USDC").address, 1_000n * USDC, dave.account.address]));
      for (const u of [alice, bob, carol, dave]) ids.set(u.account.address.toLowerCase(), await d.accountId(u.account.address));

      await indexed(last);
      expect(await expectBalancesMatchVault()).to.equal(6 * deployment.tokens.length);

      const history = await graphql<{
        deposits: { items: { account: Hex; from: Hex; amount: string; balanceAfter: string }[] };
        withdrawals: { items: { account: Hex; to: Hex; amount: string; sessionId: number }[] };
      }>(
        indexer.graphqlUrl,
        `query ($carol: String!, $bob: String!) {
          deposits(where: { account: $carol }, orderBy: "block") { items { account from amount balanceAfter } }
          withdrawals(where: { account: $bob }) { items { account to amount sessionId } }
        }`,
        { carol: carol.account.address.toLowerCase(), bob: bob.account.address.toLowerCase() },
      );
      expect(history.deposits.items).to.deep.equal([
        { account: carol.account.address.toLowerCase(), from: carol.account.address.toLowerCase(), amount: (3_000_000n * PEPE).toString(), balanceAfter: (3_000_000n * PEPE).toString() },
        { account: carol.account.address.toLowerCase(), from: dave.account.address.toLowerCase(), amount: (700n * USDC).toString(), balanceAfter: (700n * USDC).toString() },
      ]);
      expect(history.withdrawals.items).to.deep.equal([
        { account: bob.account.address.toLowerCase(), to: dave.account.address.toLowerCase(), amount: (1_000n * USDC).toString(), sessionId: 0 },
      ]);
    });
  });

  describe("a settled session", function () {
    it("keeps posted deltas pending until finalize, then serves the vault's balances", async function () {
      const [alice, bob, carol, dave] = users as [Hex, Hex, Hex, Hex];
      await d.startSession(1, 3_600n);

      // A withdrawal during trading, with a settler-signed permit, is a balance change too.
      const signer = new PermitSigner(d.publicClient, privateKeyToAccount(SETTLER_KEY), deployment.vault);
      const permit = { account: dave, token: d.token("USDC").address, amount: 100n * USDC, sessionId: 1, nonce: 1n, deadline: 2n ** 40n };
      const daveWallet = d.wallets[7]!;
      await indexed(
        await d.mined(
          await (await d.vaultAs(daveWallet)).write.withdrawWithPermit([permit.token, permit.amount, dave, permit.nonce, permit.deadline, await signer.sign(permit)]),
        ),
      );
      const permitted = await graphql<{ withdrawals: { items: { sessionId: number; amount: string }[] } }>(
        indexer.graphqlUrl,
        `query ($dave: String!) { withdrawals(where: { account: $dave, sessionId: 1 }) { items { sessionId amount } } }`,
        { dave: dave.toLowerCase() },
      );
      expect(permitted.withdrawals.items).to.deep.equal([{ sessionId: 1, amount: (100n * USDC).toString() }]);

      // Takers pay fees to the treasury; bob's maker rebate comes out of it.
      const log = fillLogOf(deployment, treasuryId, 1, [
        { pairId: 1, maker: id(alice), taker: id(bob), takerSide: "buy", priceTicks: 1_000n, sizeLots: 1_000_000n, makerFee: 0n, takerFee: 2_000n },
        { pairId: 1, maker: id(carol), taker: id(dave), takerSide: "buy", priceTicks: 1_010n, sizeLots: 500_000n, makerFee: 0n, takerFee: 1_000n },
        { pairId: 1, maker: id(bob), taker: id(carol), takerSide: "sell", priceTicks: 990n, sizeLots: 300_000n, makerFee: -100n, takerFee: 600n },
        { pairId: 1, maker: id(dave), taker: id(alice), takerSide: "buy", priceTicks: 1_005n, sizeLots: 100_000n, makerFee: 0n, takerFee: 200n },
      ]);
      const before = await indexerBalances();
      const run = await d.settle(log, { batchSize: 3, finalize: false });
      expect(run.chain.links.length).to.be.greaterThan(1);
      await indexed(run.batches.at(-1)!);

      const settling = await sessionRow(1);
      expect(settling.session).to.include({ phase: "settling", batchCount: run.chain.links.length, batchesPosted: run.chain.links.length, entryCount: run.entries.length, batchRoot: run.chain.root });
      expect(settling.pendingDeltas.totalCount).to.equal(run.entries.length);
      // Nothing posted is a balance before finalize: the index still equals the vault (and itself before).
      await expectBalancesMatchVault();
      const during = await indexerBalances();
      expect([...during].map(([k, v]) => [k, v.amount])).to.deep.equal([...before].map(([k, v]) => [k, v.amount]));

      const finalized = await d.finalize(1);
      await indexed(finalized);
      const done = await sessionRow(1);
      expect(done.session?.phase).to.equal("finalized");
      expect(done.pendingDeltas.totalCount).to.equal(0);
      expect(done.deltas.totalCount).to.equal(run.entries.length);
      expect(done.settlementBatchs.items.map((b) => b.entryCount)).to.deep.equal(run.chain.links.map((l) => l.entryCount));
      expect(done.sessionTokenNets.items.length).to.equal(2);
      for (const net of done.sessionTokenNets.items) {
        expect(net.net, `token ${net.tokenIndex}`).to.equal("0");
        expect(net.credits).to.equal(net.debits);
        expect(BigInt(net.credits) > 0n, "credits").to.equal(true);
      }
      await expectBalancesMatchVault();
      const treasuryUsdc = (await indexerBalances()).get(toHexKey(deployment.treasury, d.token("USDC").address));
      expect(treasuryUsdc).to.include({ amount: (2_000n + 1_000n + 600n - 100n + 200n).toString(), lastSessionId: 1 });
    });

    it("serves each user's history through filters and relations", async function () {
      const alice = users[0]!.toLowerCase();
      const data = await graphql<{
        account: { accountId: number; balances: { items: { tokenIndex: number; amount: string }[] }; deltas: { items: { sessionId: number; tokenIndex: number; delta: string; session: { phase: string } }[] } } | null;
      }>(
        indexer.graphqlUrl,
        `query ($a: String!) {
          account(address: $a) {
            accountId
            balances(orderBy: "tokenIndex") { items { tokenIndex amount } }
            deltas(orderBy: "tokenIndex") { items { sessionId tokenIndex delta session { phase } } }
          }
        }`,
        { a: alice },
      );
      expect(data.account?.accountId).to.equal(id(users[0]!));
      const vaultView = await d.vaultBalances();
      for (const b of data.account!.balances.items) {
        const t = deployment.tokens.find((x) => x.index === b.tokenIndex)!;
        expect(BigInt(b.amount)).to.equal(vaultView.get(toHexKey(alice as Hex, t.address)));
      }
      expect(data.account!.deltas.items.map((x) => [x.sessionId, x.tokenIndex, x.session.phase])).to.deep.equal([
        [1, 0, "finalized"],
        [1, 1, "finalized"],
      ]);
    });

    it("pages through balances with cursors", async function () {
      const all = await indexerBalances();
      const paged = await indexerBalances(2);
      expect([...paged.keys()].sort()).to.deep.equal([...all.keys()].sort());
      expect(paged.size).to.be.greaterThan(4);
    });

    it("serves no SQL over HTTP", async function () {
      const sql = encodeURIComponent(JSON.stringify({ json: { sql: "select account, amount from balance", params: [] } }));
      expect((await fetch(`${indexer.url}/sql/db?sql=${sql}`)).status).to.equal(404);
    });

    it("refuses a query with three nested lists quickly with 400 and a message, while a simple query still answers", async function () {
      const slowBefore = performance.now();
      const [hostile, nested, aliased, simple] = await Promise.all([
        postGraphql(indexer.graphqlUrl, { query: THREE_NESTED_LISTS }),
        postGraphql(indexer.graphqlUrl, { query: THREE_NESTED_DEFAULT_LISTS }),
        postGraphql(indexer.graphqlUrl, { query: `{ ${Array.from({ length: 12 }, (_, i) => `a${i}: vaults { items { address } }`).join(" ")} }` }),
        postGraphql(indexer.graphqlUrl, { query: `{ vaults { items { accountCount } } }` }),
      ]);
      expect(hostile.status).to.equal(400);
      expect(hostile.json.errors?.[0]?.message).to.match(/more than 5000 rows/);
      expect(hostile.json.errors?.[0]?.extensions?.code).to.equal("QUERY_TOO_COMPLEX");
      expect(hostile.ms).to.be.lessThan(1_000);
      expect(nested.status).to.equal(400);
      expect(nested.json.errors?.[0]?.message).to.match(/nested inside 2 other lists/);
      expect(aliased.status).to.equal(400);
      expect(aliased.json.errors?.[0]?.message).to.match(/aliases/);
      expect(simple.status).to.equal(200);
      expect(simple.json.data).to.deep.equal({ vaults: { items: [{ accountCount: ids.size + 2 }] } });
      expect(performance.now() - slowBefore).to.be.lessThan(5_000);
    });
  });

  describe("a voided session", function () {
    it("leaves every balance untouched and drops the pending deltas", async function () {
      const [alice, bob] = users as [Hex, Hex];
      await d.startSession(2, 600n);
      const log = fillLogOf(deployment, treasuryId, 2, [
        { pairId: 1, maker: id(alice), taker: id(bob), takerSide: "buy", priceTicks: 2_000n, sizeLots: 400_000n, makerFee: 0n, takerFee: 500n },
      ]);
      const before = await indexerBalances();
      const run = await d.settle(log, { batchSize: 2, finalize: false, postBatches: 1 });
      await indexed(run.batches[0]!);
      expect((await sessionRow(2)).pendingDeltas.totalCount).to.equal(2);

      const testClient = await chain.viem.getTestClient();
      await testClient.increaseTime({ seconds: 600 + Number(GRACE_SEC) + 1 });
      await testClient.mine({ blocks: 1 });
      const anyone = d.wallets[9]!;
      const voided = await d.mined(await (await d.vaultAs(anyone)).write.voidSession([2]));
      await indexed(voided);

      const row = await sessionRow(2);
      expect(row.session).to.include({ phase: "voided", voidedBy: anyone.account.address.toLowerCase(), batchesPosted: 1 });
      expect(row.pendingDeltas.totalCount).to.equal(0);
      expect(row.deltas.totalCount).to.equal(2); // the record of what was posted stays
      const afterVoid = await indexerBalances();
      expect([...afterVoid.entries()].map(([k, v]) => [k, v.amount])).to.deep.equal([...before.entries()].map(([k, v]) => [k, v.amount]));
      await expectBalancesMatchVault();

      // The vault drops the voided pending delta when the slot is next touched: still equal.
      const last = await d.deposit(d.wallets[4]!, "PEPE", 1n * PEPE);
      await indexed(last);
      await expectBalancesMatchVault();
    });

    it("settles the next session on top of the pre-void balances", async function () {
      const [alice, bob, carol] = users as [Hex, Hex, Hex];
      await d.startSession(3, 3_600n);
      const log = fillLogOf(deployment, treasuryId, 3, [
        { pairId: 1, maker: id(bob), taker: id(alice), takerSide: "sell", priceTicks: 1_500n, sizeLots: 200_000n, makerFee: 0n, takerFee: 300n },
        { pairId: 1, maker: id(carol), taker: id(bob), takerSide: "buy", priceTicks: 1_510n, sizeLots: 50_000n, makerFee: 10n, takerFee: 80n },
      ]);
      const run = await d.settle(log, { batchSize: 4 });
      await indexed(run.finalized!);
      expect((await sessionRow(3)).session?.phase).to.equal("finalized");
      await expectBalancesMatchVault();
      // Only the voided session, cut off mid-settlement, has a token that does not net to zero.
      const nets = await graphql<{ sessionTokenNets: { items: { sessionId: number; net: string; session: { phase: string } }[] } }>(
        indexer.graphqlUrl,
        `{ sessionTokenNets(where: { net_not: "0" }) { items { sessionId net session { phase } } } }`,
      );
      expect(nets.sessionTokenNets.items.map((n) => [n.sessionId, n.session.phase])).to.deep.equal([[2, "voided"]]);
    });
  });

  describe("restart", function () {
    it("rebuilds the same balances from the chain in a fresh database", async function () {
      const fresh = await startIndexer(chain.url, deployment);
      try {
        await waitForBlock(fresh.url, await d.publicClient.getBlockNumber());
        const original = indexer;
        indexer = fresh;
        try {
          await expectBalancesMatchVault();
        } finally {
          indexer = original;
        }
      } finally {
        await fresh.stop();
      }
      await eventually("original indexer still serving", async () => ((await fetch(`${indexer.url}/ready`)).ok ? true : undefined));
    });
  });
});

describe("indexer GraphQL limits (indexer/src/api/limits.ts)", function () {
  const refusal = (query: string, variables?: Record<string, unknown>) => {
    const r = checkGraphqlRequest(variables === undefined ? { query } : { query, variables });
    return r.refusal;
  };

  it("lets the repo's own queries through", function () {
    for (const query of [
      `query ($after: String, $limit: Int) { balances(limit: $limit, after: $after, orderBy: "accountId") { items { account token amount } pageInfo { hasNextPage endCursor } } }`,
      `query ($a: String!) { account(address: $a) { accountId balances(orderBy: "tokenIndex") { items { tokenIndex amount } } deltas(orderBy: "tokenIndex") { items { sessionId tokenIndex delta session { phase } } } } }`,
      `query ($sessionId: Int!) {
        vaults(limit: 2) { items { address chainId } }
        session(sessionId: $sessionId) { sessionId phase batchRoot fillLogHash batchCount batchesPosted entryCount }
        sessionTokenNets(where: { sessionId: $sessionId }, limit: 1000) { items { tokenIndex net entryCount } }
        tokens(limit: 1000) { items { tokenIndex symbol decimals } }
      }`,
      `query ($after: String, $sessionId: Int!) { page: deltas(where: { sessionId: $sessionId }, limit: 1000, after: $after) { items { batchIndex entryIndex } pageInfo { hasNextPage endCursor } } }`,
      `{ pendingDeltas(where: { sessionId: 1 }) { totalCount } }`,
    ]) {
      expect(refusal(query, { limit: 1000, sessionId: 1, a: "0x00" }), query).to.equal(null);
    }
  });

  it("refuses three nested lists, naming the limit they break", function () {
    expect(THREE_NESTED_LISTS.length).to.be.lessThan(200);
    expect(refusal(THREE_NESTED_LISTS)).to.deep.include({ status: 400, code: "QUERY_TOO_COMPLEX" });
    expect(refusal(THREE_NESTED_LISTS)?.message).to.match(/more than 5000 rows/);
    expect(refusal(THREE_NESTED_DEFAULT_LISTS)?.message).to.match(/list deltas is nested inside 2 other lists; the limit is 2 lists deep/);
  });

  it("refuses two nested lists whose limits multiply past the row budget, counting variables and their defaults", function () {
    const nested = (outer: string) => `query ($n: Int = 1000) { accounts(limit: ${outer}) { items { deltas(limit: $n) { items { delta } } } } }`;
    expect(refusal(nested("1000"))?.message).to.match(/more than 5000 rows/);
    expect(refusal(nested("$n"), { n: 80 })?.message).to.match(/more than 5000 rows/);
    expect(refusal(nested("4"), {})).to.equal(null);
    // No limit given: Ponder's default of 50 per list.
    expect(refusal(`{ accounts { items { deltas { items { delta } } } } }`)).to.equal(null);
    expect(refusal(`{ accounts(limit: 200) { items { deltas { items { delta } } } } }`)?.message).to.match(/rows/);
  });

  it("refuses depth, aliases and tokens beyond the limits", function () {
    const deep = `{ delta(id: "x") { session { deltas { items { accountInfo { balances { items { tokenInfo { address } } } } } } } } }`;
    expect(refusal(deep)?.message).to.match(/nested \d+ fields deep; the limit is 8|lists deep/);
    const oneFieldDeep = (n: number) => `{ ${"delta(id: \"x\") { session { ".repeat(n)}phase${" } }".repeat(n)} }`;
    expect(refusal(oneFieldDeep(3))).to.equal(null);
    expect(refusal(oneFieldDeep(5))?.message).to.match(/nested 9 fields deep; the limit is 8/);
    const aliases = `{ vault(address: "0x") { ${Array.from({ length: 11 }, (_, i) => `a${i}: address`).join(" ")} } }`;
    expect(refusal(aliases)?.message).to.match(/more than 10 aliases/);
    const tokens = `{ vault(address: "0x") { ${"address ".repeat(1_001)} } }`;
    expect(refusal(tokens)?.message).to.match(/more than 1000 tokens/);
  });

  it("expands fragments when measuring and refuses cycles and fragment bombs", function () {
    const viaFragments = `query { ...A } fragment A on Query { accounts(limit: 1000) { items { ...B } } } fragment B on account { deltas(limit: 1000) { items { delta } } }`;
    expect(refusal(viaFragments)?.message).to.match(/rows/);
    expect(refusal(`query { ...A } fragment A on Query { ...A }`)?.message).to.match(/spreads itself/);
    const bomb = ["fragment F0 on Query { _meta { status } }", ...Array.from({ length: 30 }, (_, i) => `fragment F${i + 1} on Query { ...F${i} ...F${i} }`)];
    expect(refusal(`query { ...F30 } ${bomb.join(" ")}`)?.message).to.match(/too complex to measure/);
  });

  it("refuses batches, non-string queries and unparsable queries as bad requests", function () {
    expect(checkGraphqlRequest([{ query: "{ vaults { items { address } } }" }]).refusal?.code).to.equal("BAD_REQUEST");
    expect(checkGraphqlRequest({ query: 1 }).refusal?.message).to.match(/query must be a string/);
    expect(checkGraphqlRequest({ query: "{ vaults { items { address } } }", variables: [] }).refusal?.message).to.match(/variables/);
    expect(refusal("{ vaults {")?.code).to.equal("BAD_REQUEST");
  });

  describe("limitedGraphql over Hono", function () {
    /** A stand-in for Ponder's graphql(): echoes the query it was given, after `delayMs`. */
    const fakePonder = (delayMs: number): MiddlewareHandler => async (c) => {
      if (c.req.method === "GET") return c.html("<html>graphiql</html>");
      const { query } = (await c.req.raw.json()) as { query: string };
      await new Promise((r) => setTimeout(r, delayMs));
      return c.json({ data: { echo: query } });
    };
    const serve = (delayMs: number, limits: Partial<typeof GRAPHQL_LIMITS> = {}) => {
      const app = new Hono();
      app.use("/graphql", ...limitedGraphql(fakePonder(delayMs), { ...GRAPHQL_LIMITS, ...limits }));
      const post = (body: string) => app.request("/graphql", { method: "POST", headers: { "content-type": "application/json" }, body });
      return { app, post };
    };
    const simple = JSON.stringify({ query: "{ vaults { items { address } } }" });

    it("passes a query within the limits to Ponder with its body, and GET (GraphiQL) untouched", async function () {
      const { app, post } = serve(0);
      const ok = await post(simple);
      expect(ok.status).to.equal(200);
      expect(await ok.json()).to.deep.equal({ data: { echo: "{ vaults { items { address } } }" } });
      expect(await (await app.request("/graphql")).text()).to.match(/graphiql/);
    });

    it("refuses an over-limit query with 400 in GraphQL's error shape without running it", async function () {
      const { post } = serve(5_000);
      const started = performance.now();
      const r = await post(JSON.stringify({ query: THREE_NESTED_LISTS }));
      expect(performance.now() - started).to.be.lessThan(500);
      expect(r.status).to.equal(400);
      const body = (await r.json()) as GraphqlErrorBody;
      expect(body.errors?.[0]?.extensions?.code).to.equal("QUERY_TOO_COMPLEX");
      expect((await post("{not json")).status).to.equal(400);
      expect((await post(JSON.stringify({ query: `{ vaults { items { ${"address ".repeat(3_000)} } } }` }))).status).to.equal(413);
    });

    it("answers 503 when a query outlives its deadline, and 503 at once beyond the concurrent queries", async function () {
      const { post } = serve(300, { timeoutMs: 50, maxConcurrent: 1 });
      const started = performance.now();
      const [late, busy] = await Promise.all([post(simple), new Promise((r) => setTimeout(r, 10)).then(() => post(simple))]);
      expect(late.status).to.equal(503);
      expect(((await late.json()) as GraphqlErrorBody).errors?.[0]?.extensions?.code).to.equal("TIMEOUT");
      expect(busy.status).to.equal(503);
      expect(((await busy.json()) as GraphqlErrorBody).errors?.[0]?.extensions?.code).to.equal("BUSY");
      expect(performance.now() - started).to.be.lessThan(250);
      // Once the slow one has finished, queries run again.
      await new Promise((r) => setTimeout(r, 350));
      const fast = serve(0, { timeoutMs: 50, maxConcurrent: 1 });
      expect((await fast.post(simple)).status).to.equal(200);
    });
  });
});
