// The composition root: builds every part of the keeper from its configuration and wires them,
// lower layers first, so nothing is bound late: database and chain adapter, then the session
// runner (with the executor's loop factory), then the API service, its stream publisher and the
// HTTP app. Nothing listens here; keeper/api/server.ts does.
import pino from "pino";
import type { FastifyInstance } from "fastify";
import { parseEther, parseGwei } from "viem";
import { checkSettlementWindow, ConfigError, type KeeperConfig } from "./config.ts";
import { onStorageFailure, openDatabase, type Db } from "./store/database.ts";
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
import { HealthRegistry } from "./ops/health.ts";
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
  /** What each part (settlement, watcher, journal, tx sender) last did; /healthz reads it. */
  health: HealthRegistry;
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
  /**
   * A storage write failed (disk full, read-only, I/O error): memory may not run ahead of the
   * disk, so the keeper stops. Default: exit the process with code 70 after logging the real error.
   */
  onFatal?: (err: Error) => void;
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
  const health = new HealthRegistry({ stallMs: config.healthStallSec * 1000 });
  onStorageFailure(db, (err) => {
    health.component("journal").problem(err.message);
    log.fatal({ err }, "storage failed: the keeper stops (nothing after the last commit was applied)");
    (opts.onFatal ?? (() => {
      process.exitCode = 70;
      setImmediate(() => process.exit(70));
    }))(err);
  });

  let chain: ChainPorts | null = null;
  if (opts.chain !== null) {
    const clients = createChainClients({ rpcUrl: config.rpcUrl, chainId: config.chainId, settlerKey: config.settlerKey as `0x${string}`, pollMs: config.chainPollMs });
    // A session's deadline must leave room for the vault's challenge window, else anyone could
    // void it before the keeper may finalize.
    const at = { address: deployment.vault, abi: vaultAbi } as const;
    const [grace, challenge] = await Promise.all([
      clients.publicClient.readContract({ ...at, functionName: "gracePeriod" }),
      clients.publicClient.readContract({ ...at, functionName: "challengeWindow" }),
    ]);
    const tooShort = checkSettlementWindow(config.settlementWindowSec, Number(grace), Number(challenge));
    if (tooShort !== null) throw new ConfigError([tooShort]);
    const sender = new TxSender({
      clients,
      db,
      abi: vaultAbi,
      timeoutMs: config.txTimeoutMs,
      bumpPercent: config.feeBumpPercent,
      pollMs: Math.min(config.chainPollMs, 500),
      log: log.child({ part: "tx" }),
      afterBroadcast: (step) => metrics.chainTxs.inc({ step: step.split(":")[2] ?? step }),
      confirmations: config.confirmations,
      maxFeePerGas: parseGwei(config.maxFeeGwei),
      maxSessionFeeWei: parseEther(config.maxSessionFeeEth),
      rpcRetryMs: config.rpcRetrySec * 1000,
      metrics,
      health: health.component("tx-sender"),
    });
    chain = { clients, sender, permits: new PermitSigner(clients.publicClient, clients.settler, deployment.vault) };
  }

  const brokers = opts.catalogue ?? catalogue(opts.env ?? process.env, config.brokersPath === undefined ? loadCatalogueFile() : loadCatalogueFile(config.brokersPath));
  const createLoop =
    opts.createLoop ?? executorLoopFactory({ catalogue: brokers, clock, tickMs: config.tickMs, metrics, log: log.child({ part: "executor" }), db });
  const runner = new SessionRunner({ config, db, deployment, chain, metrics, health, log: log.child({ part: "session" }), clock, createLoop });
  const hub = new StreamHub({ maxBufferedBytes: config.wsMaxBufferedBytes, bookThrottleMs: config.wsBookThrottleMs });
  const service = new KeeperService({ config, db, deployment, runner, hub, metrics, health, catalogue: brokers, chain, clock });
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
    health,
    chain,
    async start() {
      metrics.timerLag.start();
      hub.start();
      publisher.start();
      await runner.start();
    },
    async stop() {
      // A send waiting at the fee cap or for funds ends first, so the runner can stop.
      chain?.sender.stop();
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
