// Shows a session's settlement progress and runs or resumes it:
//   npm run settle -- --session N            (ask the running keeper: POST /admin/settle, settler-signed)
//   npm run settle -- --session N --local    (keeper down: settle straight from its database)
//   npm run settle -- --session N --status   (progress only)
// Configuration as the keeper's (CME_RPC_URL, CME_SETTLER_KEY, CME_DB_PATH, CME_KEEPER_PORT, ...).
import { parseArgs } from "node:util";
import { parseEther, parseGwei } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { loadConfig } from "../keeper/config.ts";
import { readDeployment } from "../keeper/chain/deployment.ts";
import { createChainClients } from "../keeper/chain/client.ts";
import { TxSender } from "../keeper/chain/tx-sender.ts";
import { vaultAbi } from "../keeper/chain/vault-abi.ts";
import { ACTION_TYPES, keeperDomain } from "../keeper/auth/eip712.ts";
import { openDatabase } from "../keeper/store/database.ts";
import { progressOf, readOnChainSession, runSettlement, type SettlementProgress } from "../keeper/settlement/submit.ts";

const { values } = parseArgs({ options: { session: { type: "string" }, local: { type: "boolean" }, status: { type: "boolean" } } });
const sessionId = Number(values.session);
if (!Number.isInteger(sessionId) || sessionId < 1) {
  console.error("usage: npm run settle -- --session N [--local | --status]");
  process.exit(2);
}
const config = loadConfig();
const deployment = readDeployment(config.deploymentPath);

function print(p: SettlementProgress) {
  console.log(`session ${p.sessionId}: ${p.status}, ${p.batchesConfirmed}/${p.batchCount} batches, ${p.deltaCount} deltas`);
  if (p.onChain !== null) console.log(`  vault: ${p.onChain.phase}, ${p.onChain.batchesPosted}/${p.onChain.batchCount} batches posted`);
  if (p.batchRoot !== null) console.log(`  root ${p.batchRoot}  fill log ${p.fillLogHash}`);
  for (const t of p.transactions) console.log(`  ${t.step.padEnd(24)} nonce ${String(t.nonce).padEnd(5)} ${t.status.padEnd(8)} ${t.hash}${t.block === null ? "" : ` @${t.block}`}`);
}

const url = `http://${config.host}:${config.port}`;
if (!values.local) {
  try {
    if (values.status) {
      const r = await fetch(`${url}/api/sessions/${sessionId}/settlement`);
      print((await r.json()) as SettlementProgress);
      process.exit(r.ok ? 0 : 1);
    }
    const settler = privateKeyToAccount(config.settlerKey as `0x${string}`);
    const nonce = BigInt(Date.now()) * 1000n + BigInt(Math.floor(Math.random() * 1000));
    const expiry = Math.floor(Date.now() / 1000) + 300;
    const signature = await settler.signTypedData({
      domain: keeperDomain(config.chainId, deployment.vault),
      types: { Admin: ACTION_TYPES.Admin },
      primaryType: "Admin",
      message: { action: "settle", sessionId, nonce, expiry: BigInt(expiry) },
    });
    const r = await fetch(`${url}/admin/settle`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sessionId, nonce: nonce.toString(), expiry, signature }),
    });
    const body = (await r.json()) as SettlementProgress & { error?: string; message?: string };
    if (!r.ok) {
      console.error(`keeper refused: ${body.error}: ${body.message}`);
      process.exit(1);
    }
    print(body);
    process.exit(body.status === "finalized" ? 0 : 1);
  } catch (err) {
    if ((err as { cause?: { code?: string } }).cause?.code !== "ECONNREFUSED") throw err;
    console.log(`keeper not reachable at ${url}: settling from its database ${config.dbPath}`);
  }
}

const db = openDatabase(config.dbPath);
const clients = createChainClients({ rpcUrl: config.rpcUrl, chainId: config.chainId, settlerKey: config.settlerKey as `0x${string}`, pollMs: config.chainPollMs });
if (values.status) {
  print(progressOf(db, sessionId, await readOnChainSession(clients.publicClient, deployment.vault, sessionId)));
  process.exit(0);
}
const sender = new TxSender({
  clients,
  db,
  abi: vaultAbi,
  timeoutMs: config.txTimeoutMs,
  bumpPercent: config.feeBumpPercent,
  pollMs: 500,
  confirmations: config.confirmations,
  maxFeePerGas: parseGwei(config.maxFeeGwei),
  maxSessionFeeWei: parseEther(config.maxSessionFeeEth),
  rpcRetryMs: config.rpcRetrySec * 1000,
});
await sender.reconcile();
const log = { info: (o: object, m: string) => console.log(m, JSON.stringify(o)), warn: (o: object, m: string) => console.warn(m, JSON.stringify(o)) };
const progress = await runSettlement({ db, client: clients.publicClient, vault: deployment.vault, sender, log }, sessionId);
print(progress);
db.close();
process.exit(progress.status === "finalized" ? 0 : 1);
