// The demo's child processes (the Hardhat node, the Ponder indexer): each runs in its own process
// group with its output in a log file, so Ctrl-C in the terminal reaches only `npm start`, which
// then stops them in order (keeper first, then the indexer, then the chain) and waits for them.
// If `npm start` itself dies without its shutdown running, the exit hook still kills the groups.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync, realpathSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

export interface Child {
  name: string;
  pid: number;
  logPath: string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  running(): boolean;
  /** SIGTERM to the group, then SIGKILL after `graceMs`; resolves once the child has exited. */
  stop(graceMs?: number): Promise<void>;
  /** The last lines of its log, for error messages. */
  tail(lines?: number): string;
}

const children = new Set<Child>();

// Last resort: a crash or process.exit() anywhere must not leave a node or an indexer behind.
process.on("exit", () => {
  for (const ch of children) if (ch.running()) killGroup(ch.pid, "SIGKILL");
});

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}

/** The JS entry point behind node_modules/.bin/NAME, run with this Node (not whatever `node` is on PATH). */
export function binScript(root: string, name: string): string {
  return realpathSync(join(root, "node_modules", ".bin", name));
}

export function spawnLogged(name: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; logPath: string }): Child {
  const fd = openSync(opts.logPath, "a");
  let proc: ChildProcess;
  try {
    proc = spawn(process.execPath, args, { cwd: opts.cwd, env: opts.env, stdio: ["ignore", fd, fd], detached: true });
  } finally {
    closeSync(fd);
  }
  if (proc.pid === undefined) throw new Error(`${name}: could not start ${args.join(" ")}`);
  const pid = proc.pid;
  let code: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    proc.once("exit", (c) => {
      code = c;
      children.delete(child);
      resolve(c);
    });
  });
  const child: Child = {
    name,
    pid,
    logPath: opts.logPath,
    exited,
    running: () => code === undefined,
    async stop(graceMs = 10_000) {
      if (code !== undefined) return;
      killGroup(pid, "SIGTERM");
      const timer = setTimeout(() => killGroup(pid, "SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
      // Anything the child left in its group (workers) goes with it.
      killGroup(pid, "SIGKILL");
    },
    tail(lines = 15) {
      try {
        const size = statSync(opts.logPath).size;
        const text = readFileSync(opts.logPath, "utf8").slice(Math.max(0, size - 20_000));
        return text.replace(/\x1b\[[0-9;]*m/g, "").trimEnd().split("\n").slice(-lines).join("\n");
      } catch {
        return "";
      }
    },
  };
  children.add(child);
  return child;
}

/** Fails with a message naming the variable to change when something already listens on `port`. */
export async function assertPortFree(port: number, host: string, what: string, envName: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once("error", (err: NodeJS.ErrnoException) => {
      reject(
        new Error(
          err.code === "EADDRINUSE"
            ? `port ${port} (${what}) is already in use: is another \`npm start\` running? Stop it, or set ${envName} to another port`
            : `cannot listen on ${host}:${port} (${what}): ${err.message}`,
        ),
      );
    });
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

/** Polls `check` every `everyMs` until it returns true; fails early if `child` exits. */
export async function waitFor(what: string, check: () => Promise<boolean>, opts: { timeoutMs: number; child?: Child; everyMs?: number }): Promise<void> {
  const deadline = performance.now() + opts.timeoutMs;
  for (;;) {
    if (opts.child !== undefined && !opts.child.running()) {
      throw new Error(`${what}: ${opts.child.name} exited; the end of ${opts.child.logPath}:\n${opts.child.tail()}`);
    }
    if (await check().catch(() => false)) return;
    if (performance.now() > deadline) {
      const tail = opts.child === undefined ? "" : `; the end of ${opts.child.logPath}:\n${opts.child.tail()}`;
      throw new Error(`${what}: not ready after ${Math.round(opts.timeoutMs / 1000)} s${tail}`);
    }
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 200));
  }
}
