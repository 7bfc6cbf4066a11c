// Settlement gas benchmark: npm run bench:settle
// Deploys the vault on an in-process Hardhat network (keeper/chain/deploy.ts) and settles sessions
// of 10, 100 and 1,000 participants with deltas in two tokens each (USDC and PEPE): a first
// session (each participant's first: one delta on the token it deposited, one on a fresh slot)
// and a second one (returning participants: both slots carry the first session's pending delta).
// Batches are cut by the keeper's default sizing (splitIntoBatches: a gas bound from the entries,
// at most DEFAULT_MAX_GAS_PER_BATCH). Gas per delta is the transactions' gasUsed (21,000 base,
// calldata, execution, log) divided by the entries they carry. Every batch sent is checked
// against batchGasBound, the bound the keeper sizes by. Then it searches, with eth_estimateGas,
// the largest batch that fits the EIP-7825 per-transaction cap of 16,777,216 gas, for fresh slots
// and for returning ones. Between sessions it moves the chain's clock past the vault's challenge
// window and session gap (evm_increaseTime), as the keeper does on a local chain.
// Ends with one JSON line: {"bench":"settle","returningDeltaGas":…,"firstDeltaGas":…,"finalizeGas":…,"maxDeltasPerTx":…}
import { network } from "hardhat";
import { keccak256, maxUint256, parseUnits, toHex, type Address, type Hash, type Hex } from "viem";
import {
  BATCH_GAS,
  batchGasBound,
  buildBatchChain,
  DEFAULT_MAX_GAS_PER_BATCH,
  encodeEntries,
  batchLinkHash,
  splitIntoBatches,
  TX_GAS_CAP as KEEPER_TX_GAS_CAP,
  ZERO_HASH,
  type SettlementEntry,
} from "../keeper/settlement/batches.ts";
import { deployCME } from "../keeper/chain/deploy.ts";

const TX_GAS_CAP = BigInt(KEEPER_TX_GAS_CAP); // EIP-7825
const SIZES = [10, 100, 1_000];
const USDC = (n: number) => parseUnits(String(n), 6);
const MEME = (n: number) => parseUnits(String(n), 18);
const T = { usdc: 0, pepe: 1, wif: 2, bonk: 3 } as const;

const { viem, networkHelpers } = await network.create();
const publicClient = await viem.getPublicClient();
const [funder, settler, treasury, insurance] = await viem.getWalletClients();
if (!funder || !settler || !treasury || !insurance) throw new Error("need 4 accounts");
const settlerAccount = settler.account;
const record = await deployCME(viem, {
  settler: settler.account.address,
  treasury: treasury.account.address,
  insurance: insurance.account.address,
  gracePeriod: 3_600n,
  mocks: true,
});
const vault = await viem.getContractAt("CMEVault", record.vault);
const tokens = await Promise.all(record.tokens.map((t) => viem.getContractAt("MockMemecoin", t.address)));
const asSettler = { account: settler.account };
const TREASURY_ID = 1;
const MAKER_ID = 2; // the insurance account doubles as the market maker for WIF/BONK payouts

for (const t of tokens) {
  await t.write.mint([funder.account.address, maxUint256 / 4n]);
  await t.write.approve([vault.address, maxUint256]);
}
// the maker holds WIF and BONK to pay out in the capacity probe
await vault.write.depositFor([insurance.account.address, tokens[T.wif]!.address, MEME(1e12)]);
await vault.write.depositFor([insurance.account.address, tokens[T.bonk]!.address, MEME(1e12)]);

