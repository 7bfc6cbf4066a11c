// viem clients for the keeper: one public client for reads and logs, the settler's local account
// for signing (transactions and withdrawal permits). No wallet client: the tx sender signs and
// broadcasts raw transactions itself so it controls nonces and fees.
import { createPublicClient, defineChain, http, type Chain, type PublicClient } from "viem";
import { privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";

export interface ChainClients {
  chain: Chain;
  publicClient: PublicClient;
  settler: PrivateKeyAccount;
}

export function createChainClients(opts: {
  rpcUrl: string;
  chainId: number;
  settlerKey: `0x${string}`;
  pollMs: number;
  /** Per request (default 20 s). */
  timeoutMs?: number;
  /** The transport's own quick retries of a failed request (default 3); the tx sender retries on top until its deadline. */
  retryCount?: number;
}): ChainClients {
  const chain = defineChain({
    id: opts.chainId,
    name: opts.chainId === 31337 ? "Hardhat" : `chain ${opts.chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [opts.rpcUrl] } },
  });
  const publicClient = createPublicClient({
    chain,
    transport: http(opts.rpcUrl, { retryCount: opts.retryCount ?? 3, retryDelay: 150, timeout: opts.timeoutMs ?? 20_000 }),
    pollingInterval: opts.pollMs,
  }) as PublicClient;
  return { chain, publicClient, settler: privateKeyToAccount(opts.settlerKey) };
}
