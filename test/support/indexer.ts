// What the indexer's end-to-end tests and benchmark run against: an in-process Hardhat network
// served over HTTP, and the Ponder app as a child process (`ponder start`) with its embedded
// database in a temporary directory, each on its own free port. Every `start*` returns a `stop()`
// that shuts it down (the child is killed and awaited).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { network } from "hardhat";
import type { NetworkConnection } from "hardhat/types/network";
import { graphql, indexedBlock, indexerUrls, isReady, ponderStart } from "../../indexer/client.ts";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = (name: string) => join(repoRoot, "node_modules", ".bin", name);

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export type Child = { process: ChildProcess; output: () => string; stop: () => Promise<void> };

function spawnChild(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Child {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  };
  return { process: child, output: () => output, stop };
}

async function waitUntil(what: string, child: Child, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (child.process.exitCode !== null) throw new Error(`${what}: process exited (${child.process.exitCode})\n${child.output()}`);
    if (await check().catch(() => false)) return;
    if (performance.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms\n${child.output().slice(-5_000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export type LocalChain = {
  url: string;
  viem: NetworkConnection["viem"];
  stop: () => Promise<void>;
};

/**
 * A fresh in-process Hardhat network (chain id 31337, the default funded accounts) served over
 * HTTP on a free port, for Ponder, and a hardhat-viem connection to it over that same HTTP.
 */
export async function startChain(): Promise<LocalChain> {
  const server = await network.createServer("default", "127.0.0.1", 0);
  const { port } = await server.listen();
  const url = `http://127.0.0.1:${port}`;
  const connection = await network.create({ network: "localhost", override: { url } });
  return {
    url,
    viem: connection.viem,
    stop: async () => {
      await connection.close();
      await server.close();
    },
  };
}

/** The part of deployments/<chainId>.json the indexer reads (the whole record is written). */
export type IndexedDeployment = { chainId: number; vault: string; startBlock: number };

export type Indexer = Child & { url: string; graphqlUrl: string; dir: string };

/**
 * `ponder start` for `deployment` against `rpcUrl`, with a fresh embedded database, a unique
 * schema and a free port. Resolves once Ponder reports ready (historical sync done).
 */
export async function startIndexer(rpcUrl: string, deployment: IndexedDeployment): Promise<Indexer> {
  const dir = mkdtempSync(join(tmpdir(), "cme-indexer-"));
  const deploymentPath = join(dir, `${deployment.chainId}.json`);
  writeFileSync(deploymentPath, JSON.stringify(deployment, null, 2));
  const port = await freePort();
  const { args, cwd, env } = ponderStart({
    chainId: deployment.chainId,
    rpcUrl,
    deploymentPath,
    port,
    host: "127.0.0.1",
    schema: `cme_test_${port}`,
    dbDir: join(dir, "pglite"),
    embedded: true,
    globalArgs: process.env.CME_PONDER_DEBUG ? ["--log-level", "debug"] : [],
    startArgs: ["--log-format", "json"],
  });
  const child = spawnChild(bin("ponder"), args, { cwd, env });
  const { url, graphqlUrl } = indexerUrls("127.0.0.1", port);
  const stop = async () => {
    await child.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil("ponder", child, () => isReady(url), 120_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { ...child, stop, url, graphqlUrl, dir };
}

/** Waits until the indexer has processed every block up to `blockNumber` (Ponder's /status). */
export async function waitForBlock(indexerUrl: string, blockNumber: bigint | number, timeoutMs = 60_000): Promise<number> {
  const started = performance.now();
  await eventually(`indexer at block ${blockNumber}`, async () => ((await indexedBlock(indexerUrl)) >= Number(blockNumber) ? true : undefined), timeoutMs);
  return performance.now() - started;
}

export { graphql };

/** Polls `check` until it returns a value other than undefined. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (performance.now() > deadline) {
      throw new Error(`${what}: timed out after ${timeoutMs} ms${lastError === undefined ? "" : ` (${String(lastError)})`}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