// deterministic pseudo-random amounts (no Math.random: the run is reproducible)
let seed = 0x2545f491n;
function rand(max: number): number {
  seed = (seed * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
  return Number(seed >> 33n) % max;
}

interface Pool {
  buyers: number[]; // account ids that deposited USDC
  sellers: number[]; // account ids that deposited PEPE
}

let nextAddress = 0xc0de0000;
async function makePool(n: number): Promise<Pool> {
  const pool: Pool = { buyers: [], sellers: [] };
  for (let i = 0; i < n; i++) {
    const who = `0x${(nextAddress++).toString(16).padStart(40, "0")}` as Address;
    const buyer = i % 2 === 0;
    const token = tokens[buyer ? T.usdc : T.pepe]!;
    await vault.write.depositFor([who, token.address, buyer ? USDC(10_000) : MEME(100_000_000)]);
    (buyer ? pool.buyers : pool.sellers).push(await vault.read.accountIdOf([who]));
  }
  return pool;
}

/** Session 1: buyer i buys PEPE from seller i; the treasury takes a USDC fee from both. */
function firstSession(pool: Pool): { existing: SettlementEntry[]; fresh: SettlementEntry[] } {
  const existing: SettlementEntry[] = [];
  const fresh: SettlementEntry[] = [];
  let fees = 0n;
  pool.buyers.forEach((buyer, i) => {
    const seller = pool.sellers[i]!;
    const quote = USDC(100 + rand(4_900)) + BigInt(rand(1_000_000));
    const base = MEME(10_000 + rand(1_000_000)) + BigInt(rand(1_000_000_000));
    const fee = quote / 1_000n;
    fees += 2n * fee;
    existing.push({ accountId: buyer, tokenIndex: T.usdc, delta: -(quote + fee) });
    existing.push({ accountId: seller, tokenIndex: T.pepe, delta: -base });
    fresh.push({ accountId: buyer, tokenIndex: T.pepe, delta: base });
    fresh.push({ accountId: seller, tokenIndex: T.usdc, delta: quote - fee });
  });
  fresh.push({ accountId: TREASURY_ID, tokenIndex: T.usdc, delta: fees });
  return { existing, fresh };
}

/** Session 2: the same pairs trade back part of the position; every slot is a returning one. */
function secondSession(pool: Pool, first: SettlementEntry[]): SettlementEntry[] {
  const held = new Map(first.filter((e) => e.delta > 0n).map((e) => [e.accountId * 256 + e.tokenIndex, e.delta]));
  const entries: SettlementEntry[] = [];
  let fees = 0n;
  pool.buyers.forEach((buyer, i) => {
    const seller = pool.sellers[i]!;
    const base = held.get(buyer * 256 + T.pepe)! / 2n;
    const quote = held.get(seller * 256 + T.usdc)! / 2n;
    const fee = quote / 1_000n;
    fees += 2n * fee;
    entries.push({ accountId: buyer, tokenIndex: T.pepe, delta: -base });
    entries.push({ accountId: buyer, tokenIndex: T.usdc, delta: quote - fee });
    entries.push({ accountId: seller, tokenIndex: T.pepe, delta: base });
    entries.push({ accountId: seller, tokenIndex: T.usdc, delta: -(quote + fee) });
  });
  entries.push({ accountId: TREASURY_ID, tokenIndex: T.usdc, delta: fees });
  return entries;
}

interface TxGas {
  gas: bigint;
  calldataGas: bigint;
  entries: number;
}

/** The vault's clock rules: wait out the session gap before starting, the challenge window before finalizing. */
async function reachChainTime(at: bigint): Promise<void> {
  const now = BigInt(await networkHelpers.time.latest());
  if (now < at) await networkHelpers.time.increaseTo(at);
}

async function startNext(deadlineIn: bigint): Promise<{ id: number; hash: Hash }> {
  await reachChainTime(await vault.read.nextSessionAt());
  const id = (await vault.read.currentSessionId()) + 1;
  const now = BigInt(await networkHelpers.time.latest());
  return { id, hash: await vault.write.startSession([id, now + 1n + deadlineIn], asSettler) };
}

let worstBoundRatio = 0;
/**
 * Checks a posted batch's gas against the bound the keeper sizes batches by. gasUsed is net of
 * refunds; the last batch's (clearing the chain head) is at most 4,800, so add it back.
 */
function checkBound(batch: SettlementEntry[], gasUsed: bigint): void {
  const bound = batchGasBound(batch);
  const gas = gasUsed + 4_800n;
  worstBoundRatio = Math.max(worstBoundRatio, Number(gas) / bound);
  if (gas > BigInt(bound)) throw new Error(`a batch of ${batch.length} entries used ${gas} gas, above its bound ${bound}`);
}

async function gasOf(hash: Hash, entries = 0): Promise<TxGas> {
  const [receipt, tx] = await Promise.all([
    publicClient.waitForTransactionReceipt({ hash }),
    publicClient.getTransaction({ hash }),
  ]);
  if (receipt.status !== "success") throw new Error(`transaction ${hash} reverted`);
  let calldataGas = 0n;
  for (let i = 2; i < tx.input.length; i += 2) calldataGas += tx.input.slice(i, i + 2) === "00" ? 4n : 16n;
  return { gas: receipt.gasUsed, calldataGas, entries };
}

interface SessionGas {
  start: bigint;
  begin: bigint;
  batches: TxGas[];
  finalize: bigint;
}

/** Runs one session; `groups` are batched separately so each group's cost can be read apart. */
async function runSession(groups: SettlementEntry[][]): Promise<SessionGas> {
  const started = await startNext(86_400n);
  const id = started.id;
  const start = await gasOf(started.hash);
  const batches = groups.flatMap((g) => splitIntoBatches(g));
  const chain = buildBatchChain(id, batches);
  const begin = await gasOf(
    await vault.write.beginSettlement([id, chain.root, chain.links.length, keccak256(toHex(`fills ${id}`))], asSettler),
  );
  const posted: TxGas[] = [];
  for (const l of chain.links) {
    const sent = await gasOf(await vault.write.postBatch([id, l.index, l.entries, l.next], asSettler), l.entryCount);
    checkBound(batches[l.index]!, sent.gas);
    posted.push(sent);
  }
  await reachChainTime(BigInt((await vault.read.session([id])).finalizableAt));
  const finalize = await gasOf(await vault.write.finalize([id], asSettler));
  return { start: start.gas, begin: begin.gas, batches: posted, finalize: finalize.gas };
}

const perDelta = (txs: TxGas[]) =>
  Number(txs.reduce((s, t) => s + t.gas, 0n)) / txs.reduce((s, t) => s + t.entries, 0);
const calldataPerDelta = (txs: TxGas[]) =>
  Number(txs.reduce((s, t) => s + t.calldataGas, 0n)) / txs.reduce((s, t) => s + t.entries, 0);

interface Row {
  participants: number;
  first: SessionGas;
  firstExisting: TxGas[];
  firstFresh: TxGas[];
  second: SessionGas;
}

const rows: Row[] = [];
const pools: Pool[] = [];
for (const n of SIZES) {
  const pool = await makePool(n);
  pools.push(pool);
  const { existing, fresh } = firstSession(pool);
  const first = await runSession([existing, fresh]);
  const existingBatches = splitIntoBatches(existing).length;
  const second = await runSession([secondSession(pool, [...existing, ...fresh])]);
  rows.push({
    participants: n,
    first,
    firstExisting: first.batches.slice(0, existingBatches),
    firstFresh: first.batches.slice(existingBatches),
    second,
  });
}

// ---------------------------------------------------------------- capacity under the EIP-7825 cap

/** Largest k such that a one-batch session of entries[0..k) needs at most the cap (estimateGas). */
async function maxBatch(entries: SettlementEntry[]): Promise<{ k: number; gasUsed: bigint }> {
  const { id } = await startNext(86_400n);
  const trading = await networkHelpers.takeSnapshot();
  const estimate = async (k: number): Promise<bigint> => {
    await trading.restore();
    const packed: Hex = encodeEntries(entries.slice(0, k));
    await vault.write.beginSettlement([id, batchLinkHash(id, 0, packed, ZERO_HASH), 1, ZERO_HASH], asSettler);
    try {
      return await publicClient.estimateContractGas({
        address: vault.address,
        abi: vault.abi,
        functionName: "postBatch",
        args: [id, 0, packed, ZERO_HASH],
        account: settlerAccount,
      });
    } catch (err) {
      // beyond the block gas limit the node refuses to estimate: that is "too big" as well
      if (/gas/i.test(String(err))) return TX_GAS_CAP * 4n;
      throw err;
    }
  };
  let lo = 1;
  let hi = entries.length;
  if ((await estimate(hi)) <= TX_GAS_CAP) throw new Error(`probe needs more than ${hi} entries`);
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if ((await estimate(mid)) <= TX_GAS_CAP) lo = mid;
    else hi = mid;
  }
  // prove it: send the largest batch with exactly the cap as gas limit
  const packed = encodeEntries(entries.slice(0, lo));
  await trading.restore();
  await vault.write.beginSettlement([id, batchLinkHash(id, 0, packed, ZERO_HASH), 1, ZERO_HASH], asSettler);
  const sent = await gasOf(await vault.write.postBatch([id, 0, packed, ZERO_HASH], { ...asSettler, gas: TX_GAS_CAP }));
  if (sent.gas > TX_GAS_CAP) throw new Error("largest batch exceeded the cap");
  checkBound(entries.slice(0, lo), sent.gas);
  // leave no running session behind: the probe session is voided
  await networkHelpers.time.increase(86_400n + 3_600n);
  await vault.write.voidSession([id]);
  return { k: lo, gasUsed: sent.gas };
}

