// The composition root: builds every part of the keeper from its configuration and wires them
// (database, chain adapter, session runner, executor, stream hub, HTTP app). Nothing listens
// here; keeper/server.ts does.
import pino from "pino";
import type { FastifyInstance } from "fastify";
import type { KeeperConfig } from "./config.ts";
import { openDatabase, type Db } from "./store/database.ts";
import { getCursor, setCursor } from "./store/ledger.ts";
import { readDeployment, type Deployment } from "./chain/deployment.ts";
import { createChainClients } from "./chain/client.ts";
import { TxSender } from "./chain/tx-sender.ts";
import { VaultWatcher } from "./chain/watcher.ts";
import { PermitSigner } from "./chain/permit-signer.ts";
import { vaultAbi } from "./chain/vault-abi.ts";
import { SessionRunner, type ChainPorts, type LoopFactory } from "./session/runner.ts";
import { KeeperService } from "./api/service.ts";
import { StreamHub } from "./stream/hub.ts";
import { Metrics } from "./ops/metrics.ts";
import { buildApp } from "./api/app.ts";
import { ApiThread } from "./api/api-thread.ts";
import { catalogue, loadCatalogueFile, type CatalogueEntry } from "./brokers/catalogue.ts";
import { systemClock, type Clock } from "./executor/clock.ts";
import { executorLoopFactory } from "./session/executor-loop.ts";

export interface Keeper {
  config: KeeperConfig;
  db: Db;
  deployment: Deployment;
  /** The app on this thread: app.inject, and listening when config.apiThread is off. */
  app: FastifyInstance;
  /** The same app in a worker thread, fed by the pit (server.ts starts it when config.apiThread). */
  api: ApiThread;
  runner: SessionRunner;
  service: KeeperService;
  hub: StreamHub;
  metrics: Metrics;
  chain: ChainPorts | null;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface KeeperOptions {
  /** Default: read from config.deploymentPath. */
  deployment?: Deployment;
  /** Null: run without a chain (API tests); the default connects to config.rpcUrl. */
  chain?: null;
  clock?: Clock;
  catalogue?: CatalogueEntry[];
  /** The executor; the default runs the brokers of keeper/executor. */
  createLoop?: LoopFactory;
  logger?: pino.Logger;
  env?: NodeJS.ProcessEnv;
}

export async function createKeeper(config: KeeperConfig, opts: KeeperOptions = {}): Promise<Keeper> {
  const log = opts.logger ?? pino({ level: config.logLevel, base: { svc: "keeper" } });
  const deployment = opts.deployment ?? readDeployment(config.deploymentPath);
  if (deployment.chainId !== config.chainId) {
    throw new Error(`deployment ${config.deploymentPath} is for chain ${deployment.chainId}, the keeper is configured for ${config.chainId}`);
  }
  const db = openDatabase(config.dbPath);
  const clock = opts.clock ?? systemClock;
  const metrics = new Metrics();
  const crash = (point: string) => {
    if (config.crashAt === point) {
      log.warn({ point }, "CME_CRASH_AT: killing the keeper");
      process.kill(process.pid, "SIGKILL");
    }
  };

  let runner: SessionRunner | undefined;
  let chain: ChainPorts | null = null;
  if (opts.chain !== null) {
    const clients = createChainClients({ rpcUrl: config.rpcUrl, chainId: config.chainId, settlerKey: config.settlerKey as `0x${string}`, pollMs: config.chainPollMs });
    const sender = new TxSender({
      clients,
      db,
      abi: vaultAbi,
      timeoutMs: config.txTimeoutMs,
      bumpPercent: config.feeBumpPercent,
      pollMs: Math.min(config.chainPollMs, 500),
      log: log.child({ part: "tx" }),
      afterBroadcast: (step) => {
        metrics.chainTxs.inc({ step: step.split(":")[2] ?? step });
        if (step.endsWith(":finalize")) crash("after-send-finalize");
      },
    });
    if (getCursor(db) === undefined) setCursor(db, BigInt(deployment.startBlock) - 1n);
    const watcher = new VaultWatcher({
      client: clients.publicClient,
      vault: deployment.vault,
      confirmations: config.confirmations,
      pollMs: config.chainPollMs,
      cursor: () => getCursor(db) ?? 0n,
      apply: (events, toBlock) => runner!.applyVaultEvents(events, toBlock),
      onError: (err) => {
        metrics.errors.inc({ where: "watcher" });
        log.warn({ err }, "chain watcher poll failed");
      },
    });
    chain = { clients, sender, watcher, permits: new PermitSigner(clients.publicClient, clients.settler, deployment.vault) };
  }

  const brokers = opts.catalogue ?? catalogue(opts.env ?? process.env, config.brokersPath === undefined ? loadCatalogueFile() : loadCatalogueFile(config.brokersPath));
  let service: KeeperService | undefined;
  const hub = new StreamHub({
    maxBufferedBytes: config.wsMaxBufferedBytes,
    bookThrottleMs: config.wsBookThrottleMs,
    hello: () => service!.hello(),
  });
  const createLoop =
    opts.createLoop ??
    executorLoopFactory({
      catalogue: brokers,
      clock,
      tickMs: config.tickMs,
      metrics,
      log: log.child({ part: "executor" }),
      db,
      onOutcry: (user, brokerId, line) => service!.recordOutcry(user, brokerId, line),
    });
  runner = new SessionRunner({
    config,
    db,
    deployment,
    chain,
    hub,
    metrics,
    log: log.child({ part: "session" }),
    clock,
    crash,
    createLoop,
  });
  service = new KeeperService({ config, db, deployment, runner, hub, metrics, catalogue: brokers, chain, clock });
  const app = await buildApp({ keeper: service, logger: log.child({ part: "http" }) });
  const api = new ApiThread({
    service,
    runner,
    hub,
    metrics,
    clock,
    log,
    logLevel: config.logLevel,
    wsMaxBufferedBytes: config.wsMaxBufferedBytes,
    maxSignedExpirySec: config.maxSignedExpirySec,
  });

  return {
    config,
    db,
    deployment,
    app,
    api,
    runner,
    service,
    hub,
    metrics,
    chain,
    async start() {
      metrics.timerLag.start();
      hub.start();
      await runner.start();
    },
    async stop() {
      await api.stop();
      metrics.timerLag.stop();
      await runner.stop();
      hub.stop();
      await app.close();
      db.close();
    },
  };
}
