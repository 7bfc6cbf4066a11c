import { expect } from "chai";
import { describe, it } from "mocha";
import { encodeEntries, MAX_DELTA, MIN_DELTA } from "../../keeper/settlement/batches.ts";
import { decodeEntries, MalformedEntriesError } from "../../indexer/src/entries.ts";

describe("indexer entries decoding (indexer/src/entries.ts)", function () {
  describe("decodeEntries", function () {
    it("reads back what the keeper packs, signs and extremes included", function () {
      const entries = [
        { accountId: 1, tokenIndex: 0, delta: 5_000_000n },
        { accountId: 0xffff_ffff, tokenIndex: 254, delta: -1n },
        { accountId: 42, tokenIndex: 3, delta: MAX_DELTA },
        { accountId: 43, tokenIndex: 3, delta: MIN_DELTA },
        { accountId: 7, tokenIndex: 1, delta: 0n },
      ];
      expect(decodeEntries(encodeEntries(entries))).to.deep.equal(entries);
    });

    it("reads the full int128 range the event can carry", function () {
      const min = `0x00000001${"00"}80${"00".repeat(15)}` as const;
      expect(decodeEntries(min)).to.deep.equal([{ accountId: 1, tokenIndex: 0, delta: -(2n ** 127n) }]);
    });

    it("decodes an empty batch to no entries", function () {
      expect(decodeEntries("0x")).to.deep.equal([]);
    });

    it("refuses a length that is not a multiple of 21 bytes", function () {
      expect(() => decodeEntries(`0x${"00".repeat(22)}`)).to.throw(MalformedEntriesError, /multiple of 21 bytes, got 22/);
    });
  });
});
