// Deploys the CME vault and writes deployments/<chainId>.json.
//   local node:  npx hardhat node   then   npm run deploy -- --network localhost
//   any RPC:     CME_RPC_URL=… CME_SETTLER_KEY=… CME_TREASURY_ADDRESS=… CME_INSURANCE_ADDRESS=… \
//                CME_GUARDIAN=… CME_TOKENS=0xUSDC,0xPEPE npm run deploy -- --network remote
// The deployer is admin. On chain 31337 without CME_TOKENS it deploys MockUSDC and the PEPE, WIF,
// BONK mocks (open mint); there settler, treasury and insurance default to Hardhat accounts #1, #2
// and #3, and the guardian to Hardhat account #19 (LOCAL_GUARDIAN). Elsewhere CME_TREASURY_ADDRESS,
// CME_INSURANCE_ADDRESS and CME_GUARDIAN (the auditors' multisig that runs the watchtower,
// `npm run audit -- --watch`) are required and the settler defaults to the deployer. Any of them
// can be set by environment anywhere.
// Optional: CME_GRACE_PERIOD (seconds, default 300 locally, 3600 elsewhere), CME_SESSION_GAP_SEC
// and CME_CHALLENGE_WINDOW_SEC (seconds; default the vault's floors, 600 and 900),
// CME_DEPLOYMENT (path).
import { network } from "hardhat";
import { getAddress, isAddress, type Address } from "viem";
import { deployCME, LOCAL_GUARDIAN, writeDeployment, type DeployCMEOptions } from "../keeper/chain/deploy.ts";

const LOCAL_CHAIN_ID = 31337;

function envAddress(name: string): Address | undefined {
  const value = process.env[name];
  if (value === undefined || value === "") return undefined;
  if (!isAddress(value)) throw new Error(`${name} is not an address: ${value}`);
  return getAddress(value);
}

/** Whole seconds from the environment, or undefined when unset. */
function envSeconds(name: string): bigint | undefined {
  const value = process.env[name];
  if (value === undefined || value === "") return undefined;
  if (!/^\d+$/.test(value)) throw new Error(`${name} must be whole seconds, got ${value}`);
  return BigInt(value);
}

const { viem } = await network.create();
const publicClient = await viem.getPublicClient();
const chainId = await publicClient.getChainId();
const wallets = await viem.getWalletClients();
const deployer = wallets[0];
if (deployer === undefined) throw new Error("no deployer account: set CME_SETTLER_KEY (or use --network localhost)");

const tokens = (process.env.CME_TOKENS ?? "")
  .split(",")
  .map((t) => t.trim())
  .filter((t) => t !== "");
for (const t of tokens) if (!isAddress(t)) throw new Error(`CME_TOKENS: not an address: ${t}`);
const local = chainId === LOCAL_CHAIN_ID;

/** An address from the environment, else (on the local chain) Hardhat account #index. */
function role(name: string, index: number): Address {
  const fromEnv = envAddress(name);
  if (fromEnv !== undefined) return fromEnv;
  const wallet = local ? wallets[index] : undefined;
  if (wallet === undefined) throw new Error(`${name} must be set (no local account #${index} to default to)`);
  return wallet.account.address;
}

// The guardian vetoes settlements that do not match the published fill log: without one nothing
// stops a dishonest settler, so a real chain must name it.
const guardian = envAddress("CME_GUARDIAN") ?? (local ? LOCAL_GUARDIAN : undefined);
if (guardian === undefined) throw new Error("CME_GUARDIAN must be set: the address (an auditors' multisig) that may veto sessions");
const sessionGap = envSeconds("CME_SESSION_GAP_SEC");
const challengeWindow = envSeconds("CME_CHALLENGE_WINDOW_SEC");
// The vault's bounds (CMEVault MIN_SESSION_GAP, MIN/MAX_CHALLENGE_WINDOW), checked before anything
// is sent so a real chain is not left with a half-configured vault.
if (sessionGap !== undefined && sessionGap < 600n) throw new Error(`CME_SESSION_GAP_SEC must be at least 600 (the vault's floor), got ${sessionGap}`);
if (challengeWindow !== undefined && (challengeWindow < 900n || challengeWindow > 259_200n)) {
  throw new Error(`CME_CHALLENGE_WINDOW_SEC must be within [900, 259200] (the vault's bounds), got ${challengeWindow}`);
}

const options: DeployCMEOptions = {
  settler: local ? role("CME_SETTLER_ADDRESS", 1) : (envAddress("CME_SETTLER_ADDRESS") ?? deployer.account.address),
  treasury: role("CME_TREASURY_ADDRESS", 2),
  insurance: role("CME_INSURANCE_ADDRESS", 3),
  guardian,
  ...(sessionGap === undefined ? {} : { sessionGap }),
  ...(challengeWindow === undefined ? {} : { challengeWindow }),
  gracePeriod: envSeconds("CME_GRACE_PERIOD") ?? (local ? 300n : 3600n),
  // mocks only on the local chain, and only when no real tokens are named
  mocks: local && tokens.length === 0,
  tokens: tokens.map((t) => getAddress(t)),
};

// The guardian checks the settler and the admin; on a real chain it must be neither.
if (!local && (guardian === options.settler || guardian === deployer.account.address)) {
  throw new Error(`CME_GUARDIAN ${guardian} is the ${guardian === options.settler ? "settler" : "admin (deployer)"}: the guardian must be a separate account`);
}

const record = await deployCME(viem, options);
const path = writeDeployment(record, process.env.CME_DEPLOYMENT || undefined);
const vault = await viem.getContractAt("CMEVault", record.vault);
console.log(`CMEVault ${record.vault} on chain ${record.chainId} (block ${record.startBlock})`);
console.log(`  settler   ${record.settler}`);
console.log(`  guardian  ${guardian}`);
console.log(`  windows   grace ${await vault.read.gracePeriod()} s, session gap ${await vault.read.sessionGap()} s, challenge ${await vault.read.challengeWindow()} s`);
console.log(`  treasury  ${record.treasury}`);
console.log(`  insurance ${record.insurance}`);
for (const t of record.tokens) console.log(`  token #${t.index} ${t.symbol.padEnd(5)} ${t.address} (${t.decimals} decimals)`);
console.log(`wrote ${path}`);
