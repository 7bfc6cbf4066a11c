// Configures the demo wallets' brokers through the keeper's public, signed API, exactly as the
// page or any client does: read the EIP-712 domain and structs from GET /api/eip712, sign each
// action with the wallet's own key, POST it. Nothing here reaches into the keeper's internals.
import type { LocalAccount } from "viem";
import type { DemoWallet } from "./wallets.ts";

type Field = { name: string; type: string };

export interface Eip712View {
  domain: { name: string; version: string; chainId: number; verifyingContract: `0x${string}` };
  types: Record<string, readonly Field[]>;
  primaryTypes: Record<string, string>;
}

export class KeeperRefusal extends Error {
  override name = "KeeperRefusal";
  constructor(
    readonly route: string,
    readonly status: number,
    readonly body: { error?: string; message?: string; field?: string },
  ) {
    super(`${route}: ${status} ${body.error ?? ""}: ${body.message ?? ""}${body.field === undefined ? "" : ` (field ${body.field})`}`);
  }
}

export class SignedClient {
  #nonce = BigInt(Date.now()) * 1000n;

  private constructor(
    readonly baseUrl: string,
    readonly eip712: Eip712View,
  ) {}

  static async connect(baseUrl: string): Promise<SignedClient> {
    const r = await fetch(`${baseUrl}/api/eip712`);
    if (!r.ok) throw new Error(`GET /api/eip712: HTTP ${r.status}`);
    return new SignedClient(baseUrl, (await r.json()) as Eip712View);
  }

  /** Signs `fields` as the struct the keeper expects at `route` and posts it; throws KeeperRefusal on a refusal. */
  async post(route: string, signer: LocalAccount, fields: Record<string, unknown>): Promise<unknown> {
    const primaryType = this.eip712.primaryTypes[route];
    const struct = primaryType === undefined ? undefined : this.eip712.types[primaryType];
    if (primaryType === undefined || struct === undefined) throw new Error(`the keeper publishes no EIP-712 struct for ${route}`);
    const nonce = ++this.#nonce;
    const expiry = Math.floor(Date.now() / 1000) + 300;
    const message: Record<string, unknown> = { ...fields, account: signer.address, nonce, expiry: BigInt(expiry) };
    for (const f of struct) if (f.type.startsWith("uint") && typeof message[f.name] === "string") message[f.name] = BigInt(message[f.name] as string);
    const signature = await signer.signTypedData({
      domain: this.eip712.domain,
      types: { [primaryType]: struct as Field[] },
      primaryType,
      message,
    });
    const body = { ...fields, account: signer.address, nonce: nonce.toString(), expiry, signature };
    const r = await fetch(`${this.baseUrl}${route}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const json = (await r.json()) as Record<string, unknown>;
    if (!r.ok) throw new KeeperRefusal(route, r.status, json);
    return json;
  }
}

/** Broker, prompt and (when narrowed) pairs for each wallet; resolves once every action is accepted. */
export async function configureWallets(client: SignedClient, wallets: readonly DemoWallet[]): Promise<void> {
  await Promise.all(
    wallets.map(async (w) => {
      await client.post("/set-broker", w.account, { brokerId: w.brokerId });
      await client.post("/set-prompt", w.account, { prompt: w.example.prompt });
      if (w.pairs !== null) await client.post("/set-pairs", w.account, { pairs: w.pairs });
    }),
  );
}
