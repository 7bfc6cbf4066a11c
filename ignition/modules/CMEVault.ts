// Hardhat Ignition module: the vault with its settler and guardian, session gap and challenge
// window, treasury and insurance accounts and listed tokens, the same state keeper/chain/deploy.ts
// produces (test/chain/deploy.test.ts checks both).
//   npx hardhat ignition deploy ignition/modules/CMEVault.ts --network remote \
//     --parameters '{"CMEVault":{"settler":"0x…","guardian":"0x…","treasury":"0x…","insurance":"0x…",
//                    "gracePeriod":3600,"sessionGap":600,"challengeWindow":900}}'
// Tokens to list come from CME_TOKENS (comma-separated addresses, listed in that order); without
// it the module deploys and lists the local mocks (MockUSDC, then PEPE, WIF, BONK).
// Parameters default to Hardhat accounts #1 (settler), #2 (treasury), #3 (insurance) and #19
// (guardian, keeper/chain/deploy.ts LOCAL_GUARDIAN): a real chain must pass `guardian` (an
// auditors' multisig, apart from settler and admin). `sessionGap` and `challengeWindow` (seconds)
// default to the vault's floors, 600 and 900, which its constructor already sets.
import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";
import { keccak256, toHex } from "viem";

const SETTLER_ROLE = keccak256(toHex("SETTLER_ROLE"));
const GUARDIAN_ROLE = keccak256(toHex("GUARDIAN_ROLE"));
/** CMEVault.MIN_SESSION_GAP and MIN_CHALLENGE_WINDOW, what the constructor sets. */
const MIN_SESSION_GAP = 600n;
const MIN_CHALLENGE_WINDOW = 900n;
const MEMECOINS = [
  ["PEPE", "Pepe (mock)"],
  ["WIF", "dogwifhat (mock)"],
  ["BONK", "Bonk (mock)"],
] as const;

export default buildModule("CMEVault", (m) => {
  const admin = m.getAccount(0);
  const settler = m.getParameter("settler", m.getAccount(1));
  const treasury = m.getParameter("treasury", m.getAccount(2));
  const insurance = m.getParameter("insurance", m.getAccount(3));
  const guardian = m.getParameter("guardian", m.getAccount(19));
  const gracePeriod = m.getParameter("gracePeriod", 3600n);
  const sessionGap = m.getParameter("sessionGap", MIN_SESSION_GAP);
  const challengeWindow = m.getParameter("challengeWindow", MIN_CHALLENGE_WINDOW);

  const vault = m.contract("CMEVault", [admin, gracePeriod]);
  m.call(vault, "grantRole", [SETTLER_ROLE, settler]);
  m.call(vault, "grantRole", [GUARDIAN_ROLE, guardian], { id: "grantGuardian" });
  m.call(vault, "setSessionGap", [sessionGap]);
  m.call(vault, "setChallengeWindow", [challengeWindow]);
  // Ids follow registration order: treasury 1, insurance 2.
  const treasuryRegistered = m.call(vault, "register", [treasury], { id: "registerTreasury" });
  m.call(vault, "register", [insurance], { id: "registerInsurance", after: [treasuryRegistered] });

  const listed = (process.env.CME_TOKENS ?? "")
    .split(",")
    .map((t) => t.trim())
    .filter((t) => t !== "");
  const tokens =
    listed.length > 0
      ? listed
      : [
          m.contract("MockUSDC", [], { id: "USDC" }),
          ...MEMECOINS.map(([symbol, name]) => m.contract("MockMemecoin", [name, symbol], { id: symbol })),
        ];
  // Token indexes follow listing order, so each listing waits for the previous one.
  let previous: ReturnType<typeof m.call> = treasuryRegistered;
  for (const [i, token] of tokens.entries()) {
    previous = m.call(vault, "listToken", [token], { id: `listToken${i}`, after: [previous] });
  }

  return { vault };
});
