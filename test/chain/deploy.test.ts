import { expect } from "chai";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { network } from "hardhat";
import { getAddress } from "viem";
import CMEVaultModule from "../../ignition/modules/CMEVault.ts";
import { readDeployment } from "../../keeper/chain/deployment.ts";
import { deployCME, GUARDIAN_ROLE, LOCAL_GUARDIAN, SETTLER_ROLE, writeDeployment } from "../../keeper/chain/deploy.ts";

describe("deployment", () => {
  describe("deployCME", () => {
    it("deploys the vault, roles, accounts and local tokens, and records them", async () => {
      const { viem } = await network.create();
      const [, settler, treasury, insurance] = await viem.getWalletClients();
      const record = await deployCME(viem, {
        settler: settler!.account.address,
        treasury: treasury!.account.address,
        insurance: insurance!.account.address,
        gracePeriod: 300n,
        mocks: true,
      });
      const vault = await viem.getContractAt("CMEVault", record.vault);
      expect(record.chainId).to.equal(31337);
      expect(record.tokens.map((t) => [t.symbol, t.decimals, t.index])).to.deep.equal([
        ["USDC", 6, 0],
        ["PEPE", 18, 1],
        ["WIF", 18, 2],
        ["BONK", 18, 3],
      ]);
      for (const t of record.tokens) expect(await vault.read.tokenAt([t.index])).to.equal(t.address);
      expect(await vault.read.hasRole([SETTLER_ROLE, record.settler])).to.equal(true);
      expect(await vault.read.accountIdOf([record.treasury])).to.equal(1);
      expect(await vault.read.accountIdOf([record.insurance])).to.equal(2);
      expect(await vault.read.gracePeriod()).to.equal(300n);
      // local defaults: the guardian is Hardhat #19 (no other role), the windows at the vault's floors
      expect(await vault.read.hasRole([GUARDIAN_ROLE, LOCAL_GUARDIAN])).to.equal(true);
      expect(await vault.read.hasRole([SETTLER_ROLE, LOCAL_GUARDIAN])).to.equal(false);
      expect(await vault.read.hasRole([GUARDIAN_ROLE, record.settler])).to.equal(false);
      expect(await vault.read.sessionGap()).to.equal(await vault.read.MIN_SESSION_GAP());
      expect(await vault.read.challengeWindow()).to.equal(await vault.read.MIN_CHALLENGE_WINDOW());
      const publicClient = await viem.getPublicClient();
      expect(await publicClient.getCode({ address: record.vault, blockNumber: BigInt(record.startBlock) })).to.not.equal(
        undefined,
      );
      expect(
        await publicClient.getCode({ address: record.vault, blockNumber: BigInt(record.startBlock - 1) }),
      ).to.equal(undefined);

      // the file is what the keeper's reader accepts
      const dir = mkdtempSync(join(tmpdir(), "cme-deploy-"));
      try {
        const path = writeDeployment(record, join(dir, "deployments", "31337.json"));
        const parsed = readDeployment(path);
        expect(parsed).to.deep.equal(record);
        expect(Object.keys(JSON.parse(readFileSync(path, "utf8")))).to.deep.equal([
          "chainId",
          "vault",
          "startBlock",
          "settler",
          "treasury",
          "insurance",
          "tokens",
        ]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("grants the guardian role to a configured address and sets the windows it is given", async () => {
      const { viem } = await network.create();
      const [, settler, treasury, insurance, guardian] = await viem.getWalletClients();
      const record = await deployCME(viem, {
        settler: settler!.account.address,
        treasury: treasury!.account.address,
        insurance: insurance!.account.address,
        guardian: guardian!.account.address,
        gracePeriod: 300n,
        sessionGap: 1_800n,
        challengeWindow: 3_600n,
        mocks: true,
      });
      const vault = await viem.getContractAt("CMEVault", record.vault);
      expect(await vault.read.hasRole([GUARDIAN_ROLE, guardian!.account.address])).to.equal(true);
      expect(await vault.read.hasRole([GUARDIAN_ROLE, LOCAL_GUARDIAN])).to.equal(false);
      expect(await vault.read.sessionGap()).to.equal(1_800n);
      expect(await vault.read.challengeWindow()).to.equal(3_600n);
      // below the floors the vault refuses, and so the deployment fails
      let failed = false;
      try {
        const me = settler!.account.address;
        await deployCME(viem, { settler: me, treasury: me, insurance: me, gracePeriod: 300n, challengeWindow: 60n, mocks: false });
      } catch (err) {
        failed = /ChallengeWindowOutOfRange/.test(String(err));
      }
      expect(failed).to.equal(true);
    });

    it("lists already deployed tokens without mocks", async () => {
      const { viem } = await network.create();
      const [deployer] = await viem.getWalletClients();
      const usdc = await viem.deployContract("MockUSDC");
      const me = deployer!.account.address;
      const record = await deployCME(viem, { settler: me, treasury: me, insurance: me, gracePeriod: 1n, mocks: false, tokens: [usdc.address] });
      expect(record.tokens).to.deep.equal([{ symbol: "USDC", address: getAddress(usdc.address), decimals: 6, index: 0 }]);
      // one address registers once: treasury and insurance share id 1
      const vault = await viem.getContractAt("CMEVault", record.vault);
      expect(await vault.read.accountCount()).to.equal(1);
    });
  });

  describe("Ignition module", () => {
    it("produces the same vault state as deployCME", async () => {
      const { ignition, viem } = await network.create();
      const [, settler, treasury, insurance] = await viem.getWalletClients();
      const { vault } = await ignition.deploy(CMEVaultModule, {
        parameters: { CMEVault: { gracePeriod: 300 } },
        displayUi: false,
      });
      expect(await vault.read.tokenCount()).to.equal(4);
      const symbols = [];
      for (let i = 0; i < 4; i++) {
        const token = await viem.getContractAt("MockMemecoin", await vault.read.tokenAt([i]));
        symbols.push([await token.read.symbol(), await token.read.decimals()]);
      }
      expect(symbols).to.deep.equal([
        ["USDC", 6],
        ["PEPE", 18],
        ["WIF", 18],
        ["BONK", 18],
      ]);
      expect(await vault.read.hasRole([SETTLER_ROLE, settler!.account.address])).to.equal(true);
      expect(await vault.read.accountIdOf([treasury!.account.address])).to.equal(1);
      expect(await vault.read.accountIdOf([insurance!.account.address])).to.equal(2);
      expect(await vault.read.gracePeriod()).to.equal(300n);
    });
  });
});
