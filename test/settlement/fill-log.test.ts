import { expect } from "chai";
import { describe, it } from "mocha";
import {
  deltasFromFillLog,
  encodeFillLog,
  FillLogError,
  hashFillLog,
  parseFillLog,
  type FillLog,
} from "../../keeper/settlement/fill-log.ts";

const USDC = 0;
const PEPE = 1;
const TREASURY = 1;
const [ALICE, BOB, CAROL] = [3, 4, 5] as const;

function sampleLog(): FillLog {
  return {
    header: {
      type: "header",
      version: 1,
      chainId: 31337,
      vault: "0x5fbdb2315678afecb367f032d93f642f64180aa3",
      sessionId: 7,
      treasury: TREASURY,
      pairs: [{ pairId: 1, symbol: "PEPE/USDC", base: PEPE, quote: USDC, lotSize: 10n ** 15n, tickSize: 1n }],
    },
    balances: [
      { type: "balance", accountId: ALICE, tokenIndex: USDC, amount: 1_000_000_000n },
      { type: "balance", accountId: ALICE, tokenIndex: PEPE, amount: 10n ** 24n },
      { type: "balance", accountId: BOB, tokenIndex: USDC, amount: 2_000_000_000n },
    ],
    events: [
      // bob lifts alice's offer: 1,000 lots (1 PEPE) at 1,200 ticks = 1,200,000 micro-USDC
      { type: "fill", seq: 1, ts: 1000, pairId: 1, maker: ALICE, taker: BOB, takerSide: "buy", priceTicks: 1_200n, sizeLots: 1_000n, makerFee: -50n, takerFee: 300n },
      // alice hits carol's bid
      { type: "fill", seq: 2, ts: 1001, pairId: 1, maker: CAROL, taker: ALICE, takerSide: "sell", priceTicks: 1_100n, sizeLots: 500n, makerFee: 0n, takerFee: 100n },
      // the closing cross moves carol's short USDC to the insurance fund's account 2
      { type: "transfer", seq: 3, ts: 2000, tokenIndex: USDC, from: 2, to: CAROL, amount: 550_000n, reason: "closing_cross" },
    ],
  };
}

