// The composition root: builds every part of the keeper from its configuration and wires them,
// lower layers first, so nothing is bound late: database and chain adapter, then the session
// runner (with the executor's loop factory), then the API service, its stream publisher and the
// HTTP app. Nothing listens here; keeper/api/server.ts does.
import pino from "pino";
import type { FastifyInstance } from "fastify";
import type { KeeperConfig } from "./config.ts";
import { openDatabase, type Db } from "./store/database.ts";
import { readDeployment, type Deployment } from "./chain/deployment.ts";
import { createChainClients } from "./chain/client.ts";
import { TxSender } from "./chain/tx-sender.ts";
import { PermitSigner } from "./chain/permit-signer.ts";
import { vaultAbi } from "./chain/vault-abi.ts";
import { StreamPublisher } from "./api/stream-publisher.ts";
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
      afterBroadcast: (step) => metrics.chainTxs.inc({ step: step.split(":")[2] ?? step }),
    });
    chain = { clients, sender, permits: new PermitSigner(clients.publicClient, clients.settler, deployment.vault) };
  }

  const brokers = opts.catalogue ?? catalogue(opts.env ?? process.env, config.brokersPath === undefined ? loadCatalogueFile() : loadCatalogueFile(config.brokersPath));
  const createLoop =
    opts.createLoop ?? executorLoopFactory({ catalogue: brokers, clock, tickMs: config.tickMs, metrics, log: log.child({ part: "executor" }), db });
  const runner = new SessionRunner({ config, db, deployment, chain, metrics, log: log.child({ part: "session" }), clock, createLoop });
  const hub = new StreamHub({ maxBufferedBytes: config.wsMaxBufferedBytes, bookThrottleMs: config.wsBookThrottleMs });
  const service = new KeeperService({ config, db, deployment, runner, hub, metrics, catalogue: brokers, chain, clock });
  const publisher = new StreamPublisher(runner, hub, service);
  const stream = {
    pingIntervalMs: config.wsPingMs,
    maxBufferedBytes: config.wsMaxBufferedBytes,
    maxClients: config.wsMaxClients,
    maxClientsPerAddress: config.wsMaxClientsPerAddress,
  };
  const app = await buildApp({ keeper: service, logger: log.child({ part: "http" }), stream });
  const api = new ApiThread({
    service,
    hub,
    metrics,
    clock,
    log,
    logLevel: config.logLevel,
    wsMaxBufferedBytes: config.wsMaxBufferedBytes,
    maxSignedExpirySec: config.maxSignedExpirySec,
    stream,
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
      publisher.start();
      await runner.start();
    },
    async stop() {
      await api.stop();
      metrics.timerLag.stop();
      await runner.stop();
      publisher.stop();
      hub.stop();
      await app.close();
      db.close();
    },
  };
}
