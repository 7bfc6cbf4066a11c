// The demo's traders: Hardhat's well-known development accounts from #4 up (0 deploys, 1 settles,
// 2 is the treasury, 3 the insurance fund). Their keys are public, so they exist only on the
// local chain. Each gets an example prompt from keeper/brokers/prompts/examples/ and the broker
// it was written for; the roster mixes liquidity makers with brokers that take liquidity, so the
// book crosses from the first seconds.
import { mnemonicToAccount, type HDAccount } from "viem/accounts";
import { EXAMPLE_PROMPTS, type ExamplePrompt } from "../../keeper/brokers/prompt-files.ts";

export const HARDHAT_MNEMONIC = "test test test test test test test test test test test junk";
/** Hardhat's node funds accounts #0..#19 with ETH. */
export const HARDHAT_ACCOUNTS = 20;
export const FIRST_DEMO_ACCOUNT = 4;

export interface DemoWallet {
  /** Hardhat account index. */
  index: number;
  account: HDAccount;
  example: ExamplePrompt;
  brokerId: string;
  /** Null: every pair. */
  pairs: string[] | null;
  /** Deposit USDC with EIP-2612 permit (one transaction) rather than approve + deposit. */
  permit: boolean;
}

interface Seat {
  example: string;
  pairs?: string[];
}

/**
 * Built-in brokers, one seat each: two market makers keep a book, the scalper and the mean
 * reverters trade around it, and the momentum brokers (trend follower, degenerate chaser) and the
 * impatient contrarian take liquidity with IOC orders, so trades happen without any model.
 */
const RULE_SEATS: Seat[] = [
  { example: "steady-market-maker" },
  { example: "timid-market-maker" },
  { example: "degenerate-momentum-chaser" },
  { example: "fee-aware-scalper" },
  { example: "contrarian-fader" },
  { example: "trend-follower" },
  { example: "patient-mean-reverter" },
  { example: "steady-market-maker", pairs: ["PEPE/USDC", "BONK/USDC"] },
];

/** AI seats, used when some AI broker in the catalogue is available (a key or base URL is set). */
const AI_SEATS: Seat[] = [{ example: "breakout-hunter" }, { example: "inventory-sniper" }, { example: "closing-flattener" }];

function example(id: string): ExamplePrompt {
  const e = EXAMPLE_PROMPTS.find((p) => p.id === id);
  if (e === undefined) throw new Error(`demo: no example prompt "${id}" in keeper/brokers/prompts/examples/`);
  return e;
}

export interface BrokerAvailability {
  id: string;
  kind: "ai" | "rule";
  available: boolean;
}

/**
 * The demo roster: `ruleSeats` built-in seats, then one seat per AI example when an AI broker is
 * available (its suggested broker if that one is, else the first available AI broker).
 */
export function demoWallets(brokers: readonly BrokerAvailability[], ruleSeats = RULE_SEATS.length, pairSymbols: readonly string[] = []): DemoWallet[] {
  const seats: { seat: Seat; brokerId: string }[] = [];
  for (let i = 0; i < ruleSeats; i++) {
    const seat = RULE_SEATS[i % RULE_SEATS.length]!;
    seats.push({ seat, brokerId: example(seat.example).suggestedBroker });
  }
  const ai = brokers.filter((b) => b.kind === "ai" && b.available);
  if (ai.length > 0) {
    for (const seat of AI_SEATS) {
      const suggested = example(seat.example).suggestedBroker;
      seats.push({ seat, brokerId: ai.some((b) => b.id === suggested) ? suggested : ai[0]!.id });
    }
  }
  const max = HARDHAT_ACCOUNTS - FIRST_DEMO_ACCOUNT;
  if (seats.length > max) throw new Error(`demo: at most ${max} demo wallets (Hardhat accounts #${FIRST_DEMO_ACCOUNT}..#${HARDHAT_ACCOUNTS - 1})`);
  return seats.map(({ seat, brokerId }, i) => {
    const index = FIRST_DEMO_ACCOUNT + i;
    const pairs = seat.pairs === undefined ? null : seat.pairs.filter((p) => pairSymbols.length === 0 || pairSymbols.includes(p));
    return {
      index,
      account: mnemonicToAccount(HARDHAT_MNEMONIC, { addressIndex: index }),
      example: example(seat.example),
      brokerId,
      pairs: pairs !== null && pairs.length > 0 ? pairs : null,
      permit: i % 2 === 0,
    };
  });
}

/** Hardhat account `index` (0 deploys, 1 settles, 2 treasury, 3 insurance). */
export function hardhatAccount(index: number): HDAccount {
  return mnemonicToAccount(HARDHAT_MNEMONIC, { addressIndex: index });
}

/** What each demo wallet deposits, in whole tokens: 10,000 USDC and about 2,000 USDC of each memecoin at the demo reference prices. */
export const DEMO_DEPOSIT: Record<string, string> = {
  USDC: "10000",
  PEPE: "200000000",
  WIF: "1000",
  BONK: "100000000",
};