describe("fill log (keeper/settlement/fill-log.ts)", function () {
  describe("encodeFillLog / parseFillLog", function () {
    it("round-trips to the same log and the same bytes", function () {
      const text = encodeFillLog(sampleLog());
      const parsed = parseFillLog(text);
      expect(parsed.ok).to.equal(true);
      if (!parsed.ok) return;
      expect(parsed.log).to.deep.equal(sampleLog());
      expect(encodeFillLog(parsed.log)).to.equal(text);
    });

    it("writes one JSON record per line, money as decimal strings, ending with a newline", function () {
      const lines = encodeFillLog(sampleLog()).split("\n");
      expect(lines.at(-1)).to.equal("");
      expect(lines.length - 1).to.equal(1 + 3 + 3);
      expect(lines[1]).to.equal('{"type":"balance","accountId":3,"tokenIndex":0,"amount":"1000000000"}');
      expect(lines[4]).to.equal(
        '{"type":"fill","seq":1,"ts":1000,"pairId":1,"maker":3,"taker":4,"takerSide":"buy","priceTicks":"1200","sizeLots":"1000","makerFee":"-50","takerFee":"300"}',
      );
    });

    it("rejects text that is not in canonical form, naming the line", function () {
      const text = encodeFillLog(sampleLog());
      const spaced = text.replace('"seq":2,', '"seq": 2,');
      expect(parseFillLog(spaced)).to.deep.include({ ok: false, code: "not_canonical", line: 6 });
      const reordered = text.replace('{"type":"balance","accountId":3,"tokenIndex":0,', '{"accountId":3,"type":"balance","tokenIndex":0,');
      expect(parseFillLog(reordered)).to.deep.include({ ok: false, code: "not_canonical", line: 2 });
      expect(parseFillLog(text.slice(0, -1))).to.deep.include({ ok: false, code: "not_canonical" });
    });

    it("rejects bad records with the field at fault", function () {
      const text = encodeFillLog(sampleLog());
      expect(parseFillLog(text.replace('"sizeLots":"500"', '"sizeLots":"0"'))).to.deep.include({ ok: false, code: "bad_record", line: 6, field: "sizeLots" });
      expect(parseFillLog(text.replace('"amount":"550000"', '"amount":550000'))).to.deep.include({ ok: false, code: "bad_record", line: 7, field: "amount" });
      expect(parseFillLog(text.replace('"pairId":1,"maker":5', '"pairId":9,"maker":5'))).to.deep.include({ ok: false, code: "inconsistent", line: 6, field: "pairId" });
      expect(parseFillLog(text.replace('"seq":3', '"seq":2'))).to.deep.include({ ok: false, code: "bad_order", line: 7, field: "seq" });
      expect(parseFillLog(text.replace('"takerSide":"sell"', '"takerSide":"short"'))).to.deep.include({ ok: false, field: "takerSide" });
      expect(parseFillLog("not json\n")).to.deep.include({ ok: false, code: "malformed_json", line: 1 });
      expect(parseFillLog(text.split("\n").slice(1).join("\n"))).to.deep.include({ ok: false, code: "bad_order", line: 1 });
    });

    it("refuses to encode an invalid log (a keeper bug)", function () {
      const log = sampleLog();
      log.balances.reverse();
      expect(() => encodeFillLog(log)).to.throw(FillLogError, /sorted by \(accountId, tokenIndex\)/);
      const self = sampleLog();
      const fill = self.events[0]!;
      if (fill.type === "fill") fill.taker = fill.maker;
      expect(() => encodeFillLog(self)).to.throw(FillLogError, /self-trade/);
    });
  });

  describe("hashFillLog", function () {
    it("is keccak256 of the bytes, the same for a string and its UTF-8 bytes", function () {
      const text = encodeFillLog(sampleLog());
      expect(hashFillLog(text)).to.equal(hashFillLog(new TextEncoder().encode(text)));
      expect(hashFillLog(text)).to.match(/^0x[0-9a-f]{64}$/);
      expect(hashFillLog(text.replace('"ts":1000', '"ts":1002'))).to.not.equal(hashFillLog(text));
    });
  });

  describe("deltasFromFillLog", function () {
    it("recomputes every (account, token) delta from fills, fees and transfers", function () {
      const base1 = 1_000n * 10n ** 15n;
      const quote1 = 1_200n * 1_000n;
      const base2 = 500n * 10n ** 15n;
      const quote2 = 1_100n * 500n;
      expect(deltasFromFillLog(sampleLog())).to.deep.equal([
        { accountId: TREASURY, tokenIndex: USDC, delta: -50n + 300n + 100n },
        { accountId: 2, tokenIndex: USDC, delta: -550_000n },
        { accountId: ALICE, tokenIndex: USDC, delta: quote1 + 50n + quote2 - 100n },
        { accountId: ALICE, tokenIndex: PEPE, delta: -base1 - base2 },
        { accountId: BOB, tokenIndex: USDC, delta: -quote1 - 300n },
        { accountId: BOB, tokenIndex: PEPE, delta: base1 },
        { accountId: CAROL, tokenIndex: PEPE, delta: base2 },
      ]);
    });

    it("nets to zero per token and leaves out zero deltas", function () {
      const deltas = deltasFromFillLog(sampleLog());
      for (const token of [USDC, PEPE]) {
        expect(deltas.filter((d) => d.tokenIndex === token).reduce((sum, d) => sum + d.delta, 0n)).to.equal(0n);
      }
      // carol's USDC is exactly restored by the transfer: -550,000 + 550,000
      expect(deltas.find((d) => d.accountId === CAROL && d.tokenIndex === USDC)).to.equal(undefined);
    });
  });
});