// The 1,000-participant pool's WIF and BONK slots are still fresh: credit them from the maker.
const big = pools[pools.length - 1]!;
const members = [...big.buyers, ...big.sellers];
const payout = (tokenIndex: number) =>
  members.map((accountId) => ({ accountId, tokenIndex, delta: MEME(1 + rand(100_000)) + BigInt(rand(1e9)) }));
const freshProbe = [...payout(T.wif), ...payout(T.bonk)];
const maxFresh = await maxBatch(freshProbe);

// Make those slots returning (one finalized session), then probe returning slots on all 4 tokens.
const wifBonk = [...payout(T.wif), ...payout(T.bonk)];
const paid = (tokenIndex: number) => wifBonk.filter((e) => e.tokenIndex === tokenIndex).reduce((s, e) => s + e.delta, 0n);
await runSession([
  wifBonk,
  [
    { accountId: MAKER_ID, tokenIndex: T.wif, delta: -paid(T.wif) },
    { accountId: MAKER_ID, tokenIndex: T.bonk, delta: -paid(T.bonk) },
  ],
]);
const returningProbe: SettlementEntry[] = [];
for (const accountId of members) {
  for (const tokenIndex of [T.usdc, T.pepe, T.wif, T.bonk]) {
    // half debits, half credits (a debit's 0xff bytes cost more calldata), each debit well
    // inside what the account holds after the sessions above
    const debit = rand(2) === 0;
    const amount =
      tokenIndex === T.usdc
        ? USDC(1 + rand(40)) + BigInt(rand(1e6))
        : tokenIndex === T.pepe
          ? MEME(1 + rand(1_000)) + BigInt(rand(1e9))
          : MEME(1) / 2n + BigInt(rand(1e9));
    returningProbe.push({ accountId, tokenIndex, delta: debit ? -amount : amount });
  }
}
const maxReturning = await maxBatch(returningProbe);

