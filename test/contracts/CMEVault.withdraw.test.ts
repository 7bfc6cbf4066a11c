import { expect } from "chai";
import { network } from "hardhat";
import type { NetworkConnection } from "hardhat/types/network";
import { hashTypedData, type Address, type Hex } from "viem";
import type { WalletClient } from "@nomicfoundation/hardhat-viem/types";
import { cmeFixture, GRACE, PEPE, Phase, USDC } from "./fixture.ts";

const WITHDRAWAL_TYPES = {
  Withdrawal: [
    { name: "account", type: "address" },
    { name: "token", type: "address" },
    { name: "amount", type: "uint256" },
    { name: "sessionId", type: "uint32" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
} as const;

interface Withdrawal {
  account: Address;
  token: Address;
  amount: bigint;
  sessionId: number;
  nonce: bigint;
  deadline: bigint;
}

function domain(vault: Address) {
  return { name: "CMEVault", version: "1", chainId: 31337, verifyingContract: vault } as const;
}

async function signWithdrawal(signer: WalletClient, vault: Address, message: Withdrawal): Promise<Hex> {
  return signer.signTypedData({
    account: signer.account,
    domain: domain(vault),
    types: WITHDRAWAL_TYPES,
    primaryType: "Withdrawal",
    message,
  });
}

describe("CMEVault withdrawals", () => {
  let connection: NetworkConnection;
  before(async () => {
    connection = await network.create();
  });
  const load = () => connection.networkHelpers.loadFixture(cmeFixture);

  describe("withdraw", () => {
    it("pays out up to the balance between sessions and emits Withdrawn with session 0", async () => {
      const { vault, viem, alice, usdc } = await load();
      const before = await usdc.read.balanceOf([alice.account.address]);
      await viem.assertions.emitWithArgs(
        vault.write.withdraw([usdc.address, USDC(4_000)], { account: alice.account }),
        vault,
        "Withdrawn",
        [alice.account.address, usdc.address, alice.account.address, USDC(4_000), USDC(6_000), 0],
      );
      expect(await usdc.read.balanceOf([alice.account.address])).to.equal(before + USDC(4_000));
      await vault.write.withdraw([usdc.address, USDC(6_000)], { account: alice.account });
      expect(await vault.read.balanceOf([alice.account.address, usdc.address])).to.equal(0n);
    });

    it("refuses more than the balance", async () => {
      const { vault, viem, alice, usdc } = await load();
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.withdraw([usdc.address, USDC(10_000) + 1n], { account: alice.account }),
        vault,
        "InsufficientBalance",
        [alice.account.address, usdc.address, USDC(10_000), USDC(10_000) + 1n],
      );
    });

    it("refuses zero, unlisted tokens and unregistered accounts", async () => {
      const { vault, viem, alice, stranger, usdc, admin } = await load();
      await viem.assertions.revertWithCustomError(
        vault.write.withdraw([usdc.address, 0n], { account: alice.account }),
        vault,
        "ZeroAmount",
      );
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.withdraw([admin.account.address, 1n], { account: alice.account }),
        vault,
        "TokenNotListed",
        [admin.account.address],
      );
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.withdraw([usdc.address, 1n], { account: stranger.account }),
        vault,
        "UnknownAccount",
        [stranger.account.address],
      );
    });

    it("refuses while a session trades, and while settling until the account's delta is posted", async () => {
      const { vault, viem, alice, usdc, startSession, beginSettlement, trade } = await load();
      const id = await startSession();
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.withdraw([usdc.address, 1n], { account: alice.account }),
        vault,
        "SessionActive",
        [id, Phase.Trading],
      );
      expect(await vault.read.withdrawable([alice.account.address, usdc.address])).to.equal(0n);
      await beginSettlement(id, trade);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.withdraw([usdc.address, 1n], { account: alice.account }),
        vault,
        "DeltaNotPosted",
        [id, alice.account.address, usdc.address],
      );
      expect(await vault.read.withdrawable([alice.account.address, usdc.address])).to.equal(0n);
    });

    it("refuses a token that takes more than the amount from the vault, and pays nothing", async () => {
      const { vault, viem, admin, alice } = await load();
      const fee = await viem.deployContract("SenderFeeToken", [100n]); // 1% charged to the sender on top
      await vault.write.listToken([fee.address], { account: admin.account });
      await fee.write.mint([alice.account.address, PEPE(1_000)]);
      await fee.write.approve([vault.address, PEPE(1_000)], { account: alice.account });
      // a deposit is fine: alice pays the fee, the vault receives the amount
      await vault.write.deposit([fee.address, PEPE(100)], { account: alice.account });
      expect(await vault.read.balanceOf([alice.account.address, fee.address])).to.equal(PEPE(100));
      // someone else's funds sit in the vault too (donated here): the fee must not come out of them
      await fee.write.mint([vault.address, PEPE(50)]);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.withdraw([fee.address, PEPE(10)], { account: alice.account }),
        vault,
        "TokenTookMoreThanAmount",
        [fee.address, PEPE(10), PEPE(10) + PEPE(10) / 100n],
      );
      expect(await fee.read.balanceOf([vault.address])).to.equal(PEPE(150));
      expect(await vault.read.balanceOf([alice.account.address, fee.address])).to.equal(PEPE(100));
      expect(await vault.read.totalBalance([fee.address])).to.equal(PEPE(100));
    });

    it("pays out the finalized balance, folding the session's delta", async () => {
      const { vault, alice, bob, usdc, pepe, runSession, trade } = await load();
      await runSession(trade);
      await vault.write.withdraw([usdc.address, USDC(8_999)], { account: alice.account });
      await vault.write.withdraw([pepe.address, 100_000n * 10n ** 18n], { account: alice.account });
      await vault.write.withdraw([usdc.address, USDC(1_000)], { account: bob.account });
      expect(await vault.read.slotOf([alice.account.address, usdc.address])).to.deep.equal([0n, 0n, 0]);
      expect(await vault.read.balanceOf([bob.account.address, usdc.address])).to.equal(0n);
    });

    it("is not stopped by the deposit pause", async () => {
      const { vault, alice, admin, usdc } = await load();
      await vault.write.pause({ account: admin.account });
      await vault.write.withdraw([usdc.address, USDC(1)], { account: alice.account });
      expect(await vault.read.balanceOf([alice.account.address, usdc.address])).to.equal(USDC(9_999));
    });
  });

  describe("withdraw while settling (no keeper)", () => {
    /** The fixture's trade committed in batches of 2: [alice USDC, alice PEPE], [bob PEPE, bob USDC], [treasury USDC]. */
    async function settling() {
      const f = await load();
      const id = await f.startSession();
      const chain = await f.beginSettlement(id, f.trade, 2);
      const post = (i: number) => f.vault.write.postBatch([id, i, chain.links[i]!.entries, chain.links[i]!.next], f.asSettler);
      return { ...f, id, chain, post };
    }

    it("pays an account whose delta is posted min(pre-session, pre-session + delta), and emits Withdrawn with session 0", async () => {
      const { vault, viem, id, post, alice, usdc, pepe } = await settling();
      await post(0);
      // alice: 10,000 USDC, -1,001 posted; 0 PEPE, +100,000 posted (not hers unless finalized)
      expect(await vault.read.withdrawable([alice.account.address, usdc.address])).to.equal(USDC(8_999));
      expect(await vault.read.withdrawable([alice.account.address, pepe.address])).to.equal(0n);
      await viem.assertions.emitWithArgs(
        vault.write.withdraw([usdc.address, USDC(8_000)], { account: alice.account }),
        vault,
        "Withdrawn",
        [alice.account.address, usdc.address, alice.account.address, USDC(8_000), USDC(2_000), 0],
      );
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.withdraw([usdc.address, USDC(999) + 1n], { account: alice.account }),
        vault,
        "InsufficientBalance",
        [alice.account.address, usdc.address, USDC(999), USDC(999) + 1n],
      );
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.withdraw([pepe.address, 1n], { account: alice.account }),
        vault,
        "InsufficientBalance",
        [alice.account.address, pepe.address, 0n, 1n],
      );
      // the posted delta stays and still folds in
      expect(await vault.read.slotOf([alice.account.address, usdc.address])).to.deep.equal([USDC(2_000), -USDC(1_001), id]);
    });

    it("keeps every later batch postable and finalize exact", async () => {
      const f = await settling();
      const { vault, post, alice, bob, carol, usdc, pepe } = f;
      await post(0);
      await vault.write.withdraw([usdc.address, USDC(8_999)], { account: alice.account });
      await post(1);
      await vault.write.withdraw([pepe.address, PEPE(900_000)], { account: bob.account });
      await post(2);
      // every batch posted: an account without a delta may take everything
      expect(await vault.read.withdrawable([carol.account.address, usdc.address])).to.equal(USDC(5_000));
      await vault.write.withdrawTo([usdc.address, USDC(5_000), alice.account.address], { account: carol.account });
      await f.finalize(f.id);
      expect(await vault.read.balanceOf([alice.account.address, usdc.address])).to.equal(0n);
      expect(await vault.read.balanceOf([alice.account.address, pepe.address])).to.equal(PEPE(100_000));
      expect(await vault.read.balanceOf([bob.account.address, pepe.address])).to.equal(0n);
      expect(await vault.read.balanceOf([bob.account.address, usdc.address])).to.equal(USDC(1_000));
      // the vault holds exactly what it owes
      expect(await usdc.read.balanceOf([vault.address])).to.equal(await vault.read.totalBalance([usdc.address]));
      expect(await vault.read.totalBalance([usdc.address])).to.equal(USDC(1_001));
      expect(await pepe.read.balanceOf([vault.address])).to.equal(PEPE(100_000));
    });

    it("leaves what was withdrawn withdrawn when the session is voided instead", async () => {
      const f = await settling();
      const { vault, post, alice, usdc, guardian } = f;
      await post(0);
      await vault.write.withdraw([usdc.address, USDC(8_999)], { account: alice.account });
      await vault.write.vetoSession([f.id, "wrong fill"], { account: guardian.account });
      expect(await vault.read.balanceOf([alice.account.address, usdc.address])).to.equal(USDC(1_001));
      await vault.write.withdraw([usdc.address, USDC(1_001)], { account: alice.account });
      expect(await usdc.read.balanceOf([vault.address])).to.equal(USDC(5_000)); // carol's
    });

    it("refuses an account whose delta is not posted while batches remain", async () => {
      const { vault, viem, id, post, bob, carol, usdc, pepe } = await settling();
      await post(0);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.withdraw([pepe.address, 1n], { account: bob.account }),
        vault,
        "DeltaNotPosted",
        [id, bob.account.address, pepe.address],
      );
      // carol has no delta, but the vault cannot know that before the last batch
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.withdraw([usdc.address, 1n], { account: carol.account }),
        vault,
        "DeltaNotPosted",
        [id, carol.account.address, usdc.address],
      );
    });
  });

  describe("withdrawTo", () => {
    it("pays another address from the caller's balance", async () => {
      const { vault, viem, alice, stranger, usdc } = await load();
      await viem.assertions.emitWithArgs(
        vault.write.withdrawTo([usdc.address, USDC(5), stranger.account.address], { account: alice.account }),
        vault,
        "Withdrawn",
        [alice.account.address, usdc.address, stranger.account.address, USDC(5), USDC(9_995), 0],
      );
      expect(await usdc.read.balanceOf([stranger.account.address])).to.equal(USDC(1_000_005));
    });

    it("refuses the zero address and running sessions", async () => {
      const { vault, viem, alice, usdc, startSession } = await load();
      await viem.assertions.revertWithCustomError(
        vault.write.withdrawTo([usdc.address, 1n, "0x0000000000000000000000000000000000000000"], {
          account: alice.account,
        }),
        vault,
        "ZeroAddress",
      );
      const id = await startSession();
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.withdrawTo([usdc.address, 1n, alice.account.address], { account: alice.account }),
        vault,
        "SessionActive",
        [id, Phase.Trading],
      );
    });
  });

  describe("withdrawWithPermit", () => {
    async function trading() {
      const f = await load();
      const sessionId = await f.startSession();
      const now = BigInt(await f.networkHelpers.time.latest());
      const permit: Withdrawal = {
        account: f.alice.account.address,
        token: f.usdc.address,
        amount: USDC(250),
        sessionId,
        nonce: 7n,
        deadline: now + 600n,
      };
      const signature = await signWithdrawal(f.settler, f.vault.address, permit);
      const send = (p: Withdrawal, sig: Hex, who = f.alice, to: Address = who.account.address) =>
        f.vault.write.withdrawWithPermit([p.token, p.amount, to, p.nonce, p.deadline, sig], { account: who.account });
      return { ...f, sessionId, permit, signature, send };
    }

    it("pays out during trading with a settler's permit and emits Withdrawn with the session", async () => {
      const { vault, viem, alice, carol, usdc, sessionId, permit, signature, send } = await trading();
      await viem.assertions.emitWithArgs(
        send(permit, signature, alice, carol.account.address),
        vault,
        "Withdrawn",
        [alice.account.address, usdc.address, carol.account.address, USDC(250), USDC(9_750), sessionId],
      );
      expect(await usdc.read.balanceOf([carol.account.address])).to.equal(USDC(1_000_000 - 5_000 + 250));
      expect(await vault.read.isPermitUsed([alice.account.address, 7n])).to.equal(true);
      expect(await vault.read.isPermitUsed([alice.account.address, 8n])).to.equal(false);
    });

    it("matches the EIP-712 digest an off-chain signer computes", async () => {
      const { vault, permit } = await trading();
      const onChain = await vault.read.withdrawalDigest([
        permit.account,
        permit.token,
        permit.amount,
        permit.sessionId,
        permit.nonce,
        permit.deadline,
      ]);
      expect(onChain).to.equal(
        hashTypedData({ domain: domain(vault.address), types: WITHDRAWAL_TYPES, primaryType: "Withdrawal", message: permit }),
      );
    });

    it("refuses a permit used twice", async () => {
      const { vault, viem, alice, permit, signature, send } = await trading();
      await send(permit, signature);
      await viem.assertions.revertWithCustomErrorWithArgs(
        send(permit, signature),
        vault,
        "PermitAlreadyUsed",
        [alice.account.address, 7n],
      );
    });

    it("refuses an expired permit", async () => {
      const { vault, viem, permit, signature, send, networkHelpers } = await trading();
      await networkHelpers.time.setNextBlockTimestamp(permit.deadline + 1n);
      await viem.assertions.revertWithCustomErrorWithArgs(send(permit, signature), vault, "PermitExpired", [
        permit.deadline,
      ]);
    });

    it("accepts a permit in the block of its deadline", async () => {
      const { vault, permit, signature, send, networkHelpers, alice, usdc } = await trading();
      await networkHelpers.time.setNextBlockTimestamp(permit.deadline);
      await send(permit, signature);
      expect(await vault.read.balanceOf([alice.account.address, usdc.address])).to.equal(USDC(9_750));
    });

    it("refuses a permit signed by someone without SETTLER_ROLE", async () => {
      const { vault, viem, alice, admin, permit, send } = await trading();
      const forged = await signWithdrawal(alice, vault.address, permit);
      await viem.assertions.revertWithCustomErrorWithArgs(send(permit, forged), vault, "InvalidPermitSigner", [
        alice.account.address,
      ]);
      const byAdmin = await signWithdrawal(admin, vault.address, permit);
      await viem.assertions.revertWithCustomErrorWithArgs(send(permit, byAdmin), vault, "InvalidPermitSigner", [
        admin.account.address,
      ]);
    });

    it("refuses once the settler's role is revoked", async () => {
      const { vault, viem, admin, settler, permit, signature, send, record } = await trading();
      const role = await vault.read.SETTLER_ROLE();
      await vault.write.revokeRole([role, record.settler], { account: admin.account });
      await viem.assertions.revertWithCustomErrorWithArgs(send(permit, signature), vault, "InvalidPermitSigner", [
        settler.account.address,
      ]);
    });

    it("refuses a permit altered or used by another account", async () => {
      const { vault, viem, bob, settler, permit, signature, send } = await trading();
      const notSettler = (signer: unknown) => signer !== settler.account.address;
      await viem.assertions.revertWithCustomErrorWithArgs(
        send({ ...permit, amount: permit.amount + 1n }, signature),
        vault,
        "InvalidPermitSigner",
        [notSettler],
      );
      await viem.assertions.revertWithCustomErrorWithArgs(send(permit, signature, bob), vault, "InvalidPermitSigner", [
        notSettler,
      ]);
      await viem.assertions.revertWithCustomErrorWithArgs(send(permit, "0x1234"), vault, "InvalidPermitSigner", [
        "0x0000000000000000000000000000000000000000",
      ]);
    });

    it("refuses a permit of an earlier session", async () => {
      const f = await trading();
      const { vault, viem, permit, send, networkHelpers, settler } = f;
      const longLived = { ...permit, deadline: permit.deadline + 100_000n };
      const signature = await signWithdrawal(settler, vault.address, longLived);
      await networkHelpers.time.increase(3_600n + GRACE);
      await vault.write.voidSession([permit.sessionId]);
      await f.startSession();
      await viem.assertions.revertWithCustomErrorWithArgs(send(longLived, signature), vault, "InvalidPermitSigner", [
        (signer: unknown) => signer !== settler.account.address,
      ]);
    });

    it("refuses outside the Trading phase", async () => {
      const f = await load();
      const { vault, viem, alice, usdc, settler } = f;
      const now = BigInt(await f.networkHelpers.time.latest());
      const permit: Withdrawal = {
        account: alice.account.address,
        token: usdc.address,
        amount: 1n,
        sessionId: 0,
        nonce: 1n,
        deadline: now + 3_600n,
      };
      const send = (p: Withdrawal) =>
        signWithdrawal(settler, vault.address, p).then((sig) =>
          vault.write.withdrawWithPermit([p.token, p.amount, alice.account.address, p.nonce, p.deadline, sig], {
            account: alice.account,
          }),
        );
      await viem.assertions.revertWithCustomErrorWithArgs(send(permit), vault, "WrongPhase", [
        0,
        Phase.None,
        Phase.Trading,
      ]);
      const id = await f.startSession();
      await f.beginSettlement(id, f.trade);
      await viem.assertions.revertWithCustomErrorWithArgs(send({ ...permit, sessionId: id }), vault, "WrongPhase", [
        id,
        Phase.Settling,
        Phase.Trading,
      ]);
    });

    it("refuses more than the balance, zero and the zero address", async () => {
      const { vault, viem, alice, usdc, settler, permit, send } = await trading();
      const big = { ...permit, amount: USDC(10_001), nonce: 1n };
      await viem.assertions.revertWithCustomErrorWithArgs(
        send(big, await signWithdrawal(settler, vault.address, big)),
        vault,
        "InsufficientBalance",
        [alice.account.address, usdc.address, USDC(10_000), USDC(10_001)],
      );
      const zero = { ...permit, amount: 0n, nonce: 2n };
      await viem.assertions.revertWithCustomError(
        send(zero, await signWithdrawal(settler, vault.address, zero)),
        vault,
        "ZeroAmount",
      );
      await viem.assertions.revertWithCustomError(
        send(permit, await signWithdrawal(settler, vault.address, permit), alice, "0x0000000000000000000000000000000000000000"),
        vault,
        "ZeroAddress",
      );
    });

    it("leaves the session settleable: deltas are checked against what remains", async () => {
      const f = await trading();
      const { vault, viem, permit, send, sessionId, asSettler } = f;
      const most = { ...permit, amount: USDC(9_000) };
      await send(most, await signWithdrawal(f.settler, vault.address, most));
      // alice has 1,000 USDC left: the trade's -1,001 USDC is refused
      const chain = await f.beginSettlement(sessionId, f.trade, 10);
      const l = chain.links[0]!;
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.postBatch([sessionId, 0, l.entries, l.next], asSettler),
        vault,
        "NegativeBalance",
        [3n, 0, -USDC(1)],
      );
    });
  });
});
