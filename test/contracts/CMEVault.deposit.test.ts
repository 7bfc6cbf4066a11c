import { expect } from "chai";
import { network } from "hardhat";
import type { NetworkConnection } from "hardhat/types/network";
import { encodeFunctionData, getAddress, maxUint256, zeroAddress } from "viem";
import { encodeEntries, batchLinkHash, ZERO_HASH } from "../../keeper/settlement/batches.ts";
import { cmeFixture, FILL_LOG_HASH, MAX_BALANCE, PEPE, USDC } from "./fixture.ts";

const E33 = 10n ** 33n;

/** The vault fixture plus the hostile tokens listed (indexes 4..7) and funded for alice. */
async function hostileFixture(connection: NetworkConnection) {
  const f = await cmeFixture(connection);
  const { viem, vault, admin, alice } = f;
  const fot = await viem.deployContract("FeeOnTransferToken", [100n]); // 1% fee
  const noReturn = await viem.deployContract("NoReturnToken");
  const revertOnZero = await viem.deployContract("RevertOnZeroToken");
  const reentrant = await viem.deployContract("ReentrantToken");
  const asAlice = { account: alice.account };
  await fot.write.mint([alice.account.address, PEPE(1_000)]);
  await fot.write.approve([vault.address, maxUint256], asAlice);
  await noReturn.write.mint([alice.account.address, PEPE(1_000)]);
  await noReturn.write.approve([vault.address, maxUint256], asAlice);
  await revertOnZero.write.mint([alice.account.address, PEPE(1_000)]);
  await revertOnZero.write.approve([vault.address, maxUint256], asAlice);
  await reentrant.write.mint([alice.account.address, PEPE(1_000)]);
  await reentrant.write.approve([vault.address, maxUint256], asAlice);
  for (const t of [fot, noReturn, revertOnZero, reentrant]) {
    await vault.write.listToken([t.address], { account: admin.account });
  }
  return { ...f, fot, noReturn, revertOnZero, reentrant };
}