// ---------------------------------------------------------------- report

const fmt = (x: number | bigint) => Math.round(Number(x)).toLocaleString("en-US");
const pad = (s: string, n: number) => s.padStart(n);
console.log(`\nSettlement gas, CMEVault (${record.tokens.length} tokens listed), batches sized by the keeper's gas bound (<= ${fmt(DEFAULT_MAX_GAS_PER_BATCH)})`);
console.log("gas per delta = postBatch gasUsed (incl. 21,000 base and calldata) / entries\n");
const header = [
  "participants",
  "deltas",
  "batches",
  "1st session /delta",
  "fresh slot /delta",
  "deposit slot /delta",
  "returning /delta",
  "gas /batch (max)",
  "finalize",
];
const widths = header.map((h) => Math.max(h.length, 10));
console.log(header.map((h, i) => pad(h, widths[i]!)).join("  "));
for (const r of rows) {
  const all = [...r.first.batches, ...r.second.batches];
  const cells = [
    String(r.participants),
    `${r.first.batches.reduce((s, b) => s + b.entries, 0)}+${r.second.batches.reduce((s, b) => s + b.entries, 0)}`,
    `${r.first.batches.length}+${r.second.batches.length}`,
    fmt(perDelta(r.first.batches)),
    fmt(perDelta(r.firstFresh)),
    fmt(perDelta(r.firstExisting)),
    fmt(perDelta(r.second.batches)),
    fmt(all.reduce((m, b) => (b.gas > m ? b.gas : m), 0n)),
    `${fmt(r.first.finalize)} / ${fmt(r.second.finalize)}`,
  ];
  console.log(cells.map((c, i) => pad(c, widths[i]!)).join("  "));
}
const last = rows[rows.length - 1]!;
console.log(
  `\nper session: startSession ${fmt(last.second.start)}, beginSettlement ${fmt(last.second.begin)}, finalize ${fmt(last.second.finalize)} (same for every size: it loops over listed tokens only)`,
);

