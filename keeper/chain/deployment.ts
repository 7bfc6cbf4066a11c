// The deployment record scripts/deploy.ts writes (deployments/<chainId>.json): where the vault is,
// which block to watch from, and the listed tokens with their vault indices.
import { readFileSync } from "node:fs";
import { getAddress, type Address } from "viem";
import { z } from "zod";

const addr = z.string().regex(/^0x[0-9a-fA-F]{40}$/).transform((a) => getAddress(a));

const schema = z.object({
  chainId: z.number().int().positive(),
  vault: addr,
  startBlock: z.coerce.number().int().nonnegative(),
  settler: addr,
  treasury: addr,
  insurance: addr,
  tokens: z
    .array(z.object({ symbol: z.string().min(1), address: addr, decimals: z.number().int().min(0).max(36), index: z.number().int().min(0).max(255) }))
    .min(1),
});

export type Deployment = z.infer<typeof schema>;
export type TokenInfo = Deployment["tokens"][number];

export class DeploymentError extends Error {
  override name = "DeploymentError";
}

export function parseDeployment(json: unknown, source = "deployment"): Deployment {
  const r = schema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new DeploymentError(`${source}: ${i.path.join(".") || "(root)"}: ${i.message}`);
  }
  return r.data;
}

export function readDeployment(path: string): Deployment {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new DeploymentError(`cannot read ${path} (run the deploy script first): ${(err as Error).message}`);
  }
  return parseDeployment(JSON.parse(text), path);
}

/** The quote asset: USDC by symbol. */
export function quoteToken(d: Deployment): TokenInfo {
  const t = d.tokens.find((x) => x.symbol === "USDC");
  if (t === undefined) throw new DeploymentError("deployment lists no USDC token (the quote asset)");
  return t;
}
