import { createRequire } from "node:module";
import { defineConfig, configVariable } from "hardhat/config";
import hardhatViem from "@nomicfoundation/hardhat-viem";
import hardhatViemAssertions from "@nomicfoundation/hardhat-viem-assertions";
import hardhatMocha from "@nomicfoundation/hardhat-mocha";
import hardhatNetworkHelpers from "@nomicfoundation/hardhat-network-helpers";
import hardhatIgnitionViem from "@nomicfoundation/hardhat-ignition-viem";
import hardhatKeystore from "@nomicfoundation/hardhat-keystore";

// Hardhat would download solc from the internet; the `solc` npm package ships the same
// compiler as wasm, so compiling works offline. Its version must equal `version` below.
const require = createRequire(import.meta.url);
const SOLC_VERSION = "0.8.30";
const solcPath = require.resolve("solc/soljson.js");

const compiler = {
  version: SOLC_VERSION,
  path: solcPath,
  settings: { optimizer: { enabled: true, runs: 10_000 }, evmVersion: "prague", viaIR: false },
};

export default defineConfig({
  plugins: [
    hardhatViem,
    hardhatViemAssertions,
    hardhatMocha,
    hardhatNetworkHelpers,
    hardhatIgnitionViem,
    hardhatKeystore,
  ],
  solidity: {
    profiles: {
      default: compiler,
      production: compiler,
    },
  },
  paths: {
    tests: { mocha: "test", solidity: "test/contracts" },
  },
  test: {
    mocha: { timeout: 120_000 },
  },
  networks: {
    // `npm start` and the keeper talk to this one over HTTP (hardhat node).
    localhost: { type: "http", chainType: "l1", url: "http://127.0.0.1:8545" },
    // Any real chain: RPC URL and settler key come from the environment or the keystore.
    remote: {
      type: "http",
      chainType: "l1",
      url: configVariable("CME_RPC_URL"),
      accounts: [configVariable("CME_SETTLER_KEY")],
    },
  },
});