// what a returning delta is made of (1,000 participants, second session)
const returning = perDelta(last.second.batches);
const calldata = calldataPerDelta(last.second.batches);
const txBase = (21_000 * last.second.batches.length) / last.second.batches.reduce((s, b) => s + b.entries, 0);
const storage = 5_000; // cold SLOAD 2,100 + SSTORE of a dirty non-zero slot 2,900 (EIP-2929/2200)
const log = 8 * 21; // the entry's 21 bytes in BatchPosted's data
const rest = returning - calldata - txBase - storage - log;
console.log(`\nreturning delta (${fmt(returning)} gas) is:`);
console.log(`  storage  ${pad(fmt(storage), 6)}  one slot: cold SLOAD + rewrite of the lazy word (the floor)`);
console.log(`  calldata ${pad(fmt(calldata), 6)}  21 bytes, 16 gas per non-zero byte`);
console.log(`  log      ${pad(fmt(log), 6)}  the entry in BatchPosted (indexer reads every delta from it)`);
console.log(`  21,000   ${pad(fmt(txBase), 6)}  transaction base, amortized`);
console.log(`  rest     ${pad(fmt(rest), 6)}  decode, checks, fold, per-token net, per-batch chain check`);
console.log(`storage dominates (${Math.round((storage / returning) * 100)}%); a fresh slot costs the 20,000 gas zero-to-non-zero write instead.`);

console.log(`\nlargest batch under the ${fmt(TX_GAS_CAP)} gas cap (EIP-7825): searched with eth_estimateGas, then sent`);
console.log(`with that gas limit (one more entry does not fit):`);
console.log(`  returning slots: ${pad(fmt(maxReturning.k), 5)} deltas, gasUsed ${fmt(maxReturning.gasUsed)}`);
console.log(`  fresh slots:     ${pad(fmt(maxFresh.k), 5)} deltas, gasUsed ${fmt(maxFresh.gasUsed)}`);
const defaultFresh = splitIntoBatches(freshProbe)[0]!.length;
console.log(`  keeper default sizing: ${defaultFresh} fresh-slot deltas per batch (bound ${fmt(batchGasBound(freshProbe.slice(0, defaultFresh)))} gas)`);
console.log(
  `\nkeeper's gas bound: ${fmt(BATCH_GAS.perBatch)} per batch + ${fmt(BATCH_GAS.perEntry)} per entry + ${fmt(BATCH_GAS.perToken)} per token touched (+ memory); every batch sent used at most ${Math.round(worstBoundRatio * 100)}% of its bound`,
);
if (defaultFresh > maxFresh.k) throw new Error("the keeper's default batch does not fit the cap");

console.log(
  JSON.stringify({
    bench: "settle",
    returningDeltaGas: Math.round(returning),
    firstDeltaGas: Math.round(perDelta(last.firstFresh)),
    finalizeGas: Number(last.second.finalize),
    maxDeltasPerTx: maxReturning.k,
  }),
);
