// `npm start` as a child process for tests: the real script, in its own process group (as a
// terminal runs it), with a temporary data directory, its own deployment file and free ports, so
// it never touches the developer's .cme/ or deployments/ and never collides with other runs.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function portIsFree(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

export interface Demo {
  child: ChildProcess;
  dir: string;
  deploymentPath: string;
  ports: { node: number; keeper: number; indexer: number };
  keeperUrl: string;
  graphqlUrl: string;
  rpcUrl: string;
  /** Everything printed so far (stdout and stderr). */
  output(): string;
  /** Resolves with the first match of `re` in the output; fails if the demo exits first or after `timeoutMs`. */
  waitForOutput(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code and signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The exit, or "hung" if it has not exited within `ms`. */
  exitedWithin(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | "hung">;
  /** Ctrl-C as a terminal sends it: SIGINT to the whole process group. */
  interrupt(): void;
  /** Last resort for a failed test: kills the group and anything it started. */
  kill(): void;
  /** Processes whose command line names one of the demo's ports (the node, the indexer). */
  leftovers(): string[];
}

export async function startDemo(env: Record<string, string>): Promise<Demo> {
  const dir = mkdtempSync(join(tmpdir(), "cme-start-"));
  const ports = { node: await freePort(), keeper: await freePort(), indexer: await freePort() };
  const deploymentPath = join(dir, "31337.json");
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    CME_DATA_DIR: dir,
    CME_DEPLOYMENT: deploymentPath,
    CME_NODE_PORT: String(ports.node),
    CME_KEEPER_PORT: String(ports.keeper),
    CME_INDEXER_PORT: String(ports.indexer),
    NO_COLOR: "1",
    ...env,
  };
  // The demo picks its mode from these: a test runner's environment must not leak in.
  for (const name of ["CME_RPC_URL", "CME_CHAIN_ID", "CME_DB_PATH", "CME_INDEXER_DB", "DATABASE_URL", "DATABASE_PRIVATE_URL", "DATABASE_SCHEMA"]) {
    if (!(name in env)) delete childEnv[name];
  }
  const child = spawn("npm", ["start"], { cwd: repoRoot, env: childEnv, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const w of waiters) w();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      for (const w of waiters) w();
      resolve({ code, signal });
    });
  });
  const portPattern = new RegExp(`--port (${ports.node}|${ports.indexer})\\b`);
  const leftovers = () => execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" }).split("\n").filter((line) => portPattern.test(line));
  return {
    child,
    dir,
    deploymentPath,
    ports,
    keeperUrl: `http://127.0.0.1:${ports.keeper}`,
    graphqlUrl: `http://127.0.0.1:${ports.indexer}/graphql`,
    rpcUrl: `http://127.0.0.1:${ports.node}`,
    output: () => out,
    waitForOutput(re, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = out.match(re);
          if (m !== null) {
            done();
            resolve(m);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            done();
            reject(new Error(`npm start exited (${child.exitCode ?? child.signalCode}) before printing ${re}:\n${out.slice(-4_000)}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`npm start did not print ${re} within ${timeoutMs / 1000} s:\n${out.slice(-4_000)}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    exited,
    async exitedWithin(ms) {
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise<"hung">((r) => (timer = setTimeout(() => r("hung"), ms)));
      try {
        return await Promise.race([exited, hung]);
      } finally {
        clearTimeout(timer);
      }
    },
    interrupt() {
      process.kill(-child.pid!, "SIGINT");
    },
    kill() {
      const pids = [child.pid!, ...leftovers().map((l) => Number(l.trim().split(/\s+/)[0]))];
      for (const pid of pids) {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // gone
          }
        }
      }
    },
    leftovers,
  };
}

/** Polls `check` until it returns a value other than undefined. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (performance.now() > deadline) throw new Error(`${what}: not after ${timeoutMs / 1000} s${last === undefined ? "" : ` (${String(last)})`}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function graphql<T>(url: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query, variables }) });
  const body = (await r.json()) as { data?: T; errors?: { message: string }[] };
  if (body.errors !== undefined && body.errors.length > 0) throw new Error(`GraphQL: ${body.errors.map((e) => e.message).join("; ")}`);
  if (body.data === undefined) throw new Error(`GraphQL: no data (HTTP ${r.status})`);
  return body.data;
}
