import { expect } from "chai";
import { concatHex, encodeAbiParameters, keccak256, numberToHex, type Hex } from "viem";
import {
  BATCH_GAS,
  batchGasBound,
  batchLinkHash,
  buildBatchChain,
  DEFAULT_MAX_ENTRIES_PER_BATCH,
  DEFAULT_MAX_GAS_PER_BATCH,
  decodeEntries,
  encodeEntries,
  MAX_DELTA,
  MIN_DELTA,
  netByToken,
  SettlementEncodingError,
  splitIntoBatches,
  TX_GAS_CAP,
  ZERO_HASH,
  type SettlementEntry,
} from "../../keeper/settlement/batches.ts";

const entries: SettlementEntry[] = [
  { accountId: 3, tokenIndex: 0, delta: -1_001_000_000n },
  { accountId: 3, tokenIndex: 1, delta: 10n ** 23n },
  { accountId: 4, tokenIndex: 1, delta: -(10n ** 23n) },
  { accountId: 4, tokenIndex: 0, delta: 1_000_000_000n },
  { accountId: 1, tokenIndex: 0, delta: 1_000_000n },
];

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(SettlementEncodingError);
    return (err as SettlementEncodingError).details.field;
  }
  return undefined;
}

describe("settlement-batches", () => {
  describe("encodeEntries", () => {
    it("packs uint32 accountId | uint8 tokenIndex | int128 delta big-endian", () => {
      expect(encodeEntries([{ accountId: 1, tokenIndex: 2, delta: -1n }])).to.equal(`0x0000000102${"ff".repeat(16)}`);
      expect(encodeEntries([{ accountId: 0xdeadbeef, tokenIndex: 254, delta: 0x1234n }])).to.equal(
        `0xdeadbeeffe${"00".repeat(14)}1234`,
      );
      expect(encodeEntries([])).to.equal("0x");
    });

    it("matches an independent encodePacked of the same fields", () => {
      const packed = concatHex(
        entries.map((e) =>
          concatHex([
            numberToHex(e.accountId, { size: 4 }),
            numberToHex(e.tokenIndex, { size: 1 }),
            numberToHex(e.delta, { size: 16, signed: true }),
          ]),
        ),
      );
      expect(encodeEntries(entries)).to.equal(packed);
    });

    it("accepts the int112 bounds and refuses bad fields by name", () => {
      const bounds = [
        { accountId: 1, tokenIndex: 0, delta: MIN_DELTA },
        { accountId: 2 ** 32 - 1, tokenIndex: 254, delta: MAX_DELTA },
      ];
      expect(decodeEntries(encodeEntries(bounds))).to.deep.equal(bounds);
      expect(fieldOf(() => encodeEntries([{ accountId: 0, tokenIndex: 0, delta: 1n }]))).to.equal("accountId");
      expect(fieldOf(() => encodeEntries([{ accountId: 2 ** 32, tokenIndex: 0, delta: 1n }]))).to.equal("accountId");
      expect(fieldOf(() => encodeEntries([{ accountId: 1.5, tokenIndex: 0, delta: 1n }]))).to.equal("accountId");
      expect(fieldOf(() => encodeEntries([{ accountId: 1, tokenIndex: 255, delta: 1n }]))).to.equal("tokenIndex");
      expect(fieldOf(() => encodeEntries([{ accountId: 1, tokenIndex: -1, delta: 1n }]))).to.equal("tokenIndex");
      expect(fieldOf(() => encodeEntries([{ accountId: 1, tokenIndex: 0, delta: MAX_DELTA + 1n }]))).to.equal("delta");
      expect(fieldOf(() => encodeEntries([{ accountId: 1, tokenIndex: 0, delta: MIN_DELTA - 1n }]))).to.equal("delta");
      expect(fieldOf(() => encodeEntries([{ accountId: 1, tokenIndex: 0, delta: 5 as unknown as bigint }]))).to.equal(
        "delta",
      );
    });
  });

  describe("decodeEntries", () => {
    it("inverts encodeEntries", () => {
      expect(decodeEntries(encodeEntries(entries))).to.deep.equal(entries);
    });

    it("refuses data that is not whole entries", () => {
      expect(fieldOf(() => decodeEntries(`0x${"00".repeat(22)}`))).to.equal("entries");
    });
  });

  describe("splitIntoBatches", () => {
    it("cuts in order into batches of at most the given size", () => {
      const batches = splitIntoBatches(entries, 2);
      expect(batches.map((b) => b.length)).to.deep.equal([2, 2, 1]);
      expect(batches.flat()).to.deep.equal(entries);
      expect(splitIntoBatches([], 2)).to.deep.equal([]);
      expect(splitIntoBatches(entries, 10)).to.deep.equal([entries]);
    });

    it("refuses a size below one or not an integer", () => {
      expect(fieldOf(() => splitIntoBatches(entries, 0))).to.equal("maxEntriesPerBatch");
      expect(fieldOf(() => splitIntoBatches(entries, 1.5))).to.equal("maxEntriesPerBatch");
    });

    it("keeps every batch within the gas budget by its bound, whatever the entries", () => {
      // 255 tokens x 10 accounts, every entry priced as a fresh slot
      const many: SettlementEntry[] = [];
      for (let t = 0; t < 255; t++) for (let a = 1; a <= 10; a++) many.push({ accountId: a, tokenIndex: t, delta: 1n });
      const batches = splitIntoBatches(many, 100_000);
      expect(batches.flat()).to.deep.equal(many);
      for (const b of batches) expect(batchGasBound(b)).to.be.at.most(DEFAULT_MAX_GAS_PER_BATCH);
      // full: one more entry would not fit
      for (const [i, b] of batches.slice(0, -1).entries()) {
        expect(batchGasBound([...b, batches[i + 1]![0]!])).to.be.above(DEFAULT_MAX_GAS_PER_BATCH);
      }
      // a smaller budget cuts smaller batches
      const small = splitIntoBatches(many, 100_000, 1_000_000);
      for (const b of small) expect(batchGasBound(b)).to.be.at.most(1_000_000);
      expect(small.length).to.be.greaterThan(batches.length);
    });

    it("bounds a batch by its entries and the tokens they touch, well under the EIP-7825 cap", () => {
      const one = batchGasBound([entries[0]!]);
      expect(one).to.be.at.least(BATCH_GAS.perBatch + BATCH_GAS.perEntry + BATCH_GAS.perToken);
      const twoTokens = batchGasBound(entries.slice(0, 2));
      const oneToken = batchGasBound([entries[0]!, { ...entries[0]!, accountId: 9 }]);
      expect(twoTokens - oneToken).to.equal(BATCH_GAS.perToken);
      expect(DEFAULT_MAX_GAS_PER_BATCH * 1.2 + 10_000).to.be.below(TX_GAS_CAP); // the tx sender's margin
      // the default: the gas budget binds before the entry cap when every slot may be fresh
      const fresh = Array.from({ length: DEFAULT_MAX_ENTRIES_PER_BATCH }, (_, i) => ({ accountId: i + 1, tokenIndex: 0, delta: 1n }));
      expect(splitIntoBatches(fresh)[0]!.length).to.be.within(450, DEFAULT_MAX_ENTRIES_PER_BATCH - 1);
    });

    it("refuses a gas budget below one entry's bound or above the EIP-7825 cap", () => {
      expect(fieldOf(() => splitIntoBatches(entries, 10, 1_000))).to.equal("maxGasPerBatch");
      expect(fieldOf(() => splitIntoBatches(entries, 10, TX_GAS_CAP + 1))).to.equal("maxGasPerBatch");
      expect(fieldOf(() => splitIntoBatches(entries, 10, 1.5e6 + 0.5))).to.equal("maxGasPerBatch");
    });
  });

  describe("buildBatchChain", () => {
    it("links h_i = keccak256(abi.encode(sessionId, i, keccak256(entries_i), h_{i+1})) down to zero", () => {
      const chain = buildBatchChain(7, splitIntoBatches(entries, 2));
      expect(chain.links.map((l) => [l.index, l.entryCount])).to.deep.equal([
        [0, 2],
        [1, 2],
        [2, 1],
      ]);
      expect(chain.links[2]!.next).to.equal(ZERO_HASH);
      const h = (i: number, e: Hex, next: Hex) =>
        keccak256(
          encodeAbiParameters(
            [{ type: "uint32" }, { type: "uint32" }, { type: "bytes32" }, { type: "bytes32" }],
            [7, i, keccak256(e), next],
          ),
        );
      const h2 = h(2, chain.links[2]!.entries, ZERO_HASH);
      const h1 = h(1, chain.links[1]!.entries, h2);
      expect(chain.links[1]!.next).to.equal(h2);
      expect(chain.links[0]!.next).to.equal(h1);
      expect(chain.root).to.equal(h(0, chain.links[0]!.entries, h1));
      expect(batchLinkHash(7, 0, chain.links[0]!.entries, h1)).to.equal(chain.root);
    });

    it("binds the session id: the same batches chain to another root in another session", () => {
      const batches = splitIntoBatches(entries, 2);
      expect(buildBatchChain(1, batches).root).to.not.equal(buildBatchChain(2, batches).root);
    });

    it("has root zero and no links without batches", () => {
      expect(buildBatchChain(1, [])).to.deep.equal({ root: ZERO_HASH, links: [] });
    });

    it("refuses empty batches, duplicate (account, token) pairs and bad session ids", () => {
      expect(fieldOf(() => buildBatchChain(1, [entries, []]))).to.equal("batches");
      expect(fieldOf(() => buildBatchChain(1, [entries.slice(0, 2), entries.slice(0, 1)]))).to.equal("batches");
      expect(fieldOf(() => buildBatchChain(0, [entries]))).to.equal("sessionId");
      expect(fieldOf(() => buildBatchChain(2 ** 32, [entries]))).to.equal("sessionId");
    });
  });

  describe("netByToken", () => {
    it("sums deltas per token", () => {
      expect([...netByToken(entries)]).to.deep.equal([
        [0, 0n],
        [1, 0n],
      ]);
      expect(netByToken([{ accountId: 1, tokenIndex: 3, delta: 5n }]).get(3)).to.equal(5n);
    });
  });
});
