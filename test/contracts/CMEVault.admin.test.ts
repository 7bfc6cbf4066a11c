import { expect } from "chai";
import { network } from "hardhat";
import type { NetworkConnection } from "hardhat/types/network";
import { getAddress, toFunctionSelector, zeroAddress, type AbiFunction, type Hex } from "viem";
import { GRACE, vaultFixture } from "../support/vault.ts";

const ADMIN_ROLE: Hex = `0x${"00".repeat(32)}`;

describe("CMEVault administration", () => {
  let connection: NetworkConnection;
  before(async () => {
    connection = await network.create();
  });
  const load = () => connection.networkHelpers.loadFixture(vaultFixture);

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
