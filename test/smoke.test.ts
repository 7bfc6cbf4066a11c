import { expect } from "chai";
import { network } from "hardhat";
describe("smoke", () => {
  it("deploys and sets", async () => {
    const { viem } = await network.create();
    const s = await viem.deployContract("Smoke");
    await s.write.set([7n]);
    expect(await s.read.x()).to.equal(7n);
  });
});