describe("CMEVault deposits", () => {
  let connection: NetworkConnection;
  before(async () => {
    connection = await network.create();
  });
  const load = () => connection.networkHelpers.loadFixture(cmeFixture);
  const loadHostile = () => connection.networkHelpers.loadFixture(hostileFixture);

  describe("register", () => {
    it("assigns the next id once and is idempotent", async () => {
      const { vault, viem, stranger } = await load();
      await viem.assertions.emitWithArgs(
        vault.write.register([stranger.account.address], { account: stranger.account }),
        vault,
        "AccountRegistered",
        [stranger.account.address, 6],
      );
      await vault.write.register([stranger.account.address]);
      expect(await vault.read.accountIdOf([stranger.account.address])).to.equal(6);
      expect(await vault.read.accountAt([6])).to.equal(getAddress(stranger.account.address));
      expect(await vault.read.accountCount()).to.equal(6);
    });

    it("refuses the zero address", async () => {
      const { vault, viem } = await load();
      await viem.assertions.revertWithCustomError(vault.write.register([zeroAddress]), vault, "ZeroAddress");
    });
  });

  describe("deposit", () => {
    it("credits the sender, registers it, and emits Deposited with the new balance", async () => {
      const { vault, viem, stranger, usdc } = await load();
      await viem.assertions.emitWithArgs(
        vault.write.deposit([usdc.address, USDC(20)], { account: stranger.account }),
        vault,
        "Deposited",
        [stranger.account.address, usdc.address, stranger.account.address, USDC(20), USDC(20)],
      );
      await viem.assertions.emitWithArgs(
        vault.write.deposit([usdc.address, USDC(5)], { account: stranger.account }),
        vault,
        "Deposited",
        [stranger.account.address, usdc.address, stranger.account.address, USDC(5), USDC(25)],
      );
      expect(await vault.read.accountIdOf([stranger.account.address])).to.equal(6);
      expect(await usdc.read.balanceOf([vault.address])).to.equal(USDC(15_025));
    });

    it("refuses zero and unlisted tokens", async () => {
      const { vault, viem, alice, usdc, admin } = await load();
      await viem.assertions.revertWithCustomError(
        vault.write.deposit([usdc.address, 0n], { account: alice.account }),
        vault,
        "ZeroAmount",
      );
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.deposit([admin.account.address, 1n], { account: alice.account }),
        vault,
        "TokenNotListed",
        [admin.account.address],
      );
    });

    it("refuses while paused, and works again once unpaused", async () => {
      const { vault, viem, alice, admin, usdc } = await load();
      await vault.write.pause({ account: admin.account });
      await viem.assertions.revertWithCustomError(
        vault.write.deposit([usdc.address, 1n], { account: alice.account }),
        vault,
        "EnforcedPause",
      );
      await vault.write.unpause({ account: admin.account });
      await vault.write.deposit([usdc.address, 1n], { account: alice.account });
      expect(await vault.read.balanceOf([alice.account.address, usdc.address])).to.equal(USDC(10_000) + 1n);
    });

    it("is open during trading and settlement, and keeps the pending delta", async () => {
      const f = await load();
      const { vault, alice, usdc, asSettler } = f;
      const id = await f.startSession();
      await vault.write.deposit([usdc.address, USDC(1)], { account: alice.account });
      expect(await vault.read.balanceOf([alice.account.address, usdc.address])).to.equal(USDC(10_001));
      const chain = await f.beginSettlement(id, f.trade, 10);
      const l = chain.links[0]!;
      await vault.write.postBatch([id, 0, l.entries, l.next], asSettler);
      await vault.write.deposit([usdc.address, USDC(2)], { account: alice.account });
      expect(await vault.read.slotOf([alice.account.address, usdc.address])).to.deep.equal([USDC(10_003), -USDC(1_001), id]);
      expect(await vault.read.balanceOf([alice.account.address, usdc.address])).to.equal(USDC(10_003));
      await f.finalize(id);
      expect(await vault.read.balanceOf([alice.account.address, usdc.address])).to.equal(USDC(9_002));
    });

    it("folds a finished session's delta into the slot it writes", async () => {
      const { vault, alice, usdc, runSession, trade } = await load();
      await runSession(trade);
      await vault.write.deposit([usdc.address, USDC(1)], { account: alice.account });
      expect(await vault.read.slotOf([alice.account.address, usdc.address])).to.deep.equal([USDC(9_000), 0n, 0]);
    });

    it("holds balances of 1e33 base units and refuses a deposit that takes the token's total above 2^112 - 1", async () => {
      const { vault, viem, alice, carol, pepe, runSession } = await load();
      await pepe.write.mint([alice.account.address, 8n * E33]);
      await vault.write.deposit([pepe.address, 2n * E33], { account: alice.account });
      // alice sells 1e33 PEPE to carol for 1 USDC
      await runSession([
        { accountId: 3, tokenIndex: 1, delta: -E33 },
        { accountId: 5, tokenIndex: 1, delta: E33 },
        { accountId: 3, tokenIndex: 0, delta: USDC(1) },
        { accountId: 5, tokenIndex: 0, delta: -USDC(1) },
      ]);
      expect(await vault.read.balanceOf([alice.account.address, pepe.address])).to.equal(E33);
      expect(await vault.read.balanceOf([carol.account.address, pepe.address])).to.equal(E33);
      const total = 2n * E33 + PEPE(1_000_000); // alice, carol, and bob's 1e24
      expect(await vault.read.totalBalance([pepe.address])).to.equal(total);
      const room = MAX_BALANCE - total;
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.deposit([pepe.address, room + 1n], { account: alice.account }),
        vault,
        "TotalBalanceOverflow",
        [pepe.address, MAX_BALANCE + 1n],
      );
      await vault.write.deposit([pepe.address, room], { account: alice.account });
      expect(await vault.read.totalBalance([pepe.address])).to.equal(MAX_BALANCE);
      expect(await vault.read.balanceOf([alice.account.address, pepe.address])).to.equal(E33 + room);
      // withdrawing makes room again
      await vault.write.withdraw([pepe.address, E33 + room], { account: alice.account });
      expect(await vault.read.totalBalance([pepe.address])).to.equal(E33 + PEPE(1_000_000));
    });

    it("keeps a committed credit postable whatever an outsider deposits, before or after the commit", async () => {
      const f = await load();
      const { vault, viem, alice, bob, stranger, pepe, asSettler } = f;
      await pepe.write.mint([alice.account.address, 6n * E33]);
      await pepe.write.mint([stranger.account.address, MAX_BALANCE]);
      await vault.write.deposit([pepe.address, 2n * E33], { account: alice.account });
      // before the commit: a stranger fills bob's slot as far as the cap lets it
      const before = MAX_BALANCE - (await vault.read.totalBalance([pepe.address])) - E33;
      await vault.write.depositFor([bob.account.address, pepe.address, before], { account: stranger.account });
      const id = await f.startSession();
      const packed = encodeEntries([
        { accountId: 3, tokenIndex: 1, delta: -2n * E33 },
        { accountId: 4, tokenIndex: 1, delta: 2n * E33 },
      ]);
      await vault.write.beginSettlement([id, batchLinkHash(id, 0, packed, ZERO_HASH), 1, FILL_LOG_HASH], asSettler);
      // after the commit: the stranger tries to push bob past the room the credit needs
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.depositFor([bob.account.address, pepe.address, E33 + 1n], { account: stranger.account }),
        vault,
        "TotalBalanceOverflow",
        [pepe.address, MAX_BALANCE + 1n],
      );
      await vault.write.depositFor([bob.account.address, pepe.address, E33], { account: stranger.account });
      expect(await vault.read.totalBalance([pepe.address])).to.equal(MAX_BALANCE);
      // bob's slot: settled MAX - 2e33, and the 2e33 credit still posts and folds to exactly the cap
      await vault.write.postBatch([id, 0, packed, ZERO_HASH], asSettler);
      await f.finalize(id);
      expect(await vault.read.balanceOf([bob.account.address, pepe.address])).to.equal(MAX_BALANCE);
      expect(await vault.read.balanceOf([alice.account.address, pepe.address])).to.equal(0n);
    });
  });

  describe("depositFor", () => {
    it("credits the named account from the sender's tokens", async () => {
      const { vault, viem, alice, stranger, usdc } = await load();
      const before = await usdc.read.balanceOf([alice.account.address]);
      await viem.assertions.emitWithArgs(
        vault.write.depositFor([stranger.account.address, usdc.address, USDC(3)], { account: alice.account }),
        vault,
        "Deposited",
        [stranger.account.address, usdc.address, alice.account.address, USDC(3), USDC(3)],
      );
      expect(await usdc.read.balanceOf([alice.account.address])).to.equal(before - USDC(3));
      expect(await vault.read.balanceOf([stranger.account.address, usdc.address])).to.equal(USDC(3));
    });

    it("refuses the zero address", async () => {
      const { vault, viem, alice, usdc } = await load();
      await viem.assertions.revertWithCustomError(
        vault.write.depositFor([zeroAddress, usdc.address, 1n], { account: alice.account }),
        vault,
        "ZeroAddress",
      );
    });
  });

  describe("depositWithPermit", () => {
    async function permitFixture() {
      const f = await load();
      const wallets = await f.viem.getWalletClients();
      const fresh = wallets[9]!; // never approved the vault
      await f.usdc.write.mint([fresh.account.address, USDC(100)]);
      const deadline = BigInt(await f.networkHelpers.time.latest()) + 3_600n;
      const sign = async (value: bigint) => {
        const nonce = await f.usdc.read.nonces([fresh.account.address]);
        const signature = await fresh.signTypedData({
          account: fresh.account,
          domain: { name: "USD Coin (mock)", version: "1", chainId: 31337, verifyingContract: f.usdc.address },
          types: {
            Permit: [
              { name: "owner", type: "address" },
              { name: "spender", type: "address" },
              { name: "value", type: "uint256" },
              { name: "nonce", type: "uint256" },
              { name: "deadline", type: "uint256" },
            ],
          },
          primaryType: "Permit",
          message: { owner: fresh.account.address, spender: f.vault.address, value, nonce, deadline },
        });
        const r = `0x${signature.slice(2, 66)}` as const;
        const s = `0x${signature.slice(66, 130)}` as const;
        const v = Number.parseInt(signature.slice(130, 132), 16);
        return { r, s, v };
      };
      return { ...f, fresh, deadline, sign };
    }

    it("approves and deposits in one transaction", async () => {
      const { vault, fresh, usdc, deadline, sign } = await permitFixture();
      const { v, r, s } = await sign(USDC(40));
      await vault.write.depositWithPermit([usdc.address, USDC(40), deadline, v, r, s], { account: fresh.account });
      expect(await vault.read.balanceOf([fresh.account.address, usdc.address])).to.equal(USDC(40));
      expect(await usdc.read.allowance([fresh.account.address, vault.address])).to.equal(0n);
    });

    it("still deposits when the permit was front-run", async () => {
      const { vault, fresh, stranger, usdc, deadline, sign } = await permitFixture();
      const { v, r, s } = await sign(USDC(40));
      await usdc.write.permit([fresh.account.address, vault.address, USDC(40), deadline, v, r, s], {
        account: stranger.account,
      });
      await vault.write.depositWithPermit([usdc.address, USDC(40), deadline, v, r, s], { account: fresh.account });
      expect(await vault.read.balanceOf([fresh.account.address, usdc.address])).to.equal(USDC(40));
    });

    it("reverts when the permit is bad and there is no allowance", async () => {
      const { vault, viem, fresh, usdc, deadline, sign } = await permitFixture();
      const { v, r, s } = await sign(USDC(1));
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.depositWithPermit([usdc.address, USDC(40), deadline, v, r, s], { account: fresh.account }),
        usdc,
        "ERC20InsufficientAllowance",
        [vault.address, 0n, USDC(40)],
      );
      expect(await vault.read.balanceOf([fresh.account.address, usdc.address])).to.equal(0n);
    });

    it("refuses an unlisted token before calling it", async () => {
      const { vault, viem, fresh, deadline, sign, admin } = await permitFixture();
      const { v, r, s } = await sign(1n);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.depositWithPermit([admin.account.address, 1n, deadline, v, r, s], { account: fresh.account }),
        vault,
        "TokenNotListed",
        [admin.account.address],
      );
    });
  });

  describe("hostile tokens", () => {
    it("credits a fee-on-transfer token with what the vault received", async () => {
      const { vault, viem, alice, fot } = await loadHostile();
      await viem.assertions.emitWithArgs(
        vault.write.deposit([fot.address, PEPE(100)], { account: alice.account }),
        vault,
        "Deposited",
        [alice.account.address, fot.address, alice.account.address, PEPE(99), PEPE(99)],
      );
      expect(await fot.read.balanceOf([vault.address])).to.equal(PEPE(99));
      // withdrawing sends the full balance; the fee then comes out of what alice receives
      const before = await fot.read.balanceOf([alice.account.address]);
      await vault.write.withdraw([fot.address, PEPE(99)], { account: alice.account });
      expect(await fot.read.balanceOf([alice.account.address])).to.equal(before + (PEPE(99) * 99n) / 100n);
      expect(await fot.read.balanceOf([vault.address])).to.equal(0n);
    });

    it("refuses a token whose transfer shrinks the vault's balance, with a custom error", async () => {
      const { vault, viem, admin, alice } = await loadHostile();
      const shrink = await viem.deployContract("ShrinkOnReceiptToken");
      await vault.write.listToken([shrink.address], { account: admin.account });
      await shrink.write.mint([vault.address, PEPE(100)]); // what the vault already holds
      await shrink.write.mint([alice.account.address, PEPE(10)]);
      await shrink.write.approve([vault.address, PEPE(10)], { account: alice.account });
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.deposit([shrink.address, PEPE(10)], { account: alice.account }),
        vault,
        "TokenBalanceDecreased",
        [shrink.address, PEPE(100), PEPE(90)],
      );
      expect(await vault.read.balanceOf([alice.account.address, shrink.address])).to.equal(0n);
      expect(await shrink.read.balanceOf([vault.address])).to.equal(PEPE(100));
    });

    it("credits a sender-fee token with the amount: the fee comes out of the sender's wallet", async () => {
      const { vault, viem, admin, alice } = await loadHostile();
      const fee = await viem.deployContract("SenderFeeToken", [100n]);
      await vault.write.listToken([fee.address], { account: admin.account });
      await fee.write.mint([alice.account.address, PEPE(1_000)]);
      await fee.write.approve([vault.address, PEPE(1_000)], { account: alice.account });
      await vault.write.deposit([fee.address, PEPE(100)], { account: alice.account });
      expect(await vault.read.balanceOf([alice.account.address, fee.address])).to.equal(PEPE(100));
      expect(await fee.read.balanceOf([alice.account.address])).to.equal(PEPE(899));
    });

    it("moves a token whose transfer functions return nothing", async () => {
      const { vault, alice, noReturn } = await loadHostile();
      await vault.write.deposit([noReturn.address, PEPE(10)], { account: alice.account });
      await vault.write.withdraw([noReturn.address, PEPE(4)], { account: alice.account });
      expect(await vault.read.balanceOf([alice.account.address, noReturn.address])).to.equal(PEPE(6));
      expect(await noReturn.read.balanceOf([vault.address])).to.equal(PEPE(6));
    });

    it("never sends a zero transfer to a token that reverts on one", async () => {
      const { vault, viem, alice, revertOnZero } = await loadHostile();
      await viem.assertions.revertWithCustomError(
        vault.write.deposit([revertOnZero.address, 0n], { account: alice.account }),
        vault,
        "ZeroAmount",
      );
      await vault.write.deposit([revertOnZero.address, 5n], { account: alice.account });
      await viem.assertions.revertWithCustomError(
        vault.write.withdraw([revertOnZero.address, 0n], { account: alice.account }),
        vault,
        "ZeroAmount",
      );
      await vault.write.withdraw([revertOnZero.address, 5n], { account: alice.account });
      expect(await vault.read.balanceOf([alice.account.address, revertOnZero.address])).to.equal(0n);
    });

    it("refuses re-entry from a token's transfer during deposit and withdrawal", async () => {
      const { vault, viem, alice, reentrant } = await loadHostile();
      await vault.write.deposit([reentrant.address, PEPE(10)], { account: alice.account });
      const withdrawAgain = encodeFunctionData({
        abi: vault.abi,
        functionName: "withdraw",
        args: [reentrant.address, 1n],
      });
      await reentrant.write.arm([vault.address, withdrawAgain]);
      await viem.assertions.revertWithCustomError(
        vault.write.deposit([reentrant.address, PEPE(1)], { account: alice.account }),
        vault,
        "ReentrancyGuardReentrantCall",
      );
      await viem.assertions.revertWithCustomError(
        vault.write.withdraw([reentrant.address, PEPE(1)], { account: alice.account }),
        vault,
        "ReentrancyGuardReentrantCall",
      );
      expect(await vault.read.balanceOf([alice.account.address, reentrant.address])).to.equal(PEPE(10));
      expect(await reentrant.read.balanceOf([vault.address])).to.equal(PEPE(10));
      await reentrant.write.disarm();
      await vault.write.withdraw([reentrant.address, PEPE(10)], { account: alice.account });
      expect(await reentrant.read.balanceOf([vault.address])).to.equal(0n);
    });
  });
});
