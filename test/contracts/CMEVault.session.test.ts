import { expect } from "chai";
import { network } from "hardhat";
import type { NetworkConnection } from "hardhat/types/network";
import { keccak256, parseEventLogs, toHex, type Hex } from "viem";
import {
  batchGasBound,
  batchLinkHash,
  buildBatchChain,
  DEFAULT_MAX_GAS_PER_BATCH,
  decodeEntries,
  encodeEntries,
  splitIntoBatches,
  TX_GAS_CAP,
  ZERO_HASH,
  type SettlementEntry,
} from "../../keeper/settlement/batches.ts";
import { cmeFixture, FILL_LOG_HASH, GRACE, PEPE, Phase, USDC } from "./fixture.ts";

const SETTLER_ROLE = keccak256(toHex("SETTLER_ROLE"));
const GUARDIAN_ROLE = keccak256(toHex("GUARDIAN_ROLE"));

describe("CMEVault sessions", () => {
  let connection: NetworkConnection;
  before(async () => {
    connection = await network.create();
  });
  const load = () => connection.networkHelpers.loadFixture(cmeFixture);

  describe("startSession", () => {
    it("starts session 1 in Trading with its deadline and emits SessionStarted", async () => {
      const { vault, viem, asSettler, networkHelpers } = await load();
      const now = BigInt(await networkHelpers.time.latest());
      await networkHelpers.time.setNextBlockTimestamp(now + 10n);
      const tx = vault.write.startSession([1, now + 3_600n], asSettler);
      await viem.assertions.emitWithArgs(tx, vault, "SessionStarted", [1, now + 10n, now + 3_600n]);
      expect(await vault.read.currentSessionId()).to.equal(1);
      const s = await vault.read.session([1]);
      expect(s.phase).to.equal(Phase.Trading);
      expect(s.startedAt).to.equal(now + 10n);
      expect(s.deadline).to.equal(now + 3_600n);
    });

    it("refuses a caller without SETTLER_ROLE", async () => {
      const { vault, viem, alice, networkHelpers } = await load();
      const now = BigInt(await networkHelpers.time.latest());
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.startSession([1, now + 3_600n], { account: alice.account }),
        vault,
        "AccessControlUnauthorizedAccount",
        [alice.account.address, SETTLER_ROLE],
      );
    });

    it("refuses an id other than current + 1", async () => {
      const { vault, viem, asSettler, networkHelpers } = await load();
      const now = BigInt(await networkHelpers.time.latest());
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.startSession([2, now + 3_600n], asSettler),
        vault,
        "SessionIdMismatch",
        [2, 0],
      );
    });

    it("refuses while the previous session is trading or settling", async () => {
      const { vault, viem, asSettler, startSession, beginSettlement, trade, networkHelpers } = await load();
      const id = await startSession();
      const now = BigInt(await networkHelpers.time.latest());
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.startSession([id + 1, now + 3_600n], asSettler),
        vault,
        "SessionActive",
        [id, Phase.Trading],
      );
      await beginSettlement(id, trade);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.startSession([id + 1, now + 3_600n], asSettler),
        vault,
        "SessionActive",
        [id, Phase.Settling],
      );
    });

    it("refuses a deadline not in the future, or beyond MAX_SESSION_LENGTH", async () => {
      const { vault, viem, asSettler, networkHelpers } = await load();
      const now = BigInt(await networkHelpers.time.latest());
      await networkHelpers.time.setNextBlockTimestamp(now + 5n);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.startSession([1, now + 5n], asSettler),
        vault,
        "DeadlineInPast",
        [now + 5n],
      );
      const max = await vault.read.MAX_SESSION_LENGTH();
      await networkHelpers.time.setNextBlockTimestamp(now + 10n);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.startSession([1, now + 10n + max + 1n], asSettler),
        vault,
        "DeadlineTooFar",
        [now + 10n + max + 1n, now + 10n + max],
      );
      await networkHelpers.time.setNextBlockTimestamp(now + 20n);
      await vault.write.startSession([1, now + 20n + max], asSettler);
    });

    it("starts the next session after a finalized or voided one", async () => {
      const { vault, runSession, startSession, networkHelpers } = await load();
      await runSession([]);
      const id = await startSession(100n);
      await networkHelpers.time.increase(100n + GRACE);
      await vault.write.voidSession([id]);
      expect(await startSession()).to.equal(3);
    });

    it("refuses inside the withdrawal window after a finalize, with the time it opens, and opens at that time", async () => {
      const { vault, viem, asSettler, runSession, networkHelpers, publicClient } = await load();
      const id = await runSession([]);
      const receiptBlock = await publicClient.getBlock();
      const opensAt = receiptBlock.timestamp + (await vault.read.sessionGap());
      expect(await vault.read.nextSessionAt()).to.equal(opensAt);
      expect(await vault.read.sessionGap()).to.equal(await vault.read.MIN_SESSION_GAP());
      await networkHelpers.time.setNextBlockTimestamp(opensAt - 1n);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.startSession([id + 1, opensAt + 3_600n], asSettler),
        vault,
        "SessionGapNotOver",
        [opensAt],
      );
      await networkHelpers.time.setNextBlockTimestamp(opensAt);
      await viem.assertions.emit(vault.write.startSession([id + 1, opensAt + 3_600n], asSettler), vault, "SessionStarted");
    });

    it("applies the window after a void and after a veto too", async () => {
      const { vault, viem, asSettler, startSession, guardian, networkHelpers, now } = await load();
      const first = await startSession(100n);
      await networkHelpers.time.increase(100n + GRACE);
      await vault.write.voidSession([first]);
      const afterVoid = await vault.read.nextSessionAt();
      expect(afterVoid).to.equal((await now()) + (await vault.read.sessionGap()));
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.startSession([first + 1, (await now()) + 3_600n], asSettler),
        vault,
        "SessionGapNotOver",
        [afterVoid],
      );
      const second = await startSession();
      await vault.write.vetoSession([second, "keeper key leaked"], { account: guardian.account });
      const afterVeto = await vault.read.nextSessionAt();
      expect(afterVeto).to.equal((await now()) + (await vault.read.sessionGap()));
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.startSession([second + 1, (await now()) + 3_600n], asSettler),
        vault,
        "SessionGapNotOver",
        [afterVeto],
      );
    });

    it("lets every user withdraw everything inside the window", async () => {
      const { vault, runSession, trade, alice, bob, usdc, pepe } = await load();
      await runSession(trade);
      await vault.write.withdraw([usdc.address, USDC(8_999)], { account: alice.account });
      await vault.write.withdraw([pepe.address, PEPE(900_000)], { account: bob.account });
      expect(await vault.read.withdrawable([alice.account.address, pepe.address])).to.equal(PEPE(100_000));
    });
  });

  describe("beginSettlement", () => {
    it("moves to Settling, commits root, count and fill log hash, emits SettlementBegun", async () => {
      const { vault, viem, asSettler, startSession, trade } = await load();
      const id = await startSession();
      const chain = buildBatchChain(id, splitIntoBatches(trade, 2));
      await viem.assertions.emitWithArgs(
        vault.write.beginSettlement([id, chain.root, 3, FILL_LOG_HASH], asSettler),
        vault,
        "SettlementBegun",
        [id, chain.root, FILL_LOG_HASH, 3],
      );
      const s = await vault.read.session([id]);
      expect(s.phase).to.equal(Phase.Settling);
      expect(s.batchRoot).to.equal(chain.root);
      expect(s.batchHead).to.equal(chain.root);
      expect(s.batchCount).to.equal(3);
      expect(s.batchesPosted).to.equal(0);
      expect(s.fillLogHash).to.equal(FILL_LOG_HASH);
    });

    it("refuses outside Trading", async () => {
      const { vault, viem, asSettler, startSession, trade } = await load();
      const root = buildBatchChain(1, [trade]).root;
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.beginSettlement([1, root, 1, FILL_LOG_HASH], asSettler),
        vault,
        "WrongPhase",
        [1, Phase.None, Phase.Trading],
      );
      const id = await startSession();
      await vault.write.beginSettlement([id, root, 1, FILL_LOG_HASH], asSettler);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.beginSettlement([id, root, 1, FILL_LOG_HASH], asSettler),
        vault,
        "WrongPhase",
        [id, Phase.Settling, Phase.Trading],
      );
    });

    it("refuses a root that does not match the count", async () => {
      const { vault, viem, asSettler, startSession } = await load();
      const id = await startSession();
      const root: Hex = `0x${"11".repeat(32)}`;
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.beginSettlement([id, root, 0, FILL_LOG_HASH], asSettler),
        vault,
        "InvalidBatchRoot",
        [root, 0],
      );
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.beginSettlement([id, ZERO_HASH, 2, FILL_LOG_HASH], asSettler),
        vault,
        "InvalidBatchRoot",
        [ZERO_HASH, 2],
      );
    });

    it("refuses a caller without SETTLER_ROLE", async () => {
      const { vault, viem, startSession, admin } = await load();
      const id = await startSession();
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.beginSettlement([id, ZERO_HASH, 0, FILL_LOG_HASH], { account: admin.account }),
        vault,
        "AccessControlUnauthorizedAccount",
        [admin.account.address, SETTLER_ROLE],
      );
    });
  });

  describe("postBatch", () => {
    async function settling(batchSize = 2) {
      const f = await load();
      const id = await f.startSession();
      const chain = await f.beginSettlement(id, f.trade, batchSize);
      return { ...f, id, chain };
    }

    it("accepts batches in order, records pending deltas invisibly and emits the packed entries", async () => {
      const { vault, viem, publicClient, asSettler, id, chain, alice, usdc, pepe, trade, finalize } = await settling(2);
      for (const l of chain.links) {
        const hash = await vault.write.postBatch([id, l.index, l.entries, l.next], asSettler);
        const receipt = await publicClient.waitForTransactionReceipt({ hash });
        const [log] = parseEventLogs({ abi: vault.abi, logs: receipt.logs, eventName: "BatchPosted" });
        expect(log?.args).to.deep.equal({ sessionId: id, index: l.index, entryCount: l.entryCount, entries: l.entries });
      }
      const s = await vault.read.session([id]);
      expect(s.batchesPosted).to.equal(3);
      expect(s.batchHead).to.equal(ZERO_HASH);
      // nothing is a balance before finalize
      expect(await vault.read.balanceOf([alice.account.address, usdc.address])).to.equal(USDC(10_000));
      expect(await vault.read.balanceOf([alice.account.address, pepe.address])).to.equal(0n);
      expect(await vault.read.slotOf([alice.account.address, usdc.address])).to.deep.equal([USDC(10_000), -USDC(1_001), id]);
      expect(await vault.read.sessionNet([id, usdc.address])).to.equal(0n);
      expect(trade.length).to.equal(5);
      await viem.assertions.emitWithArgs(finalize(id), vault, "SessionFinalized", [id]);
    });

    it("keeps a running per-token net across batches", async () => {
      const { vault, asSettler, id, chain, usdc, pepe } = await settling(2);
      const first = chain.links[0]!;
      await vault.write.postBatch([id, 0, first.entries, first.next], asSettler);
      expect(await vault.read.sessionNet([id, usdc.address])).to.equal(-USDC(1_001));
      expect(await vault.read.sessionNet([id, pepe.address])).to.equal(PEPE(100_000));
    });

    it("refuses a replayed batch and one posted out of order", async () => {
      const { vault, viem, asSettler, id, chain } = await settling(2);
      const [b0, b1, b2] = chain.links;
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.postBatch([id, 1, b1!.entries, b1!.next], asSettler),
        vault,
        "BatchOutOfOrder",
        [id, 1, 0],
      );
      await vault.write.postBatch([id, 0, b0!.entries, b0!.next], asSettler);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.postBatch([id, 0, b0!.entries, b0!.next], asSettler),
        vault,
        "BatchOutOfOrder",
        [id, 0, 1],
      );
      await vault.write.postBatch([id, 1, b1!.entries, b1!.next], asSettler);
      await vault.write.postBatch([id, 2, b2!.entries, b2!.next], asSettler);
      // every batch posted: expected index is the count
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.postBatch([id, 3, b2!.entries, ZERO_HASH], asSettler),
        vault,
        "BatchOutOfOrder",
        [id, 3, 3],
      );
    });

    it("refuses entries or links that do not hash to the committed head", async () => {
      const { vault, viem, asSettler, id, chain, trade } = await settling(2);
      const b0 = chain.links[0]!;
      const tampered = encodeEntries([{ ...trade[0]!, delta: -USDC(1) }, trade[1]!]);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.postBatch([id, 0, tampered, b0.next], asSettler),
        vault,
        "BatchHashMismatch",
        [id, 0],
      );
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.postBatch([id, 0, b0.entries, chain.links[1]!.next], asSettler),
        vault,
        "BatchHashMismatch",
        [id, 0],
      );
      // the same entries chained for another session id
      const other = buildBatchChain(id + 1, splitIntoBatches(trade, 2)).links[0]!;
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.postBatch([id, 0, other.entries, other.next], asSettler),
        vault,
        "BatchHashMismatch",
        [id, 0],
      );
    });

    it("refuses a chain that ends before or after the committed count", async () => {
      const { vault, viem, asSettler, startSession, trade } = await load();
      const entries = encodeEntries(trade);
      // one batch, but two committed: its link carries next = 0 before the last index
      const id = await startSession();
      const root = batchLinkHash(id, 0, entries, ZERO_HASH);
      await vault.write.beginSettlement([id, root, 2, FILL_LOG_HASH], asSettler);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.postBatch([id, 0, entries, ZERO_HASH], asSettler),
        vault,
        "BatchHashMismatch",
        [id, 0],
      );
      // the last committed batch points further down the onion
      const { vault: v2, asSettler: s2, startSession: start2 } = await load();
      const id2 = await start2();
      const tail: Hex = `0x${"22".repeat(32)}`;
      const root2 = batchLinkHash(id2, 0, entries, tail);
      await v2.write.beginSettlement([id2, root2, 1, FILL_LOG_HASH], s2);
      await viem.assertions.revertWithCustomErrorWithArgs(
        v2.write.postBatch([id2, 0, entries, tail], s2),
        v2,
        "BatchHashMismatch",
        [id2, 0],
      );
    });

    it("refuses an empty batch or one that is not whole entries", async () => {
      const { vault, viem, asSettler, id } = await settling(2);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.postBatch([id, 0, "0x", ZERO_HASH], asSettler),
        vault,
        "MalformedBatch",
        [0n],
      );
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.postBatch([id, 0, `0x${"01".repeat(20)}`, ZERO_HASH], asSettler),
        vault,
        "MalformedBatch",
        [20n],
      );
    });

    it("refuses outside Settling and callers without SETTLER_ROLE", async () => {
      const { vault, viem, asSettler, startSession, trade, alice, finalize } = await load();
      const id = await startSession();
      const l = buildBatchChain(id, [trade]).links[0]!;
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.postBatch([id, 0, l.entries, l.next], asSettler),
        vault,
        "WrongPhase",
        [id, Phase.Trading, Phase.Settling],
      );
      await vault.write.beginSettlement([id, buildBatchChain(id, [trade]).root, 1, FILL_LOG_HASH], asSettler);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.postBatch([id, 0, l.entries, l.next], { account: alice.account }),
        vault,
        "AccessControlUnauthorizedAccount",
        [alice.account.address, SETTLER_ROLE],
      );
      await vault.write.postBatch([id, 0, l.entries, l.next], asSettler);
      await finalize(id);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.postBatch([id, 0, l.entries, l.next], asSettler),
        vault,
        "WrongPhase",
        [id, Phase.Finalized, Phase.Settling],
      );
    });

    /** Commits a one-batch chain of `entries` and returns the postBatch promise. */
    async function postOne(entries: SettlementEntry[] | Hex) {
      const f = await load();
      const id = await f.startSession();
      const packed = typeof entries === "string" ? entries : encodeEntries(entries);
      const root = batchLinkHash(id, 0, packed, ZERO_HASH);
      await f.vault.write.beginSettlement([id, root, 1, FILL_LOG_HASH], f.asSettler);
      return { ...f, id, tx: f.vault.write.postBatch([id, 0, packed, ZERO_HASH], f.asSettler) };
    }

    it("refuses an unknown account id (0 or never registered)", async () => {
      // encodeEntries refuses account 0, so pack it by hand
      const zero = `0x00000000${"00"}${(USDC(1) & ((1n << 128n) - 1n)).toString(16).padStart(32, "0")}` as Hex;
      let { vault, viem, tx } = await postOne(zero);
      await viem.assertions.revertWithCustomErrorWithArgs(tx, vault, "UnknownAccountId", [0n]);
      ({ vault, viem, tx } = await postOne([{ accountId: 6, tokenIndex: 0, delta: 1n }]));
      await viem.assertions.revertWithCustomErrorWithArgs(tx, vault, "UnknownAccountId", [6n]);
    });

    it("refuses an unlisted token index", async () => {
      const { vault, viem, tx } = await postOne([{ accountId: 3, tokenIndex: 4, delta: 1n }]);
      await viem.assertions.revertWithCustomErrorWithArgs(tx, vault, "UnknownTokenIndex", [4]);
    });

    it("refuses a delta outside int112", async () => {
      const tooLow = -(2n ** 111n) - 1n;
      const raw = `0x00000003${"00"}${(tooLow & ((1n << 128n) - 1n)).toString(16).padStart(32, "0")}` as Hex;
      const { vault, viem, tx } = await postOne(raw);
      await viem.assertions.revertWithCustomErrorWithArgs(tx, vault, "DeltaOutOfRange", [3n, 0, tooLow]);
    });

    it("refuses a second delta for the same (account, token) in a batch or across batches", async () => {
      const dup: SettlementEntry[] = [
        { accountId: 3, tokenIndex: 0, delta: -USDC(1) },
        { accountId: 5, tokenIndex: 0, delta: USDC(2) },
        { accountId: 3, tokenIndex: 0, delta: -USDC(1) },
      ];
      const { vault, viem, tx } = await postOne(encodeEntries(dup));
      await viem.assertions.revertWithCustomErrorWithArgs(tx, vault, "DeltaAlreadyPosted", [3n, 0]);

      // across batches: build the onion by hand (buildBatchChain refuses duplicates)
      const f = await load();
      const id = await f.startSession();
      const a = encodeEntries([dup[0]!]);
      const b = encodeEntries([dup[1]!, dup[2]!]);
      const h1 = batchLinkHash(id, 1, b, ZERO_HASH);
      const h0 = batchLinkHash(id, 0, a, h1);
      await f.vault.write.beginSettlement([id, h0, 2, FILL_LOG_HASH], f.asSettler);
      await f.vault.write.postBatch([id, 0, a, h1], f.asSettler);
      await f.viem.assertions.revertWithCustomErrorWithArgs(
        f.vault.write.postBatch([id, 1, b, ZERO_HASH], f.asSettler),
        f.vault,
        "DeltaAlreadyPosted",
        [3n, 0],
      );
    });

    it("refuses a delta that would make a balance negative", async () => {
      const { vault, viem, tx } = await postOne([{ accountId: 3, tokenIndex: 0, delta: -USDC(10_001) }]);
      await viem.assertions.revertWithCustomErrorWithArgs(tx, vault, "NegativeBalance", [3n, 0, -USDC(1)]);
    });

    it("refuses a negative delta on an account that never held the token", async () => {
      const { vault, viem, tx } = await postOne([{ accountId: 5, tokenIndex: 1, delta: -1n }]);
      await viem.assertions.revertWithCustomErrorWithArgs(tx, vault, "NegativeBalance", [5n, 1, -1n]);
    });

    it("refuses a credit above 2^112 - 1", async () => {
      const max = 2n ** 112n - 1n;
      const big = 2n ** 111n - 1n;
      const f = await load();
      await f.pepe.write.mint([f.alice.account.address, max]);
      // bob holds 1e6 PEPE (1e24); bring him to max - 1e24 + 1 short of the cap
      await f.vault.write.depositFor([f.bob.account.address, f.pepe.address, big], { account: f.alice.account });
      const bobBalance = await f.vault.read.balanceOf([f.bob.account.address, f.pepe.address]);
      const id = await f.startSession();
      const entries: SettlementEntry[] = [
        { accountId: 4, tokenIndex: 1, delta: big },
        { accountId: 3, tokenIndex: 1, delta: -big },
      ];
      const packed = encodeEntries(entries);
      await f.vault.write.beginSettlement([id, batchLinkHash(id, 0, packed, ZERO_HASH), 1, FILL_LOG_HASH], f.asSettler);
      await f.viem.assertions.revertWithCustomErrorWithArgs(
        f.vault.write.postBatch([id, 0, packed, ZERO_HASH], f.asSettler),
        f.vault,
        "BalanceOverflow",
        [4n, 1, bobBalance + big],
      );
      expect(bobBalance + big > max).to.equal(true);
    });
  });

  describe("finalize", () => {
    it("makes every delta a balance at once", async () => {
      const { vault, runSession, trade, alice, bob, treasury, usdc, pepe } = await load();
      await runSession(trade);
      expect(await vault.read.balanceOf([alice.account.address, usdc.address])).to.equal(USDC(8_999));
      expect(await vault.read.balanceOf([alice.account.address, pepe.address])).to.equal(PEPE(100_000));
      expect(await vault.read.balanceOf([bob.account.address, pepe.address])).to.equal(PEPE(900_000));
      expect(await vault.read.balanceOf([bob.account.address, usdc.address])).to.equal(USDC(1_000));
      expect(await vault.read.balanceOf([treasury.account.address, usdc.address])).to.equal(USDC(1));
      // lazily: the slot still holds the pending delta until it is touched
      expect(await vault.read.slotOf([alice.account.address, usdc.address])).to.deep.equal([USDC(10_000), -USDC(1_001), 1]);
    });

    it("finalizes a session without deltas once the window that began at beginSettlement has passed", async () => {
      const { vault, viem, asSettler, startSession, finalize, now } = await load();
      const id = await startSession();
      await vault.write.beginSettlement([id, ZERO_HASH, 0, FILL_LOG_HASH], asSettler);
      const finalizableAt = (await now()) + (await vault.read.challengeWindow());
      expect((await vault.read.session([id])).finalizableAt).to.equal(Number(finalizableAt));
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.finalize([id], asSettler),
        vault,
        "ChallengeWindowNotOver",
        [id, finalizableAt],
      );
      await finalize(id);
      expect((await vault.read.session([id])).phase).to.equal(Phase.Finalized);
    });

    it("waits out the challenge window after the last batch, and only then", async () => {
      const { vault, viem, asSettler, startSession, beginSettlement, trade, networkHelpers, now } = await load();
      const id = await startSession();
      const chain = await beginSettlement(id, trade, 2);
      for (const l of chain.links.slice(0, 2)) await vault.write.postBatch([id, l.index, l.entries, l.next], asSettler);
      expect((await vault.read.session([id])).finalizableAt).to.equal(0);
      const last = chain.links[2]!;
      await vault.write.postBatch([id, 2, last.entries, last.next], asSettler);
      const finalizableAt = (await now()) + (await vault.read.challengeWindow());
      expect((await vault.read.session([id])).finalizableAt).to.equal(Number(finalizableAt));
      await networkHelpers.time.setNextBlockTimestamp(finalizableAt - 1n);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.finalize([id], asSettler),
        vault,
        "ChallengeWindowNotOver",
        [id, finalizableAt],
      );
      await networkHelpers.time.setNextBlockTimestamp(finalizableAt);
      await viem.assertions.emitWithArgs(vault.write.finalize([id], asSettler), vault, "SessionFinalized", [id]);
    });

    it("refuses until every batch is posted", async () => {
      const { vault, viem, asSettler, startSession, beginSettlement, trade } = await load();
      const id = await startSession();
      const chain = await beginSettlement(id, trade, 2);
      const b0 = chain.links[0]!;
      await vault.write.postBatch([id, 0, b0.entries, b0.next], asSettler);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.finalize([id], asSettler),
        vault,
        "BatchesIncomplete",
        [id, 1, 3],
      );
    });

    it("refuses unless every token nets to zero", async () => {
      const { vault, viem, asSettler, startSession, beginSettlement, trade, usdc, reach } = await load();
      const id = await startSession();
      const unbalanced = trade.map((e) => (e.accountId === 1 ? { ...e, delta: USDC(2) } : e));
      const chain = await beginSettlement(id, unbalanced, 10);
      const l = chain.links[0]!;
      await vault.write.postBatch([id, 0, l.entries, l.next], asSettler);
      await reach(BigInt((await vault.read.session([id])).finalizableAt));
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.finalize([id], asSettler),
        vault,
        "SessionNotNetZero",
        [id, usdc.address, USDC(1)],
      );
    });

    it("refuses outside Settling and callers without SETTLER_ROLE", async () => {
      const { vault, viem, asSettler, startSession, bob, finalize } = await load();
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.finalize([1], asSettler),
        vault,
        "WrongPhase",
        [1, Phase.None, Phase.Settling],
      );
      const id = await startSession();
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.finalize([id], asSettler),
        vault,
        "WrongPhase",
        [id, Phase.Trading, Phase.Settling],
      );
      await vault.write.beginSettlement([id, ZERO_HASH, 0, FILL_LOG_HASH], asSettler);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.finalize([id], { account: bob.account }),
        vault,
        "AccessControlUnauthorizedAccount",
        [bob.account.address, SETTLER_ROLE],
      );
      await finalize(id);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.finalize([id], asSettler),
        vault,
        "WrongPhase",
        [id, Phase.Finalized, Phase.Settling],
      );
    });

    it("costs the same gas whatever the number of participants", async () => {
      const f = await load();
      const gasOf = async (entries: SettlementEntry[]) => {
        const id = await f.startSession();
        const chain = await f.beginSettlement(id, entries, 1_000);
        for (const l of chain.links) await f.vault.write.postBatch([id, l.index, l.entries, l.next], f.asSettler);
        const hash = await f.finalize(id);
        return (await f.publicClient.waitForTransactionReceipt({ hash })).gasUsed;
      };
      const small = await gasOf(f.trade);
      // 100 fresh accounts each receive 1 USDC from carol
      const many: SettlementEntry[] = [{ accountId: 5, tokenIndex: 0, delta: -USDC(100) }];
      for (let i = 0; i < 100; i++) {
        const who = `0x${(0xc0ffee00 + i).toString(16).padStart(40, "0")}` as Hex;
        await f.vault.write.register([who]);
        many.push({ accountId: 6 + i, tokenIndex: 0, delta: USDC(1) });
      }
      expect(await gasOf(many)).to.equal(small);
    });
  });

  describe("voidSession", () => {
    it("refuses before deadline + grace period, then lets anyone void", async () => {
      const { vault, viem, startSession, stranger, networkHelpers } = await load();
      const id = await startSession(1_000n);
      const { deadline } = await vault.read.session([id]);
      await networkHelpers.time.setNextBlockTimestamp(deadline + GRACE - 1n);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.voidSession([id], { account: stranger.account }),
        vault,
        "VoidTooEarly",
        [id, deadline + GRACE],
      );
      await networkHelpers.time.setNextBlockTimestamp(deadline + GRACE);
      await viem.assertions.emitWithArgs(
        vault.write.voidSession([id], { account: stranger.account }),
        vault,
        "SessionVoided",
        [id, stranger.account.address],
      );
      expect((await vault.read.session([id])).phase).to.equal(Phase.Voided);
    });

    it("refuses a session that is not running", async () => {
      const { vault, viem, runSession, trade, startSession, networkHelpers } = await load();
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.voidSession([1]),
        vault,
        "WrongPhase",
        [1, Phase.None, Phase.Settling],
      );
      const id = await runSession(trade);
      await networkHelpers.time.increase(10_000n);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.voidSession([id]),
        vault,
        "WrongPhase",
        [id, Phase.Finalized, Phase.Settling],
      );
      const next = await startSession(10n);
      await networkHelpers.time.increase(10n + GRACE);
      await vault.write.voidSession([next]);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.voidSession([next]),
        vault,
        "WrongPhase",
        [next, Phase.Voided, Phase.Settling],
      );
    });

    it("a keeper that disappears mid-settlement cannot trap any user's funds", async () => {
      const f = await load();
      const { vault, asSettler, networkHelpers, alice, bob, carol, treasury, usdc, pepe, stranger } = f;
      const id = await f.startSession(3_600n);
      const chain = await f.beginSettlement(id, f.trade, 2);
      const b0 = chain.links[0]!;
      await vault.write.postBatch([id, 0, b0.entries, b0.next], asSettler);
      // the keeper is gone: no more batches, no finalize. Those whose deltas are not posted cannot
      // withdraw while settling (bob's debit must stay postable)...
      await f.viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.withdraw([pepe.address, 1n], { account: bob.account }),
        vault,
        "DeltaNotPosted",
        [id, bob.account.address, pepe.address],
      );
      // ...until the deadline and grace period pass and anyone voids the session.
      await networkHelpers.time.increase(3_600n + GRACE);
      await vault.write.voidSession([id], { account: stranger.account });
      const pre = [
        [alice, usdc, USDC(10_000)],
        [bob, pepe, PEPE(1_000_000)],
        [carol, usdc, USDC(5_000)],
      ] as const;
      for (const [who, token, amount] of pre) {
        expect(await vault.read.balanceOf([who.account.address, token.address])).to.equal(amount);
        const before = await token.read.balanceOf([who.account.address]);
        await vault.write.withdraw([token.address, amount], { account: who.account });
        expect(await token.read.balanceOf([who.account.address])).to.equal(before + amount);
      }
      expect(await vault.read.balanceOf([alice.account.address, pepe.address])).to.equal(0n);
      expect(await vault.read.balanceOf([treasury.account.address, usdc.address])).to.equal(0n);
      expect(await usdc.read.balanceOf([vault.address])).to.equal(0n);
      expect(await pepe.read.balanceOf([vault.address])).to.equal(0n);
    });

    it("voids a session stuck in Trading too", async () => {
      const { vault, startSession, networkHelpers, alice, usdc } = await load();
      const id = await startSession(60n);
      await networkHelpers.time.increase(60n + GRACE);
      await vault.write.voidSession([id]);
      await vault.write.withdraw([usdc.address, USDC(10_000)], { account: alice.account });
      expect(await vault.read.balanceOf([alice.account.address, usdc.address])).to.equal(0n);
    });

    it("ignores a voided session's pending deltas in the next session", async () => {
      const f = await load();
      const { vault, asSettler, networkHelpers, alice, usdc, pepe } = f;
      const id = await f.startSession(100n);
      const chain = await f.beginSettlement(id, f.trade, 10);
      const l = chain.links[0]!;
      await vault.write.postBatch([id, 0, l.entries, l.next], asSettler);
      await networkHelpers.time.increase(100n + GRACE);
      await vault.write.voidSession([id]);
      expect(await vault.read.sessionNet([id, usdc.address])).to.equal(0n);
      // the same trade settles in the next session on the pre-session balances
      await f.runSession(f.trade);
      expect(await vault.read.balanceOf([alice.account.address, usdc.address])).to.equal(USDC(8_999));
      expect(await vault.read.balanceOf([alice.account.address, pepe.address])).to.equal(PEPE(100_000));
      expect(await vault.read.slotOf([alice.account.address, usdc.address])).to.deep.equal([USDC(10_000), -USDC(1_001), 2]);
    });
  });

  describe("vetoSession", () => {
    it("lets the guardian void a session in its challenge window, with the effects of a void", async () => {
      const f = await load();
      const { vault, viem, asSettler, guardian, alice, bob, usdc, pepe } = f;
      const id = await f.startSession();
      const chain = await f.beginSettlement(id, f.trade, 2);
      for (const l of chain.links) await vault.write.postBatch([id, l.index, l.entries, l.next], asSettler);
      await viem.assertions.emitWithArgs(
        vault.write.vetoSession([id, "batch 1 does not match the fill log"], { account: guardian.account }),
        vault,
        "SessionVetoed",
        [id, guardian.account.address, "batch 1 does not match the fill log"],
      );
      expect((await vault.read.session([id])).phase).to.equal(Phase.Voided);
      // posted deltas are dropped: pre-session balances, and the settler cannot finalize
      expect(await vault.read.balanceOf([alice.account.address, usdc.address])).to.equal(USDC(10_000));
      expect(await vault.read.balanceOf([alice.account.address, pepe.address])).to.equal(0n);
      expect(await vault.read.sessionNet([id, usdc.address])).to.equal(-0n);
      await f.reach(BigInt((await vault.read.session([id])).finalizableAt));
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.finalize([id], asSettler),
        vault,
        "WrongPhase",
        [id, Phase.Voided, Phase.Settling],
      );
      // everyone may leave with the pre-session balance
      expect(await vault.read.withdrawable([bob.account.address, pepe.address])).to.equal(PEPE(1_000_000));
      await vault.write.withdraw([pepe.address, PEPE(900_000)], { account: bob.account });
      // and the same trade settles next session on the pre-session balances
      await f.runSession(f.trade);
      expect(await vault.read.balanceOf([alice.account.address, usdc.address])).to.equal(USDC(8_999));
    });

    it("works while trading and while batches are being posted", async () => {
      const f = await load();
      const { vault, asSettler, guardian } = f;
      const trading = await f.startSession();
      await vault.write.vetoSession([trading, "keeper key compromised"], { account: guardian.account });
      expect((await vault.read.session([trading])).phase).to.equal(Phase.Voided);
      const settling = await f.startSession();
      const chain = await f.beginSettlement(settling, f.trade, 2);
      await vault.write.postBatch([settling, 0, chain.links[0]!.entries, chain.links[0]!.next], asSettler);
      await vault.write.vetoSession([settling, ""], { account: guardian.account });
      expect((await vault.read.session([settling])).phase).to.equal(Phase.Voided);
    });

    it("refuses anyone without GUARDIAN_ROLE: the settler, the admin, a stranger", async () => {
      const f = await load();
      const { vault, viem, settler, admin, stranger } = f;
      const id = await f.startSession();
      for (const who of [settler, admin, stranger]) {
        await viem.assertions.revertWithCustomErrorWithArgs(
          vault.write.vetoSession([id, "no"], { account: who.account }),
          vault,
          "AccessControlUnauthorizedAccount",
          [who.account.address, GUARDIAN_ROLE],
        );
      }
    });

    it("refuses a session that is not running: unknown, finalized or already voided", async () => {
      const f = await load();
      const { vault, viem, guardian } = f;
      const as = { account: guardian.account };
      await viem.assertions.revertWithCustomErrorWithArgs(vault.write.vetoSession([1, ""], as), vault, "WrongPhase", [
        1,
        Phase.None,
        Phase.Settling,
      ]);
      const id = await f.runSession(f.trade);
      await viem.assertions.revertWithCustomErrorWithArgs(vault.write.vetoSession([id, ""], as), vault, "WrongPhase", [
        id,
        Phase.Finalized,
        Phase.Settling,
      ]);
      const next = await f.startSession();
      await vault.write.vetoSession([next, ""], as);
      await viem.assertions.revertWithCustomErrorWithArgs(vault.write.vetoSession([next, ""], as), vault, "WrongPhase", [
        next,
        Phase.Voided,
        Phase.Settling,
      ]);
    });
  });

  describe("batch gas (bounded per entry)", () => {
    it("pays no fresh write for a token's first session: its net word is initialised at listToken", async () => {
      const f = await load();
      const { vault, viem, admin, asSettler, publicClient } = f;
      const doge = await viem.deployContract("MockMemecoin", ["Doge (mock)", "DOGE"]);
      await vault.write.listToken([doge.address], { account: admin.account });
      await doge.write.mint([f.alice.account.address, PEPE(10)]);
      await doge.write.approve([vault.address, PEPE(10)], { account: f.alice.account });
      await vault.write.deposit([doge.address, PEPE(10)], { account: f.alice.account });
      // alice pays carol 1 DOGE for 1 USDC, twice: DOGE's net word was never written by a batch
      // the first time, and carol's DOGE slot is fresh the first time only
      const gasOf = async (entries: SettlementEntry[]) => {
        const id = await f.startSession();
        const chain = await f.beginSettlement(id, entries);
        const l = chain.links[0]!;
        const hash = await vault.write.postBatch([id, 0, l.entries, l.next], asSettler);
        const gas = (await publicClient.waitForTransactionReceipt({ hash })).gasUsed;
        await f.finalize(id);
        return gas;
      };
      const first = await gasOf([
        { accountId: 3, tokenIndex: 4, delta: -PEPE(1) },
        { accountId: 3, tokenIndex: 0, delta: USDC(1) },
        { accountId: 5, tokenIndex: 0, delta: -USDC(1) },
        { accountId: 5, tokenIndex: 4, delta: PEPE(1) },
      ]);
      const again = await gasOf([
        { accountId: 3, tokenIndex: 4, delta: -PEPE(1) },
        { accountId: 3, tokenIndex: 0, delta: USDC(1) },
        { accountId: 5, tokenIndex: 0, delta: -USDC(1) },
        { accountId: 5, tokenIndex: 4, delta: PEPE(1) },
      ]);
      // the first batch pays carol's fresh slot (17,100 more than a rewrite), the second reads
      // the first session's outcome cold (2,100 more): ~15,000 apart. A fresh net word would add
      // another 17,100.
      expect(Number(first - again)).to.be.within(12_000, 17_100);
    });

    it("settles 200 listed tokens with deltas in all of them, every batch under its bound and the EIP-7825 cap", async function () {
      this.timeout(600_000);
      const f = await load();
      const { vault, viem, admin, asSettler, publicClient, settler } = f;
      const mine = async (hash: Hex) => {
        const r = await publicClient.waitForTransactionReceipt({ hash });
        if (r.status !== "success") throw new Error(`transaction ${hash} reverted`);
        return r;
      };
      // 4 tokens from the fixture + 196 more; alice deposits each of them
      const tokens = [f.usdc.address, f.pepe.address, f.wif.address, (await vault.read.tokenAt([3]))] as Hex[];
      for (const t of [f.wif.address, tokens[3]!]) {
        const m = await viem.getContractAt("MockMemecoin", t);
        await m.write.mint([f.alice.account.address, PEPE(1_000)]);
        await m.write.approve([vault.address, PEPE(1_000)], { account: f.alice.account });
        await vault.write.deposit([t, PEPE(1_000)], { account: f.alice.account });
      }
      await vault.write.deposit([f.pepe.address, PEPE(1_000)], { account: f.alice.account });
      for (let i = 4; i < 200; i++) {
        const t = await viem.deployContract("MockMemecoin", [`T${i}`, `T${i}`]);
        await mine(await vault.write.listToken([t.address], { account: admin.account }));
        await mine(await t.write.mint([f.alice.account.address, PEPE(1_000)]));
        await mine(await t.write.approve([vault.address, PEPE(1_000)], { account: f.alice.account }));
        await mine(await vault.write.deposit([t.address, PEPE(1_000)], { account: f.alice.account }));
        tokens.push(t.address);
      }
      expect(await vault.read.tokenCount()).to.equal(200);
      // alice (3) pays 1 unit of every token to each of 5 fresh accounts: 1,200 entries, every
      // credit a fresh slot (the worst case the keeper's bound prices)
      const receivers: number[] = [];
      for (let i = 0; i < 5; i++) {
        const who = `0x${(0xfee500 + i).toString(16).padStart(40, "0")}` as Hex;
        await vault.write.register([who]);
        receivers.push(await vault.read.accountIdOf([who]));
      }
      const entries: SettlementEntry[] = [];
      for (let t = 0; t < 200; t++) {
        const unit = t === 0 ? USDC(1) : PEPE(1);
        entries.push({ accountId: 3, tokenIndex: t, delta: -unit * BigInt(receivers.length) });
        for (const r of receivers) entries.push({ accountId: r, tokenIndex: t, delta: unit });
      }
      const batches = splitIntoBatches(entries); // the keeper's default sizing
      expect(batches.length).to.be.greaterThan(2);
      const id = await f.startSession();
      const chain = buildBatchChain(id, batches);
      await vault.write.beginSettlement([id, chain.root, chain.links.length, FILL_LOG_HASH], asSettler);
      for (const l of chain.links) {
        const estimate = await publicClient.estimateContractGas({
          address: vault.address,
          abi: vault.abi,
          functionName: "postBatch",
          args: [id, l.index, l.entries, l.next],
          account: settler.account,
        });
        const bound = BigInt(batchGasBound(batches[l.index]!));
        expect(estimate <= bound, `batch ${l.index}: estimate ${estimate} > bound ${bound}`).to.equal(true);
        expect(bound <= BigInt(DEFAULT_MAX_GAS_PER_BATCH)).to.equal(true);
        const receipt = await mine(await vault.write.postBatch([id, l.index, l.entries, l.next], { ...asSettler, gas: estimate }));
        expect(receipt.gasUsed < BigInt(TX_GAS_CAP)).to.equal(true);
      }
      await f.finalize(id);
      expect(await vault.read.balanceOf([await vault.read.accountAt([receivers[4]!]), tokens[199]!])).to.equal(PEPE(1));
      expect(await vault.read.balanceOf([f.alice.account.address, tokens[199]!])).to.equal(PEPE(995));
    });
  });

  describe("lazy balances across sessions", () => {
    it("folds a finalized delta when the next session posts to the slot", async () => {
      const f = await load();
      const { vault, alice, usdc } = f;
      await f.runSession(f.trade);
      const back: SettlementEntry[] = f.trade.map((e) => ({ ...e, delta: -e.delta }));
      await f.runSession(back);
      expect(await vault.read.slotOf([alice.account.address, usdc.address])).to.deep.equal([USDC(8_999), USDC(1_001), 2]);
      expect(await vault.read.balanceOf([alice.account.address, usdc.address])).to.equal(USDC(10_000));
    });

    it("checks a returning participant's delta against the folded balance", async () => {
      const f = await load();
      await f.runSession(f.trade);
      // alice now has 8,999 USDC: 9,000 more than she has is refused
      const id = await f.startSession();
      const packed = encodeEntries([{ accountId: 3, tokenIndex: 0, delta: -USDC(9_000) }]);
      await f.vault.write.beginSettlement([id, batchLinkHash(id, 0, packed, ZERO_HASH), 1, FILL_LOG_HASH], f.asSettler);
      await f.viem.assertions.revertWithCustomErrorWithArgs(
        f.vault.write.postBatch([id, 0, packed, ZERO_HASH], f.asSettler),
        f.vault,
        "NegativeBalance",
        [3n, 0, -USDC(1)],
      );
    });

    it("writes a returning participant's delta for about one storage rewrite", async () => {
      const f = await load();
      const gasOfBatch = async (entries: SettlementEntry[]) => {
        const id = await f.startSession();
        const chain = await f.beginSettlement(id, entries, 1_000);
        const l = chain.links[0]!;
        const hash = await f.vault.write.postBatch([id, 0, l.entries, l.next], f.asSettler);
        const gas = (await f.publicClient.waitForTransactionReceipt({ hash })).gasUsed;
        await f.finalize(id);
        return gas;
      };
      // 60 accounts funded with USDC; session A pays each 1 PEPE-wei (fresh slots), B repeats
      const entries: SettlementEntry[] = [];
      for (let i = 0; i < 60; i++) {
        const who = `0x${(0xbeef00 + i).toString(16).padStart(40, "0")}` as Hex;
        await f.vault.write.depositFor([who, f.usdc.address, USDC(10)], { account: f.alice.account });
        entries.push({ accountId: 6 + i, tokenIndex: 0, delta: -1n }, { accountId: 6 + i, tokenIndex: 1, delta: 1n });
      }
      entries.push({ accountId: 3, tokenIndex: 0, delta: 60n }, { accountId: 4, tokenIndex: 1, delta: -60n });
      const first = await gasOfBatch(entries);
      const returning = await gasOfBatch(entries);
      // 122 entries: 60 fresh PEPE slots (~22,100 each for the zero-to-non-zero write)
      expect(Number(first - returning) / 60).to.be.within(16_000, 17_500);
      // all returning: under 6,000 gas per entry (calldata and log included) beyond a fixed
      // per-transaction cost of at most 50,000
      expect(Number(returning)).to.be.below(50_000 + 6_000 * entries.length);
    });
  });
});
