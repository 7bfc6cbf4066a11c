import { expect } from "chai";
import { network } from "hardhat";
import type { NetworkConnection } from "hardhat/types/network";
import { getAddress, keccak256, toFunctionSelector, toHex, zeroAddress, type AbiFunction, type Hex } from "viem";
import { LOCAL_GUARDIAN } from "../../keeper/chain/deploy.ts";
import { cmeFixture, GRACE, USDC } from "./fixture.ts";

const ADMIN_ROLE: Hex = `0x${"00".repeat(32)}`;
const SETTLER_ROLE = keccak256(toHex("SETTLER_ROLE"));
const GUARDIAN_ROLE = keccak256(toHex("GUARDIAN_ROLE"));

describe("CMEVault administration", () => {
  let connection: NetworkConnection;
  before(async () => {
    connection = await network.create();
  });
  const load = () => connection.networkHelpers.loadFixture(cmeFixture);

  describe("constructor", () => {
    it("grants the admin role and sets the grace period", async () => {
      const { vault, admin, publicClient, record } = await load();
      expect(await vault.read.hasRole([ADMIN_ROLE, admin.account.address])).to.equal(true);
      expect(await vault.read.gracePeriod()).to.equal(GRACE);
      const logs = await publicClient.getContractEvents({
        address: vault.address,
        abi: vault.abi,
        eventName: "GracePeriodSet",
        fromBlock: BigInt(record.startBlock),
        toBlock: BigInt(record.startBlock),
      });
      expect(logs.map((l) => l.args.gracePeriod)).to.deep.equal([GRACE]);
    });

    it("starts with the session gap and challenge window at their floors, and emits both", async () => {
      const { vault, publicClient, record } = await load();
      expect(await vault.read.MIN_SESSION_GAP()).to.equal(600n);
      expect(await vault.read.MIN_CHALLENGE_WINDOW()).to.equal(900n);
      expect(await vault.read.MAX_CHALLENGE_WINDOW()).to.equal(3n * 86_400n);
      expect(await vault.read.sessionGap()).to.equal(600n);
      expect(await vault.read.challengeWindow()).to.equal(900n);
      expect(await vault.read.nextSessionAt()).to.equal(0n);
      const at = { fromBlock: BigInt(record.startBlock), toBlock: BigInt(record.startBlock) };
      const gaps = await publicClient.getContractEvents({ address: vault.address, abi: vault.abi, eventName: "SessionGapSet", ...at });
      const windows = await publicClient.getContractEvents({ address: vault.address, abi: vault.abi, eventName: "ChallengeWindowSet", ...at });
      expect(gaps.map((l) => l.args.sessionGap)).to.deep.equal([600n]);
      expect(windows.map((l) => l.args.challengeWindow)).to.deep.equal([900n]);
    });

    it("keeps the guardian apart: deploy grants GUARDIAN_ROLE to the local guardian only", async () => {
      const { vault, admin, settler, guardian } = await load();
      expect(getAddress(guardian.account.address)).to.equal(LOCAL_GUARDIAN);
      expect(await vault.read.hasRole([GUARDIAN_ROLE, LOCAL_GUARDIAN])).to.equal(true);
      expect(await vault.read.hasRole([GUARDIAN_ROLE, admin.account.address])).to.equal(false);
      expect(await vault.read.hasRole([GUARDIAN_ROLE, settler.account.address])).to.equal(false);
      expect(await vault.read.hasRole([SETTLER_ROLE, LOCAL_GUARDIAN])).to.equal(false);
      expect(await vault.read.GUARDIAN_ROLE()).to.equal(GUARDIAN_ROLE);
    });

    it("refuses a zero admin and a grace period above the maximum", async () => {
      const { viem, admin } = await load();
      await expectDeployError(viem.deployContract("CMEVault", [zeroAddress, 1n]), "ZeroAddress");
      await expectDeployError(
        viem.deployContract("CMEVault", [admin.account.address, 30n * 86_400n + 1n]),
        "GracePeriodTooLong",
      );
    });
  });

  describe("listToken", () => {
    it("assigns the next index and emits TokenListed with the decimals", async () => {
      const { vault, viem, admin } = await load();
      const doge = await viem.deployContract("MockMemecoin", ["Doge (mock)", "DOGE"]);
      await viem.assertions.emitWithArgs(
        vault.write.listToken([doge.address], { account: admin.account }),
        vault,
        "TokenListed",
        [getAddress(doge.address), 4, 18],
      );
      expect(await vault.read.tokenCount()).to.equal(5);
      expect(await vault.read.tokenAt([4])).to.equal(getAddress(doge.address));
      expect(await vault.read.tokenIndexOf([doge.address])).to.deep.equal([4, true]);
    });

    it("refuses a listed token, the zero address, and addresses that are not ERC-20s", async () => {
      const { vault, viem, admin, usdc, stranger } = await load();
      const asAdmin = { account: admin.account };
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.listToken([usdc.address], asAdmin),
        vault,
        "TokenAlreadyListed",
        [getAddress(usdc.address)],
      );
      await viem.assertions.revertWithCustomError(vault.write.listToken([zeroAddress], asAdmin), vault, "ZeroAddress");
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.listToken([stranger.account.address], asAdmin),
        vault,
        "InvalidToken",
        [getAddress(stranger.account.address)],
      );
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.listToken([vault.address], asAdmin),
        vault,
        "InvalidToken",
        [getAddress(vault.address)],
      );
    });

    it("refuses callers without the admin role", async () => {
      const { vault, viem, settler } = await load();
      const doge = await viem.deployContract("MockMemecoin", ["Doge (mock)", "DOGE"]);
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.listToken([doge.address], { account: settler.account }),
        vault,
        "AccessControlUnauthorizedAccount",
        [getAddress(settler.account.address), ADMIN_ROLE],
      );
    });

    it("refuses a 256th token", async () => {
      const { vault, viem, admin } = await load();
      for (let i = 4; i < 255; i++) {
        const t = await viem.deployContract("MockMemecoin", [`T${i}`, `T${i}`]);
        await vault.write.listToken([t.address], { account: admin.account });
      }
      expect(await vault.read.tokenCount()).to.equal(255);
      const last = await viem.deployContract("MockMemecoin", ["Last", "LAST"]);
      await viem.assertions.revertWithCustomError(
        vault.write.listToken([last.address], { account: admin.account }),
        vault,
        "TooManyTokens",
      );
    });
  });

  describe("setGracePeriod", () => {
    it("updates the grace period and emits GracePeriodSet", async () => {
      const { vault, viem, admin } = await load();
      await viem.assertions.emitWithArgs(
        vault.write.setGracePeriod([60n], { account: admin.account }),
        vault,
        "GracePeriodSet",
        [60n],
      );
      expect(await vault.read.gracePeriod()).to.equal(60n);
    });

    it("applies to the running session's void time", async () => {
      const { vault, viem, admin, startSession, networkHelpers } = await load();
      const id = await startSession(100n);
      await vault.write.setGracePeriod([0n], { account: admin.account });
      const { deadline } = await vault.read.session([id]);
      await networkHelpers.time.setNextBlockTimestamp(deadline);
      await viem.assertions.emit(vault.write.voidSession([id]), vault, "SessionVoided");
    });

    it("refuses more than MAX_GRACE_PERIOD and callers without the admin role", async () => {
      const { vault, viem, admin, settler } = await load();
      const max = await vault.read.MAX_GRACE_PERIOD();
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.setGracePeriod([max + 1n], { account: admin.account }),
        vault,
        "GracePeriodTooLong",
        [max + 1n, max],
      );
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.setGracePeriod([1n], { account: settler.account }),
        vault,
        "AccessControlUnauthorizedAccount",
        [getAddress(settler.account.address), ADMIN_ROLE],
      );
    });
  });

  describe("setSessionGap", () => {
    it("updates the gap from the next finalize or void, and emits SessionGapSet", async () => {
      const { vault, viem, admin, runSession, now } = await load();
      await runSession([]);
      const open = await vault.read.nextSessionAt();
      await viem.assertions.emitWithArgs(
        vault.write.setSessionGap([3_600n], { account: admin.account }),
        vault,
        "SessionGapSet",
        [3_600n],
      );
      expect(await vault.read.sessionGap()).to.equal(3_600n);
      // the window already open keeps its end
      expect(await vault.read.nextSessionAt()).to.equal(open);
      await runSession([]);
      expect(await vault.read.nextSessionAt()).to.equal((await now()) + 3_600n);
    });

    it("refuses less than MIN_SESSION_GAP and callers without the admin role", async () => {
      const { vault, viem, admin, settler } = await load();
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.setSessionGap([599n], { account: admin.account }),
        vault,
        "SessionGapTooShort",
        [599n, 600n],
      );
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.setSessionGap([3_600n], { account: settler.account }),
        vault,
        "AccessControlUnauthorizedAccount",
        [getAddress(settler.account.address), ADMIN_ROLE],
      );
    });
  });

  describe("setChallengeWindow", () => {
    it("updates the window for windows that start later, and emits ChallengeWindowSet", async () => {
      const { vault, viem, admin, asSettler, startSession, beginSettlement, trade, now } = await load();
      const id = await startSession();
      const chain = await beginSettlement(id, trade, 10);
      await vault.write.postBatch([id, 0, chain.links[0]!.entries, chain.links[0]!.next], asSettler);
      const finalizableAt = (await vault.read.session([id])).finalizableAt;
      await viem.assertions.emitWithArgs(
        vault.write.setChallengeWindow([86_400n], { account: admin.account }),
        vault,
        "ChallengeWindowSet",
        [86_400n],
      );
      expect(await vault.read.challengeWindow()).to.equal(86_400n);
      expect((await vault.read.session([id])).finalizableAt).to.equal(finalizableAt);
      expect(BigInt(finalizableAt) < (await now()) + 86_400n).to.equal(true);
    });

    it("refuses outside [MIN_CHALLENGE_WINDOW, MAX_CHALLENGE_WINDOW] and callers without the admin role", async () => {
      const { vault, viem, admin, guardian } = await load();
      for (const w of [899n, 3n * 86_400n + 1n]) {
        await viem.assertions.revertWithCustomErrorWithArgs(
          vault.write.setChallengeWindow([w], { account: admin.account }),
          vault,
          "ChallengeWindowOutOfRange",
          [w, 900n, 3n * 86_400n],
        );
      }
      await vault.write.setChallengeWindow([3n * 86_400n], { account: admin.account });
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.setChallengeWindow([900n], { account: guardian.account }),
        vault,
        "AccessControlUnauthorizedAccount",
        [getAddress(guardian.account.address), ADMIN_ROLE],
      );
    });
  });

  describe("pause / unpause", () => {
    it("pauses and unpauses deposits, admin only", async () => {
      const { vault, viem, admin, settler } = await load();
      await viem.assertions.emitWithArgs(vault.write.pause({ account: admin.account }), vault, "Paused", [
        getAddress(admin.account.address),
      ]);
      expect(await vault.read.paused()).to.equal(true);
      await viem.assertions.revertWithCustomError(vault.write.pause({ account: admin.account }), vault, "EnforcedPause");
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.unpause({ account: settler.account }),
        vault,
        "AccessControlUnauthorizedAccount",
        [getAddress(settler.account.address), ADMIN_ROLE],
      );
      await viem.assertions.emit(vault.write.unpause({ account: admin.account }), vault, "Unpaused");
      await viem.assertions.revertWithCustomError(
        vault.write.unpause({ account: admin.account }),
        vault,
        "ExpectedPause",
      );
      await viem.assertions.revertWithCustomErrorWithArgs(
        vault.write.pause({ account: settler.account }),
        vault,
        "AccessControlUnauthorizedAccount",
        [getAddress(settler.account.address), ADMIN_ROLE],
      );
    });
  });

  describe("views", () => {
    it("answer for unknown tokens and accounts with zeros", async () => {
      const { vault, stranger, usdc, admin } = await load();
      expect(await vault.read.tokenIndexOf([admin.account.address])).to.deep.equal([0, false]);
      expect(await vault.read.tokenAt([200])).to.equal(zeroAddress);
      expect(await vault.read.accountIdOf([stranger.account.address])).to.equal(0);
      expect(await vault.read.accountAt([999])).to.equal(zeroAddress);
      expect(await vault.read.balanceOf([stranger.account.address, usdc.address])).to.equal(0n);
      expect(await vault.read.balanceOf([stranger.account.address, admin.account.address])).to.equal(0n);
      expect(await vault.read.slotOf([stranger.account.address, usdc.address])).to.deep.equal([0n, 0n, 0]);
      expect(await vault.read.sessionNet([1, admin.account.address])).to.equal(0n);
      expect(await vault.read.withdrawable([stranger.account.address, usdc.address])).to.equal(0n);
      expect(await vault.read.withdrawable([stranger.account.address, admin.account.address])).to.equal(0n);
      expect(await vault.read.totalBalance([admin.account.address])).to.equal(0n);
      expect(await vault.read.totalBalance([usdc.address])).to.equal(USDC(15_000));
      expect((await vault.read.session([9])).phase).to.equal(0);
    });

    it("report ERC-165 support for ICMEVault and AccessControl", async () => {
      const { vault, viem } = await load();
      const iface = await viem.getContractAt("ICMEVault", vault.address);
      let id = 0;
      for (const item of iface.abi) {
        if (item.type === "function") id ^= Number.parseInt(toFunctionSelector(item as AbiFunction).slice(2), 16);
      }
      const interfaceId = `0x${(id >>> 0).toString(16).padStart(8, "0")}` as Hex;
      expect(await vault.read.supportsInterface([interfaceId])).to.equal(true);
      expect(await vault.read.supportsInterface(["0x7965db0b"])).to.equal(true); // IAccessControl
      expect(await vault.read.supportsInterface(["0x01ffc9a7"])).to.equal(true); // IERC165
      expect(await vault.read.supportsInterface(["0xdeadbeef"])).to.equal(false);
    });
  });
});

async function expectDeployError(deploy: Promise<unknown>, errorName: string): Promise<void> {
  try {
    await deploy;
  } catch (err) {
    expect(String((err as Error).message)).to.contain(errorName);
    return;
  }
  expect.fail(`deployment succeeded; expected ${errorName}`);
}
